//! Deploying, versioning, rolling back, deleting, and every way a deploy is
//! refused.

use crate::harness::{Server, eventually, fixture, send};
use anyhow::Result;
use bytes::Bytes;
use floe::store::Digest;
use floe_cli::client::ClientError;
use floe_tests::fixtures::{COUNTER, ECHO, HELLO, SLOW, TRAP};
use http::{Request, StatusCode};
use http_body_util::Full;
use std::io::{Read, Write};
use std::time::Duration;

fn api_status(err: &anyhow::Error) -> (StatusCode, String, String) {
    match err.downcast_ref::<ClientError>() {
        Some(ClientError::Api {
            status,
            code,
            message,
            ..
        }) => (*status, code.clone(), message.clone()),
        _ => panic!("expected an API error, got {err:#}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_second_version_rollback_and_restart() -> Result<()> {
    let mut server = Server::start()?;
    let v1 = server.deploy("greet", HELLO, &[]).await?;
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["name"], "greet");
    assert_eq!(v1["size"], fixture(HELLO).len());
    assert_eq!(v1["digest"], Digest::of(&fixture(HELLO)).to_string());
    assert!(v1["compile_ms"].is_u64());
    let r = server.get("/greet/x?y=1").await?;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello from floe, path=/x?y=1\n");

    let v2 = server.deploy("greet", ECHO, &[]).await?;
    assert_eq!(v2["version"], 2);
    let r = server.get("/greet/x").await?;
    assert!(r.text().starts_with("method=GET path=/x "), "{}", r.text());

    let back = server.client().rollback("greet", None).await?;
    assert_eq!(back["version"], 1);
    assert_eq!(
        server.get("/greet/x").await?.text(),
        "hello from floe, path=/x\n"
    );

    // Rolling forward to a named version works too.
    let fwd = server.client().rollback("greet", Some(2)).await?;
    assert_eq!(fwd["version"], 2);
    let back = server.client().rollback("greet", Some(1)).await?;
    assert_eq!(back["version"], 1);
    // There is nothing before version 1.
    let err = server.client().rollback("greet", None).await.unwrap_err();
    assert_eq!(api_status(&err.into()).0, StatusCode::CONFLICT);

    server.restart()?;
    assert_eq!(
        server.get("/greet/x").await?.text(),
        "hello from floe, path=/x\n"
    );
    let info = server.client().info("greet").await?;
    assert_eq!(info["active_version"], 1);
    assert_eq!(info["versions"].as_array().map(Vec::len), Some(2));
    assert!(
        !server.log().contains("recompiled"),
        "a restart must reuse the stored artifacts"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn identical_bytes_answer_200_with_the_existing_version() -> Result<()> {
    let server = Server::start()?;
    let (status, first) = server.client().deploy("same", fixture(HELLO), &[]).await?;
    assert_eq!(status, StatusCode::CREATED);
    let (status, again) = server.client().deploy("same", fixture(HELLO), &[]).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["version"], first["version"]);
    assert_eq!(again["digest"], first["digest"]);
    assert_eq!(again["compile_ms"], 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn if_match_guards_against_a_stale_view() -> Result<()> {
    let server = Server::start()?;
    let v1 = server.deploy("guarded", HELLO, &[]).await?;
    let digest = v1["digest"].as_str().unwrap_or_default().to_owned();
    let put = |body: Bytes, if_match: &str| {
        Request::put(server.control_url("/v1/functions/guarded"))
            .header("authorization", format!("Bearer {}", server.token))
            .header("if-match", if_match)
            .body(Full::new(body))
    };
    let stale = Digest::of(b"something else").to_string();
    let r = send(put(fixture(ECHO), &stale)?).await?;
    assert_eq!(r.status, 412, "{}", r.text());
    assert_eq!(r.code(), "precondition_failed");
    assert_eq!(
        server.get("/guarded/").await?.text(),
        "hello from floe, path=/\n"
    );

    let r = send(put(fixture(ECHO), &digest)?).await?;
    assert_eq!(r.status, 201, "{}", r.text());

    let r = send(put(fixture(HELLO), "not-a-digest")?).await?;
    assert_eq!(r.status, 400);
    Ok(())
}

/// A component with three imports floe does not satisfy: two unknown
/// interfaces and a known one with the wrong type.
const MISSING_IMPORTS: &str = r#"
(component
  (import "acme:kv/store@1.0.0" (instance
    (export "get" (func (param "key" string) (result string)))))
  (import "floe:test/missing@0.1.0" (instance
    (export "nothing" (func))))
  (import "wasi:cli/environment@0.2.0" (instance
    (export "get-environment" (func (result u32)))))
)
"#;

#[tokio::test(flavor = "multi_thread")]
async fn rejected_deploys_say_why_with_the_right_status() -> Result<()> {
    let server = Server::start()?;
    let client = server.client();
    let deploy = |name: &'static str, bytes: Bytes, settings: Vec<(String, String)>| {
        let client = client.clone();
        async move {
            client
                .deploy(name, bytes, &settings)
                .await
                .map_err(anyhow::Error::from)
        }
    };

    let err = deploy("Bad_Name", fixture(HELLO), vec![])
        .await
        .unwrap_err();
    let (status, code, message) = api_status(&err);
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    assert!(message.contains("invalid function name"), "{message}");

    let err = deploy(
        "junk",
        Bytes::from_static(b"this is not wasm at all"),
        vec![],
    )
    .await
    .unwrap_err();
    let (status, code, message) = api_status(&err);
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_component")
    );
    assert!(message.contains("not a WebAssembly binary"), "{message}");

    let module = wat::parse_str("(module (func (export \"f\")))")?;
    let err = deploy("module", Bytes::from(module), vec![])
        .await
        .unwrap_err();
    let (status, _, message) = api_status(&err);
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(message.contains("core WebAssembly module"), "{message}");

    let mut broken = fixture(HELLO).to_vec();
    broken.truncate(broken.len() / 2);
    let err = deploy("truncated", Bytes::from(broken), vec![])
        .await
        .unwrap_err();
    let (status, code, message) = api_status(&err);
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_component")
    );
    assert!(message.starts_with("invalid component:"), "{message}");

    let err = deploy(
        "imports",
        Bytes::from(wat::parse_str(MISSING_IMPORTS)?),
        vec![],
    )
    .await
    .unwrap_err();
    let Some(ClientError::Api {
        status,
        code,
        message,
        details,
    }) = err.downcast_ref::<ClientError>()
    else {
        panic!("{err:#}");
    };
    assert_eq!(
        (*status, code.as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "missing_import")
    );
    for name in [
        "acme:kv/store@1.0.0",
        "floe:test/missing@0.1.0",
        "wasi:cli/environment@0.2.0",
    ] {
        assert!(message.contains(name), "{name} missing from {message}");
    }
    let listed = details
        .as_ref()
        .map(|d| d["missing_imports"].as_array().map_or(0, Vec::len));
    assert_eq!(listed, Some(3), "{details:?}");
    assert!(message.contains("wrong type"), "{message}");

    let err = deploy(
        "no-handler",
        Bytes::from(wat::parse_str("(component)")?),
        vec![],
    )
    .await
    .unwrap_err();
    let (status, code, message) = api_status(&err);
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "missing_export")
    );
    assert!(message.contains("incoming-handler"), "{message}");

    let err = deploy(
        "settings",
        fixture(HELLO),
        vec![("memory".into(), "lots".into())],
    )
    .await
    .unwrap_err();
    let (status, _, message) = api_status(&err);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("memory"), "{message}");
    let err = deploy(
        "settings",
        fixture(HELLO),
        vec![("memroy".into(), "1MiB".into())],
    )
    .await
    .unwrap_err();
    assert!(api_status(&err).2.contains("unknown setting `memroy`"));
    let err = deploy(
        "settings",
        fixture(HELLO),
        vec![("memory".into(), "64GiB".into())],
    )
    .await
    .unwrap_err();
    assert!(api_status(&err).2.contains("max_memory"));

    let err = deploy("empty", Bytes::new(), vec![]).await.unwrap_err();
    assert_eq!(api_status(&err).0, StatusCode::BAD_REQUEST);

    // Nothing of the refused deploys was kept.
    assert_eq!(
        client.list().await?["functions"].as_array().map(Vec::len),
        Some(0)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_over_the_limit_are_refused_before_and_while_reading() -> Result<()> {
    let server = Server::builder()
        .env("FLOE_LIMITS__MAX_UPLOAD", "100KiB")
        .start()?;

    // Content-Length says too much: the answer comes without the body ever
    // being sent.
    let mut conn = std::net::TcpStream::connect(server.control)?;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(
        conn,
        "PUT /v1/functions/big HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-length: 10000000000\r\n\r\n",
        server.token
    )?;
    let mut head = [0u8; 64];
    let n = conn.read(&mut head)?;
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");

    // Chunked (no Content-Length): refused once the count passes the limit.
    // The answer is read while the upload is still being written: the server
    // closes the connection after it, and a reset could swallow it.
    let mut conn = std::net::TcpStream::connect(server.control)?;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(
        conn,
        "PUT /v1/functions/big HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ntransfer-encoding: chunked\r\n\r\n",
        server.token
    )?;
    let mut reader = conn.try_clone()?;
    let answer = std::thread::spawn(move || {
        let mut head = [0u8; 64];
        let n = reader.read(&mut head).unwrap_or(0);
        String::from_utf8_lossy(&head[..n]).into_owned()
    });
    let chunk = vec![b'x'; 4096];
    for _ in 0..64 {
        // Writes fail once the server has answered and hung up.
        if write!(conn, "{:x}\r\n", chunk.len()).is_err()
            || conn.write_all(&chunk).is_err()
            || conn.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = conn.write_all(b"0\r\n\r\n");
    let head = answer
        .join()
        .map_err(|_| anyhow::anyhow!("reader thread panicked"))?;
    assert!(head.starts_with("HTTP/1.1 413"), "{head:?}");

    // A component under the limit is fine.
    let small = wat::parse_str("(component)")?;
    let err = server
        .client()
        .deploy("small", Bytes::from(small), &[])
        .await
        .unwrap_err();
    assert_eq!(api_status(&err.into()).0, StatusCode::UNPROCESSABLE_ENTITY);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_control_plane_requires_the_token() -> Result<()> {
    let server = Server::start()?;
    let r = crate::harness::get(&server.control_url("/v1/functions")).await?;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "unauthorized");
    let wrong = floe_cli::client::ControlClient::new(
        &format!("http://{}", server.control),
        "not-the-token",
    );
    let err = wrong.list().await.unwrap_err();
    assert_eq!(api_status(&err.into()).0, StatusCode::UNAUTHORIZED);
    let err = wrong.deploy("x", fixture(HELLO), &[]).await.unwrap_err();
    assert_eq!(api_status(&err.into()).0, StatusCode::UNAUTHORIZED);
    // Health and readiness are open.
    assert_eq!(
        crate::harness::get(&server.control_url("/healthz"))
            .await?
            .status,
        200
    );
    let ready = crate::harness::get(&server.control_url("/readyz")).await?;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["ready"], true);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_deploys_of_one_name_leave_a_consistent_function() -> Result<()> {
    let server = Server::start()?;
    let components = [HELLO, ECHO, COUNTER, TRAP, SLOW];
    let deploys = components.iter().map(|c| {
        let client = server.client();
        let bytes = fixture(c);
        async move { client.deploy("race", bytes, &[]).await }
    });
    let results = futures::future::join_all(deploys).await;
    let mut versions: Vec<u64> = results
        .into_iter()
        .map(|r| r.map(|(_, body)| body["version"].as_u64().unwrap_or(0)))
        .collect::<Result<_, _>>()?;
    versions.sort_unstable();
    assert_eq!(versions, [1, 2, 3, 4, 5], "each deploy got its own version");

    let info = server.client().info("race").await?;
    assert_eq!(info["active_version"], 5);
    let active = info["versions"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["version"] == 5))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        info["digest"], active["digest"],
        "the active digest is the active version's"
    );
    // What is served is the component the record says is active.
    let served = components
        .iter()
        .find(|c| Digest::of(&fixture(c)).to_string() == active["digest"])
        .copied()
        .unwrap_or_default();
    let r = server.get("/race/ok?ms=1").await?;
    let body = r.text();
    let expected = match served {
        s if s == HELLO => body.starts_with("hello from floe"),
        s if s == ECHO => body.starts_with("method=GET"),
        s if s == COUNTER => body.trim() == "1",
        s if s == TRAP => body == "ok\n",
        s if s == SLOW => body.starts_with("slept"),
        _ => false,
    };
    assert!(
        expected,
        "served {body:?}, but the active version is {served}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_removes_the_function_and_its_stored_code() -> Result<()> {
    let server = Server::start()?;
    server.deploy("gone", HELLO, &[]).await?;
    server.deploy("kept", ECHO, &[]).await?;
    assert_eq!(server.get("/gone/").await?.status, 200);
    server.client().delete("gone").await?;
    let r = server.get("/gone/").await?;
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "not_found");
    let err = server.client().delete("gone").await.unwrap_err();
    assert_eq!(api_status(&err.into()).0, StatusCode::NOT_FOUND);
    let blobs: Vec<_> = std::fs::read_dir(server.data_dir().join("blobs"))?.collect();
    assert_eq!(blobs.len(), 1, "only the kept function's component remains");
    // Redeploying starts over at version 1.
    assert_eq!(server.deploy("gone", HELLO, &[]).await?["version"], 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_whose_client_went_away_is_applied_whole_or_not_at_all() -> Result<()> {
    let mut server = Server::start()?;
    server.deploy("other", HELLO, &[]).await?;
    // Send the whole upload, then hang up without waiting for the answer.
    let bytes = fixture(ECHO);
    let mut conn = std::net::TcpStream::connect(server.control)?;
    write!(
        conn,
        "PUT /v1/functions/orphan HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-length: {}\r\n\r\n",
        server.token,
        bytes.len()
    )?;
    conn.write_all(&bytes)?;
    drop(conn);
    // The whole upload arrived, so the deploy goes on without its client:
    // wait for it to be applied (or, if it never is, for long enough).
    server.deploy("marker", COUNTER, &[]).await?;
    let applied = eventually(Duration::from_secs(10), "the orphan deploy", || async {
        Ok(server.get("/orphan/").await?.status == 200)
    })
    .await;
    let served_before = applied.is_ok();
    // A collection (deleting another function), then a restart: the orphan is
    // either still whole or was never there, with no files left behind.
    server.client().delete("other").await?;
    server.restart()?;
    let served_after = server.get("/orphan/").await?.status == 200;
    assert_eq!(served_before, served_after);
    let echo = Digest::of(&bytes).hex();
    let blob = server.data_dir().join("blobs").join(format!("{echo}.wasm"));
    assert_eq!(
        blob.exists(),
        served_after,
        "a stored component exactly when it is deployed"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn redeploying_after_a_delete_stores_the_compiled_code_again() -> Result<()> {
    let mut server = Server::start()?;
    server.deploy("again", HELLO, &[]).await?;
    server.client().delete("again").await?;
    server.deploy("again", HELLO, &[]).await?;
    server.restart()?;
    assert_eq!(server.get("/again/").await?.status, 200);
    assert!(
        !server.log().contains("recompiled"),
        "the artifact was stored again"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_deploys_of_new_names_respect_max_functions() -> Result<()> {
    let server = Server::builder()
        .env("FLOE_LIMITS__MAX_FUNCTIONS", "2")
        .start()?;
    let deploys = (0..5).map(|i| {
        let client = server.client();
        async move { client.deploy(&format!("f{i}"), fixture(HELLO), &[]).await }
    });
    let results = futures::future::join_all(deploys).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 2, "{results:?}");
    for r in results.into_iter().filter_map(Result::err) {
        assert_eq!(api_status(&r.into()).0, StatusCode::CONFLICT);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn durations_are_bounded() -> Result<()> {
    let server = Server::start()?;
    let err = server
        .client()
        .deploy(
            "d",
            fixture(HELLO),
            &[("queue_timeout".into(), "18446744073709551615s".into())],
        )
        .await
        .unwrap_err();
    assert_eq!(api_status(&err.into()).0, StatusCode::BAD_REQUEST);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn handlers_of_the_wrong_type_are_refused_at_deploy() -> Result<()> {
    let server = Server::start()?;
    // `handle: func()` where floe calls `handle(request, response-out)`, and
    // an event `handle: func(x: u32)`.
    let wrong = |export: &str, params: &str| {
        wat::parse_str(format!(
            r#"(component
                (core module $m (func (export "f") {core}))
                (core instance $i (instantiate $m))
                (func $f {params} (canon lift (core func $i "f")))
                (instance $h (export "handle" (func $f)))
                (export "{export}" (instance $h))
            )"#,
            core = if params.is_empty() { "" } else { "(param i32)" },
        ))
    };
    for (export, params, expected) in [
        ("wasi:http/incoming-handler@0.2.0", "", "response-outparam"),
        ("floe:function/event@0.1.0", "(param \"x\" u32)", "list<u8>"),
    ] {
        let err = server
            .client()
            .deploy("wrong", Bytes::from(wrong(export, params)?), &[])
            .await
            .unwrap_err();
        match err {
            floe_cli::client::ClientError::Api {
                status,
                code,
                message,
                ..
            } => {
                assert_eq!((status.as_u16(), code.as_str()), (422, "missing_export"));
                assert!(
                    message.contains("handle") && message.contains(expected),
                    "{message}"
                );
            }
            other => panic!("{other}"),
        }
    }
    Ok(())
}

//! Async invocations: accepted durably (202), run after a SIGKILL, made
//! idempotent by a key, retried then dead-lettered, forwarded to
//! destinations, bounded.

use crate::harness::{Reply, Server, eventually, get, send};
use anyhow::Result;
use bytes::Bytes;
use floe_tests::fixtures::EVENT_ECHO;
use http::Request;
use http_body_util::Full;
use std::time::Duration;

async fn invoke_async(
    server: &Server,
    name: &str,
    query: &str,
    body: &[u8],
    key: Option<&str>,
) -> Result<Reply> {
    let mut request = Request::post(
        server.control_url(&format!("/v1/functions/{name}/invoke?mode=async{query}")),
    )
    .header("authorization", format!("Bearer {}", server.token));
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    send(request.body(Full::new(Bytes::copy_from_slice(body)))?).await
}

/// Submits an async invocation on the control plane; its id.
async fn submit(server: &Server, name: &str, query: &str, body: &[u8]) -> Result<String> {
    let r = invoke_async(server, name, query, body, None).await?;
    assert_eq!(r.status, 202, "{}", r.text());
    Ok(r.json()["id"].as_str().unwrap_or_default().to_owned())
}

async fn control_get(server: &Server, path: &str) -> Result<Reply> {
    send(
        Request::get(server.control_url(path))
            .header("authorization", format!("Bearer {}", server.token))
            .body(Full::<Bytes>::default())?,
    )
    .await
}

async fn invocation(server: &Server, id: &str) -> Result<serde_json::Value> {
    let r = control_get(server, &format!("/v1/invocations/{id}")).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    Ok(r.json())
}

async fn wait_for(server: &Server, id: &str, status: &str) -> Result<serde_json::Value> {
    eventually(Duration::from_secs(20), status, || async {
        Ok(invocation(server, id).await?["status"] == status)
    })
    .await?;
    invocation(server, id).await
}

#[tokio::test(flavor = "multi_thread")]
async fn accepted_invocations_survive_sigkill_and_run_after_restart() -> Result<()> {
    let mut server = Server::builder()
        .env("FLOE_INVOCATIONS__WORKERS", "1")
        .start()?;
    server.deploy("echo", EVENT_ECHO, &[]).await?;
    // The first is running (sleeping) when the server is killed; the
    // second has not started.
    let running = invoke_async(&server, "echo", "", b"sleep:5000", None).await?;
    assert_eq!(running.status, 202, "{}", running.text());
    assert!(
        running.headers["location"]
            .to_str()?
            .starts_with("/v1/invocations/")
    );
    let queued = invoke_async(&server, "echo", "", b"\x00\xffbytes", None).await?;
    assert_eq!(queued.status, 202);
    let (running, queued) = (
        running.json()["id"].as_str().unwrap_or_default().to_owned(),
        queued.json()["id"].as_str().unwrap_or_default().to_owned(),
    );
    assert_eq!(invocation(&server, &queued).await?["status"], "queued");
    // The attempt is on disk before the function runs: once an instance is
    // busy with it, the kill cuts a recorded attempt short.
    eventually(
        Duration::from_secs(30),
        "the first invocation to be running",
        || async {
            let view = server.client().instances("echo").await?;
            Ok(view["instances"]
                .as_array()
                .is_some_and(|list| list.iter().any(|i| i["state"] == "busy")))
        },
    )
    .await?;

    server.restart()?;
    let done = wait_for(&server, &queued, "succeeded").await?;
    assert_eq!(done["attempts"], 1);
    let result = control_get(&server, &format!("/v1/invocations/{queued}/result")).await?;
    assert_eq!(result.body.as_ref(), b"\x00\xffbytes");

    // At least once: the attempt the kill cut short runs again.
    let done = wait_for(&server, &running, "succeeded").await?;
    assert_eq!(done["attempts"], 2, "{done}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_runs_once_and_a_conflicting_body_is_409() -> Result<()> {
    let server = Server::start()?;
    server.deploy("echo", EVENT_ECHO, &[]).await?;
    let first = invoke_async(&server, "echo", "", b"once", Some("order-17")).await?;
    assert_eq!(first.status, 202);
    let id = first.json()["id"].as_str().unwrap_or_default().to_owned();
    for _ in 0..3 {
        let again = invoke_async(&server, "echo", "", b"once", Some("order-17")).await?;
        assert_eq!(again.status, 202);
        assert_eq!(again.json()["id"], id.as_str());
        assert_eq!(again.json()["repeated"], true);
    }
    let conflict = invoke_async(&server, "echo", "", b"twice", Some("order-17")).await?;
    assert_eq!(conflict.status, 409, "{}", conflict.text());
    assert_eq!(conflict.code(), "conflict");

    wait_for(&server, &id, "succeeded").await?;
    // Nothing more is due to run: no async invocation is queued or running,
    // and no instance of echo is busy.
    eventually(Duration::from_secs(5), "nothing pending", || async {
        let listing = control_get(&server, "/v1/invocations").await?.json();
        let info = server.client().info("echo").await?;
        Ok(listing["queue_depth"] == 0 && info["instances"]["busy"] == 0)
    })
    .await?;
    let info = server.client().info("echo").await?;
    assert_eq!(info["metering"]["invocations"], 1, "ran once: {info}");
    let metrics = get(&server.control_url("/metrics")).await?.text();
    assert!(
        metrics.contains("floe_async_invocations_total{event=\"accepted\"} 1"),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_function_is_retried_then_dead_lettered_with_its_error() -> Result<()> {
    let server = Server::builder()
        .env("FLOE_INVOCATIONS__RETRY_BASE", "50ms")
        .env("FLOE_INVOCATIONS__MAX_ATTEMPTS", "3")
        .start()?;
    server.deploy("echo", EVENT_ECHO, &[]).await?;
    server.deploy("sink", EVENT_ECHO, &[]).await?;

    let r = invoke_async(&server, "echo", "&on_failure=sink", b"fail", None).await?;
    assert_eq!(r.status, 202);
    let id = r.json()["id"].as_str().unwrap_or_default().to_owned();
    let dead = wait_for(&server, &id, "dead").await?;
    assert_eq!(dead["attempts"], 3, "{dead}");
    assert_eq!(dead["error"]["code"], "function_error");
    assert_eq!(dead["error"]["message"], "asked to fail");

    let letters = control_get(&server, "/v1/invocations?status=dead")
        .await?
        .json();
    let ids: Vec<&str> = letters["invocations"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, [id.as_str()], "{letters}");

    // The failure destination got a report of it.
    let forwarded = dead["destination_invocation"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    wait_for(&server, &forwarded, "succeeded").await?;
    let report = control_get(&server, &format!("/v1/invocations/{forwarded}/result")).await?;
    let report: serde_json::Value = serde_json::from_slice(&report.body)?;
    assert_eq!(report["invocation"], id.as_str());
    assert_eq!(report["error"]["message"], "asked to fail");

    // invalid-input is final: no retry.
    let r = invoke_async(&server, "echo", "", b"", None).await?;
    let id = r.json()["id"].as_str().unwrap_or_default().to_owned();
    let dead = wait_for(&server, &id, "dead").await?;
    assert_eq!(
        (dead["attempts"].as_u64(), dead["error"]["code"].as_str()),
        (Some(1), Some("invalid_input"))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_data_plane_takes_prefer_respond_async_and_success_goes_to_its_destination()
-> Result<()> {
    let server = Server::start()?;
    // The data plane stores payloads only for functions that opt in.
    server
        .deploy("echo", EVENT_ECHO, &[("async", "true")])
        .await?;
    server
        .deploy("next", EVENT_ECHO, &[("async", "true")])
        .await?;
    let r = send(
        Request::post(server.url("/echo?on_success=next"))
            .header("prefer", "respond-async")
            .body(Full::new(Bytes::from_static(b"\xc3\x28 chained")))?,
    )
    .await?;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap_or_default().to_owned();
    let done = wait_for(&server, &id, "succeeded").await?;
    let next = done["destination_invocation"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    wait_for(&server, &next, "succeeded").await?;
    let result = control_get(&server, &format!("/v1/invocations/{next}/result")).await?;
    assert_eq!(result.body.as_ref(), b"\xc3\x28 chained");

    let unknown = control_get(&server, "/v1/invocations/nope").await?;
    assert_eq!(unknown.status, 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_async_queue_is_bounded_and_exposes_its_depth() -> Result<()> {
    let server = Server::builder()
        .env("FLOE_INVOCATIONS__WORKERS", "1")
        .env("FLOE_INVOCATIONS__MAX_QUEUED", "2")
        .start()?;
    server.deploy("echo", EVENT_ECHO, &[]).await?;
    for _ in 0..2 {
        let r = invoke_async(&server, "echo", "", b"sleep:1500", None).await?;
        assert_eq!(r.status, 202);
    }
    let full = invoke_async(&server, "echo", "", b"one too many", None).await?;
    assert_eq!(full.status, 503, "{}", full.text());
    assert_eq!(full.code(), "overloaded");
    assert!(full.headers.contains_key("retry-after"));
    let listing = control_get(&server, "/v1/invocations").await?.json();
    assert_eq!(listing["queue_depth"], 2);
    let metrics = get(&server.control_url("/metrics")).await?.text();
    assert!(metrics.contains("floe_async_queue_depth 2"), "{metrics}");
    Ok(())
}

/// The invocation files on disk.
fn stored_files(server: &Server) -> Vec<String> {
    std::fs::read_dir(server.data_dir().join("invocations"))
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_async_flood_on_the_data_plane_stores_nothing_unless_the_function_opts_in() -> Result<()>
{
    let server = Server::start()?;
    server.deploy("echo", EVENT_ECHO, &[]).await?;
    server
        .deploy("open", EVENT_ECHO, &[("async", "true")])
        .await?;
    for i in 0..200 {
        let (path, header) = if i % 2 == 0 {
            ("/echo?mode=async", None)
        } else {
            ("/echo", Some("respond-async"))
        };
        let mut request = Request::post(server.url(path));
        if let Some(prefer) = header {
            request = request.header("prefer", prefer);
        }
        let r = send(request.body(Full::new(Bytes::from(vec![b'x'; 64 * 1024])))?).await?;
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(r.text().contains("async"), "{}", r.text());
    }
    // A destination that did not opt in is refused too.
    let r = send(
        Request::post(server.url("/open?mode=async&on_success=echo"))
            .body(Full::new(Bytes::from_static(b"x")))?,
    )
    .await?;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        stored_files(&server).is_empty(),
        "{:?}",
        stored_files(&server)
    );
    // The control plane still takes it, with a token.
    let id = submit(&server, "echo", "", b"ok").await?;
    wait_for(&server, &id, "succeeded").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn finished_invocations_keep_no_payload_and_are_bounded_in_count_and_bytes() -> Result<()> {
    let server = Server::builder()
        .env("FLOE_INVOCATIONS__MAX_FINISHED", "3")
        .env("FLOE_INVOCATIONS__MAX_STORED_BYTES", "200KiB")
        .env("FLOE_INVOCATIONS__WORKERS", "1")
        .start()?;
    server.deploy("echo", EVENT_ECHO, &[]).await?;
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = submit(&server, "echo", "", format!("payload {i}").as_bytes()).await?;
        wait_for(&server, &id, "succeeded").await?;
        ids.push(id);
    }
    // Results are kept, payloads are not.
    let files = stored_files(&server);
    assert!(!files.iter().any(|f| f.ends_with(".payload")), "{files:?}");
    let result = control_get(&server, &format!("/v1/invocations/{}/result", ids[4])).await?;
    assert_eq!(result.body.as_ref(), b"payload 4");
    // At most three finished ones stay (the janitor or the next finish
    // prunes): the oldest are gone.
    eventually(
        Duration::from_secs(30),
        "the oldest finished invocations to go",
        || async {
            Ok(control_get(&server, &format!("/v1/invocations/{}", ids[0]))
                .await?
                .status
                == 404)
        },
    )
    .await?;
    let listed = control_get(&server, "/v1/invocations?status=succeeded").await?;
    let n = listed.json()["invocations"].as_array().map_or(0, Vec::len);
    assert!(n <= 3, "{}", listed.text());
    assert_eq!(
        control_get(&server, &format!("/v1/invocations/{}", ids[4]))
            .await?
            .json()["status"],
        "succeeded"
    );
    // Bytes: a payload larger than what may be stored is refused, nothing
    // written.
    let r = send(
        Request::post(server.control_url("/v1/functions/echo/invoke?mode=async"))
            .header("authorization", format!("Bearer {}", server.token))
            .body(Full::new(Bytes::from(vec![b'y'; 300 * 1024])))?,
    )
    .await?;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.code(), "overloaded");
    Ok(())
}

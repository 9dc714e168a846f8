//! Scoped control-plane tokens: what each scope may do and is refused,
//! revocation, the `Authorization` header's forms, and who may read
//! `/metrics`.

use crate::harness::{Reply, Server, fixture, send};
use anyhow::{Context, Result};
use bytes::Bytes;
use floe_cli::client::{ClientError, ControlClient};
use floe_tests::fixtures::{EVENT_ECHO, HELLO};
use http::{Method, Request, StatusCode};
use http_body_util::Full;

/// The status and code of a failed client call.
fn refused<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (StatusCode, String) {
    match result {
        Err(ClientError::Api { status, code, .. }) => (status, code),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Creates a token with the server's admin token; returns its id, its text
/// and a client that uses it.
async fn token(
    server: &Server,
    scope: &str,
    prefix: Option<&str>,
) -> Result<(String, String, ControlClient)> {
    let body = server
        .client()
        .create_token(scope, prefix, Some("test"))
        .await?;
    let id = body["id"].as_str().context("id")?.to_owned();
    let text = body["token"].as_str().context("token")?.to_owned();
    let client = ControlClient::new(&format!("http://{}", server.control), &text);
    Ok((id, text, client))
}

/// GET a control-plane path with `authorization` as the header (none when
/// `None`).
async fn get_with(server: &Server, path: &str, authorization: Option<&str>) -> Result<Reply> {
    let mut request = Request::get(server.control_url(path));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    send(request.body(Full::default())?).await
}

fn names(list: &serde_json::Value) -> Vec<String> {
    list["functions"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .filter_map(|f| f["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_tokens_reach_only_their_prefix() -> Result<()> {
    let server = Server::start()?;
    let admin = server.client();
    admin.deploy("other", fixture(HELLO), &[]).await?;
    let (_, deploy_token, deploy) = token(&server, "deploy", Some("team-a-")).await?;

    // Its own functions: deploy, read, configure, roll back, delete.
    let (status, _) = deploy.deploy("team-a-x", fixture(HELLO), &[]).await?;
    assert_eq!(status, StatusCode::CREATED);
    deploy.deploy("team-a-x", fixture(EVENT_ECHO), &[]).await?;
    assert_eq!(deploy.info("team-a-x").await?["active_version"], 2);
    deploy.instances("team-a-x").await?;
    deploy
        .configure("team-a-x", &[("timeout".into(), "5s".into())])
        .await?;
    assert_eq!(deploy.rollback("team-a-x", None).await?["version"], 1);
    assert_eq!(deploy.rollback("team-a-x", Some(2)).await?["version"], 2);
    // The list shows only its prefix's functions.
    assert_eq!(names(&deploy.list().await?), ["team-a-x"]);
    assert_eq!(names(&admin.list().await?), ["other", "team-a-x"]);

    // Another prefix's function: refused, whatever the request.
    let forbidden = (StatusCode::FORBIDDEN, "forbidden".to_owned());
    assert_eq!(
        refused(deploy.deploy("other", fixture(HELLO), &[]).await),
        forbidden
    );
    assert_eq!(refused(deploy.info("other").await), forbidden);
    assert_eq!(refused(deploy.delete("other").await), forbidden);
    assert_eq!(refused(deploy.rollback("other", None).await), forbidden);
    // Tokens are for admins.
    assert_eq!(refused(deploy.tokens().await), forbidden);
    assert_eq!(
        refused(deploy.create_token("admin", None, None).await),
        forbidden
    );

    // Invocations: its function's, sync and async; not another's, and not
    // with a destination outside its prefix.
    let invoke = |name: &str, query: &str, token: &str| {
        let request =
            Request::post(server.control_url(&format!("/v1/functions/{name}/invoke{query}")))
                .header("authorization", format!("Bearer {token}"))
                .body(Full::new(Bytes::from_static(b"ping")));
        async move { send(request?).await }
    };
    let r = invoke("team-a-x", "", &deploy_token).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = invoke("team-a-x", "?mode=async", &deploy_token).await?;
    assert_eq!(r.status, 202, "{}", r.text());
    let own = r.json()["id"].as_str().context("id")?.to_owned();
    let r = invoke("team-a-x", "?mode=async&on_success=other", &deploy_token).await?;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.code(), "forbidden");
    admin.deploy("other", fixture(EVENT_ECHO), &[]).await?;
    let r = invoke("other", "?mode=async", &server.token).await?;
    assert_eq!(r.status, 202, "{}", r.text());
    let theirs = r.json()["id"].as_str().context("id")?.to_owned();
    let r = invoke("other", "", &deploy_token).await?;
    assert_eq!(r.status, 403);

    let bearer = format!("Bearer {deploy_token}");
    let r = get_with(&server, &format!("/v1/invocations/{own}"), Some(&bearer)).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get_with(&server, &format!("/v1/invocations/{theirs}"), Some(&bearer)).await?;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = get_with(&server, "/v1/invocations", Some(&bearer)).await?;
    let listing = r.json();
    let listed: Vec<&str> = listing["invocations"]
        .as_array()
        .map(|l| l.iter().filter_map(|i| i["function"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(listed, ["team-a-x"], "{}", r.text());
    let r = get_with(&server, "/v1/invocations?function=other", Some(&bearer)).await?;
    assert_eq!(r.status, 403);

    deploy.delete("team-a-x").await?;
    assert_eq!(names(&admin.list().await?), ["other"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn read_tokens_read_everything_and_change_nothing() -> Result<()> {
    let server = Server::start()?;
    server.deploy("hello", HELLO, &[]).await?;
    let (_, read_token, read) = token(&server, "read", None).await?;

    assert_eq!(names(&read.list().await?), ["hello"]);
    assert_eq!(read.info("hello").await?["name"], "hello");
    read.instances("hello").await?;
    let r = get_with(
        &server,
        "/v1/invocations",
        Some(&format!("Bearer {read_token}")),
    )
    .await?;
    assert_eq!(r.status, 200);
    let r = get_with(&server, "/metrics", Some(&format!("Bearer {read_token}"))).await?;
    assert_eq!(r.status, 200);

    let forbidden = (StatusCode::FORBIDDEN, "forbidden".to_owned());
    assert_eq!(
        refused(read.deploy("hello", fixture(HELLO), &[]).await),
        forbidden
    );
    assert_eq!(
        refused(read.deploy("new", fixture(HELLO), &[]).await),
        forbidden
    );
    assert_eq!(refused(read.delete("hello").await), forbidden);
    assert_eq!(
        refused(
            read.configure("hello", &[("timeout".into(), "5s".into())])
                .await
        ),
        forbidden
    );
    assert_eq!(refused(read.tokens().await), forbidden);
    assert_eq!(server.get("/hello/").await?.status, 200, "still deployed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn admins_manage_tokens_and_revocation_is_immediate() -> Result<()> {
    let mut server = Server::start()?;
    let admin = server.client();
    let (read_id, read_token, read) = token(&server, "read", None).await?;
    let (deploy_id, deploy_token, _) = token(&server, "deploy", Some("")).await?;
    assert!(read_token.starts_with(&format!("floe_{read_id}_")));

    // The list: every created token, no secrets, no hashes.
    let listed = admin.tokens().await?;
    let tokens = listed["tokens"].as_array().context("tokens")?;
    assert_eq!(tokens.len(), 2, "{listed}");
    assert_eq!(tokens[0]["id"], read_id.as_str());
    assert_eq!(tokens[0]["scope"], "read");
    assert_eq!(tokens[0]["name"], "test");
    assert_eq!(tokens[1]["scope"], "deploy");
    assert_eq!(tokens[1]["prefix"], "");
    let text = listed.to_string();
    assert!(
        !text.contains(&read_token[read_token.len() - 64..]),
        "{text}"
    );
    assert!(!text.contains("sha256"), "{text}");

    // Stored hashed, owner-only.
    let stored = std::fs::read_to_string(server.data_dir().join("tokens.json"))?;
    assert!(!stored.contains(&read_token[read_token.len() - 64..]));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(server.data_dir().join("tokens.json"))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Bad requests name the problem.
    assert_eq!(
        refused(admin.create_token("deploy", None, None).await).0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        refused(admin.create_token("root", None, None).await).0,
        StatusCode::BAD_REQUEST
    );

    // Revoked: refused from the next request on, as an unknown token.
    read.list().await?;
    admin.revoke_token(&read_id).await?;
    assert_eq!(
        refused(read.list().await),
        (StatusCode::UNAUTHORIZED, "unauthorized".to_owned())
    );
    assert_eq!(
        refused(admin.revoke_token(&read_id).await),
        (StatusCode::NOT_FOUND, "not_found".to_owned())
    );

    // Tokens outlive a restart; the bootstrap token keeps working.
    server.restart()?;
    let deploy = ControlClient::new(&format!("http://{}", server.control), &deploy_token);
    deploy.list().await?;
    let listed = server.client().tokens().await?;
    assert_eq!(listed["tokens"][0]["id"], deploy_id.as_str());
    assert_eq!(listed["tokens"].as_array().map(Vec::len), Some(1));
    let read = ControlClient::new(&format!("http://{}", server.control), &read_token);
    assert_eq!(refused(read.list().await).0, StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bearer_scheme_is_matched_in_any_case() -> Result<()> {
    let server = Server::start()?;
    let (_, read_token, _) = token(&server, "read", None).await?;
    for header in [
        format!("bearer {}", server.token),
        format!("BEARER {}", server.token),
        format!("  Bearer   {}  ", server.token),
        format!("bearer {read_token}"),
    ] {
        let r = get_with(&server, "/v1/functions", Some(&header)).await?;
        assert_eq!(r.status, 200, "{header:?}: {}", r.text());
    }
    for header in [
        format!("Basic {}", server.token),
        format!("Bearer{}", server.token),
        "Bearer floe_00000000_0000".to_owned(),
    ] {
        let r = get_with(&server, "/v1/functions", Some(&header)).await?;
        assert_eq!(r.status, 401, "{header:?}");
        assert_eq!(r.code(), "unauthorized");
    }
    let r = send(
        Request::builder()
            .method(Method::GET)
            .uri(server.control_url("/v1/tokens"))
            .body(Full::default())?,
    )
    .await?;
    assert_eq!(r.status, 401);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_open_on_loopback_by_default() -> Result<()> {
    let server = Server::start()?;
    let r = get_with(&server, "/metrics", None).await?;
    assert_eq!(r.status, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_metrics_need_a_token_of_any_scope() -> Result<()> {
    let server = Server::builder()
        .env("FLOE_SERVER__OPEN_METRICS", "false")
        .start()?;
    let r = get_with(&server, "/metrics", None).await?;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "unauthorized");
    for (scope, prefix) in [("read", None), ("deploy", Some("team-a-"))] {
        let (_, token, _) = token(&server, scope, prefix).await?;
        let r = get_with(&server, "/metrics", Some(&format!("Bearer {token}"))).await?;
        assert_eq!(r.status, 200, "{scope}");
        assert!(r.text().ends_with("# EOF\n"), "{scope}");
    }
    // Health and readiness stay open.
    assert_eq!(get_with(&server, "/healthz", None).await?.status, 200);
    assert_eq!(get_with(&server, "/readyz", None).await?.status, 200);
    Ok(())
}

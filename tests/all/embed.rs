//! floe as a library: serving requests in-process, without a listener.

use crate::harness::fixture;
use anyhow::Result;
use bytes::Bytes;
use floe::registry::FunctionName;
use floe::{Config, Floe};
use floe_tests::fixtures::HELLO;
use http_body_util::{BodyExt, Empty};

#[tokio::test(flavor = "multi_thread")]
async fn an_embedder_hands_floe_single_requests() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::default();
    config.server.data_dir = dir.path().to_owned();
    config.limits.max_instances_total = 16;
    config.functions.max_instances = 4;
    let floe = Floe::new(config).await?;
    floe.registry()
        .deploy(&FunctionName::new("hello")?, fixture(HELLO), &[], None)
        .await?;

    for path in ["/hello/in-process", "/hello/again"] {
        let request = http::Request::get(path).body(Empty::<Bytes>::new())?;
        let response = floe.handle(request).await;
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await?.to_bytes();
        let expected = format!(
            "hello from floe, path={}\n",
            path.trim_start_matches("/hello")
        );
        assert_eq!(body, expected.as_bytes());
    }
    let request = http::Request::get("/missing/").body(Empty::<Bytes>::new())?;
    assert_eq!(floe.handle(request).await.status(), 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_runs_to_completion_when_its_caller_gives_up() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::default();
    config.server.data_dir = dir.path().to_owned();
    config.limits.max_instances_total = 16;
    config.functions.max_instances = 4;
    let floe = Floe::new(config.clone()).await?;
    // The caller stops waiting 1 ms in, while the component compiles.
    let give_up = tokio::time::timeout(
        std::time::Duration::from_millis(1),
        floe.registry()
            .deploy(&FunctionName::new("late")?, fixture(HELLO), &[], None),
    )
    .await;
    assert!(give_up.is_err(), "the deploy was still running");
    crate::harness::eventually(
        std::time::Duration::from_secs(30),
        "the deploy to finish",
        || async { Ok(floe.registry().get("late").is_some()) },
    )
    .await?;
    drop(floe);
    // Durable too: a new server on the same directory serves it.
    let floe = Floe::new(config).await?;
    let request = http::Request::get("/late/").body(Empty::<Bytes>::new())?;
    assert_eq!(floe.handle(request).await.status(), 200);
    Ok(())
}

//! WASI 0.3 event functions (`floe:function@0.2.0`): an async `handle`
//! that many invocations run on one instance at once, and async hooks,
//! with `init` snapshotted at deploy.

use crate::harness::{Reply, Server, eventually, post};
use anyhow::Result;
use floe_tests::fixtures::{EVENT_P3, P3_RAW};
use futures::future::join_all;

/// `payload` posted to the function `name`, `n` times at once.
async fn all_at_once(server: &Server, name: &str, payload: &str, n: usize) -> Result<Vec<Reply>> {
    let url = server.url(&format!("/{name}"));
    join_all((0..n).map(|_| post(&url, payload.to_owned())))
        .await
        .into_iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn async_event_functions_run_sixteen_invocations_on_one_instance() -> Result<()> {
    let server = Server::start()?;
    let deployed = server
        .deploy("ev", EVENT_P3, &[("max_instances", "1"), ("timeout", "3s")])
        .await?;
    // The async `init` ran once, at deploy, and was snapshotted.
    assert_eq!(deployed["init"], "snapshot", "{deployed}");
    let i = server.client().info("ev").await?;
    assert_eq!(i["kind"], "event", "{i}");
    assert_eq!(i["wasi"], "0.3", "{i}");
    assert_eq!(i["instance_concurrency"], 16, "{i}");
    // 16 invocations of 400 ms each: one after the other they would need
    // 6.4 s, past the timeout; together on one instance, well within it.
    for r in all_at_once(&server, "ev", "sleep:400", 16).await? {
        assert_eq!(
            (r.status.as_u16(), r.text()),
            (200, "slept 400 ms primes=Some(9592) freezes=0\n".into())
        );
    }
    let i = server.client().info("ev").await?;
    assert_eq!(i["instances"]["started"], 1, "{i}");
    // pre-freeze (which awaits) runs once, after the last of them.
    eventually(
        std::time::Duration::from_secs(5),
        "pre-freeze to run",
        || async {
            let detail = server.client().instances("ev").await?;
            Ok(detail["instances"][0]["hooks"]["pre_freeze"]["calls"] == 1)
        },
    )
    .await?;
    let r = post(&server.url("/ev"), "sleep:0").await?;
    assert_eq!(r.text(), "slept 0 ms primes=Some(9592) freezes=1\n");
    // The function's own errors keep their statuses.
    let r = post(&server.url("/ev"), "fail").await?;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (500, "function_error".into()),
        "{}",
        r.text()
    );
    let r = post(&server.url("/ev"), "").await?;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (400, "invalid_input".into()),
        "{}",
        r.text()
    );
    // pre-stop (which awaits too) runs once when the instance goes.
    server.client().delete("ev").await?;
    eventually(
        std::time::Duration::from_secs(5),
        "pre-stop to run",
        || async { Ok(server.log().contains("event-p3 pre-stop after")) },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn async_event_functions_await_outbound_calls_without_holding_the_instance() -> Result<()> {
    let server = Server::builder()
        .env("FLOE_OUTBOUND__ALLOW_DATA_PLANE", "true")
        .start()?;
    let data = server.data.port();
    server.deploy("upstream", P3_RAW, &[]).await?;
    server
        .deploy(
            "ev",
            EVENT_P3,
            &[
                (
                    "allowed_outbound_hosts",
                    &format!("http://127.0.0.1:{data}"),
                ),
                ("max_instances", "1"),
                ("timeout", "3s"),
                ("preinit", "instance"),
            ],
        )
        .await?;
    let payload = format!("fetch:http://127.0.0.1:{data}/upstream/sleep?ms=400");
    for r in all_at_once(&server, "ev", &payload, 16).await? {
        assert_eq!(
            (r.status.as_u16(), r.text()),
            (
                200,
                "status=200 bytes=13 primes=Some(9592) freezes=0\n".into()
            )
        );
    }
    let i = server.client().info("ev").await?;
    assert_eq!(i["instances"]["started"], 1, "{i}");
    // With `preinit = "instance"`, the async init ran in the instance.
    let detail = server.client().instances("ev").await?;
    assert_eq!(
        detail["instances"][0]["hooks"]["init"]["calls"], 1,
        "{detail}"
    );
    Ok(())
}

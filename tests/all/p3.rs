//! WASI 0.3 functions: components that export `wasi:http/handler@0.3`,
//! built with the SDK and straight from the `wasip3` crate, served with
//! many requests at once per instance; deadlines and failures that stop a
//! shared instance; hooks after the last of concurrent requests.

use crate::harness::{Server, eventually, post};
use anyhow::Result;
use floe_cli::client::ClientError;
use floe_tests::fixtures::{FAN_OUT, HELLO, HELLO_P3, HOOKS_P3, P3_RAW};
use futures::future::join_all;

async fn info(server: &Server, name: &str) -> Result<serde_json::Value> {
    Ok(server.client().info(name).await?)
}

/// Statuses of `paths` requested all at once, in order.
async fn all_at_once(server: &Server, paths: &[String]) -> Result<Vec<(u16, String)>> {
    let replies = join_all(paths.iter().map(|p| server.get(p))).await;
    replies
        .into_iter()
        .map(|r| r.map(|r| (r.status.as_u16(), r.text())))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn p3_components_from_the_sdk_and_straight_from_wasip3_serve() -> Result<()> {
    let server = Server::start()?;
    server.deploy("sdk", HELLO_P3, &[]).await?;
    server.deploy("raw", P3_RAW, &[]).await?;
    let r = server.get("/sdk/some/path").await?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "hello from floe (WASI 0.3), path=/some/path\n");
    let r = server.get("/raw/").await?;
    assert_eq!(
        (r.status.as_u16(), r.text()),
        (200, "hello from WASI 0.3\n".into())
    );
    let r = post(&server.url("/raw/echo"), "a request body").await?;
    assert_eq!(
        (r.status.as_u16(), r.text()),
        (200, "a request body".into())
    );
    // A wasi-http error code instead of a response: 500 function_error.
    let r = server.get("/raw/error").await?;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (500, "function_error".into())
    );
    for name in ["sdk", "raw"] {
        let i = info(&server, name).await?;
        assert_eq!(i["kind"], "http", "{i}");
        assert_eq!(i["wasi"], "0.3", "{i}");
        assert_eq!(i["instance_concurrency"], 16, "{i}");
    }
    // WASI 0.2 functions keep one request per instance.
    server.deploy("hello", HELLO, &[]).await?;
    let i = info(&server, "hello").await?;
    assert_eq!(
        (i["wasi"].clone(), i["instance_concurrency"].clone()),
        ("0.2".into(), 1.into())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_requests_are_served_by_at_most_four_instances() -> Result<()> {
    let server = Server::start()?;
    server
        .deploy(
            "raw",
            P3_RAW,
            &[("instance_concurrency", "16"), ("max_instances", "4")],
        )
        .await?;
    let paths: Vec<String> = (0..50).map(|_| "/raw/sleep?ms=300".to_owned()).collect();
    let replies = all_at_once(&server, &paths).await?;
    for (status, text) in &replies {
        assert_eq!(*status, 200, "{text}");
    }
    let i = info(&server, "raw").await?;
    let started = i["instances"]["started"].as_u64().unwrap_or(u64::MAX);
    assert!((1..=4).contains(&started), "{i}");
    let detail = server.client().instances("raw").await?;
    let served: u64 = detail["instances"]
        .as_array()
        .map(|l| l.iter().filter_map(|x| x["requests"].as_u64()).sum())
        .unwrap_or(0);
    assert_eq!(served, 50, "{detail}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrency_is_refused_for_p2_components_and_bounded_for_p3() -> Result<()> {
    let server = Server::start()?;
    let refused = server
        .client()
        .deploy(
            "hello",
            crate::harness::fixture(HELLO),
            &[("instance_concurrency".into(), "16".into())],
        )
        .await;
    match refused {
        Err(ClientError::Api {
            status, message, ..
        }) => {
            assert_eq!(status, 400, "{message}");
            assert!(message.contains("WASI 0.2"), "{message}");
        }
        other => panic!("a WASI 0.2 component with concurrency 16 deployed: {other:?}"),
    }
    server.deploy("hello", HELLO, &[]).await?;
    let refused = server
        .client()
        .configure("hello", &[("instance_concurrency".into(), "2".into())])
        .await;
    assert!(
        matches!(&refused, Err(ClientError::Api { status, .. }) if *status == 400),
        "{refused:?}"
    );
    // A WASI 0.3 function takes any value up to the server's ceiling.
    server
        .deploy("raw", P3_RAW, &[("instance_concurrency", "4")])
        .await?;
    assert_eq!(info(&server, "raw").await?["instance_concurrency"], 4);
    let refused = server
        .client()
        .configure("raw", &[("instance_concurrency".into(), "100000".into())])
        .await;
    assert!(
        matches!(&refused, Err(ClientError::Api { status, .. }) if *status == 400),
        "{refused:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn one_request_times_out_while_the_other_fifteen_on_its_instance_complete() -> Result<()> {
    let server = Server::start()?;
    server
        .deploy("raw", P3_RAW, &[("timeout", "2s"), ("max_instances", "1")])
        .await?;
    // The instance is up before the requests arrive together.
    assert_eq!(server.get("/raw/").await?.status, 200);
    let mut paths = vec!["/raw/sleep?ms=10000".to_owned()];
    paths.extend((0..15).map(|_| "/raw/sleep?ms=300".to_owned()));
    let replies = all_at_once(&server, &paths).await?;
    assert_eq!(replies[0].0, 504, "{}", replies[0].1);
    assert!(replies[0].1.contains("\"timeout\""), "{}", replies[0].1);
    for (status, text) in &replies[1..] {
        assert_eq!((*status, text.as_str()), (200, "slept 300 ms\n"));
    }
    // The instance that held the abandoned task drains and goes; the next
    // request gets a new one.
    eventually(
        std::time::Duration::from_secs(10),
        "the drained instance to stop",
        || async { Ok(info(&server, "raw").await?["instances"]["stopped"] == 1) },
    )
    .await?;
    let r = server.get("/raw/").await?;
    assert_eq!(r.status, 200, "{}", r.text());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spinning_request_stops_its_instance_and_the_others_on_it_are_told() -> Result<()> {
    let server = Server::start()?;
    server
        .deploy("raw", P3_RAW, &[("timeout", "2s"), ("max_instances", "1")])
        .await?;
    // The instance is up before the requests arrive together.
    assert_eq!(server.get("/raw/").await?.status, 200);
    // The spin starts first; the others join it on its instance well after
    // it (by the instance's age, the server's clock), so their own deadlines
    // come later than the stop the spin's deadline brings. Had they arrived
    // with it, their deadlines could pass within the epoch tick the stop
    // takes, and 504 `timeout` would be their right answer.
    let (spin, others) = tokio::join!(server.get("/raw/spin"), async {
        let spin_seen_at = std::cell::Cell::new(None::<u64>);
        eventually(
            std::time::Duration::from_secs(5),
            "the spin to have run for 700 ms",
            || async {
                let detail = server.client().instances("raw").await?;
                let instance = &detail["instances"][0];
                let age = instance["age_ms"].as_u64().unwrap_or(0);
                if spin_seen_at.get().is_none() && instance["in_flight"] == 1 {
                    spin_seen_at.set(Some(age));
                }
                Ok(spin_seen_at.get().is_some_and(|seen| age >= seen + 700))
            },
        )
        .await?;
        let paths: Vec<String> = (0..5).map(|_| "/raw/sleep?ms=20000".to_owned()).collect();
        join_all(paths.iter().map(|p| server.get(p)))
            .await
            .into_iter()
            .collect::<Result<Vec<_>>>()
    });
    let mut replies = vec![spin?];
    replies.extend(others?);
    assert_eq!(replies[0].status, 504, "{}", replies[0].text());
    for r in &replies[1..] {
        // Answered when the instance was stopped, long before the 20 s
        // their guest would take or their own 2 s timeout could matter.
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (503, "instance_lost".into()),
            "{}",
            r.text()
        );
        assert_eq!(r.headers["retry-after"], "1");
    }
    let r = server.get("/raw/").await?;
    assert_eq!(r.status, 200, "a new instance serves: {}", r.text());
    let i = info(&server, "raw").await?;
    assert_eq!(i["instances"]["started"], 2, "{i}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_p3_guests_get_their_own_answer_and_stop_only_their_instance() -> Result<()> {
    let server = Server::start()?;
    server
        .deploy("raw", P3_RAW, &[("memory", "32MiB"), ("timeout", "10s")])
        .await?;
    // A trap while another request waits on the same instance: the trap is
    // told apart, the other request is told its instance went.
    let (sleeper, trap) = tokio::join!(server.get("/raw/sleep?ms=5000"), async {
        eventually(
            std::time::Duration::from_secs(5),
            "the sleeper to be in flight",
            || async {
                let detail = server.client().instances("raw").await?;
                Ok(detail["instances"][0]["in_flight"] == 1)
            },
        )
        .await?;
        server.get("/raw/trap").await
    });
    let (sleeper, trap) = (sleeper?, trap?);
    assert_eq!(
        (trap.status.as_u16(), trap.code()),
        (500, "trap".into()),
        "{}",
        trap.text()
    );
    assert_eq!(
        (sleeper.status.as_u16(), sleeper.code()),
        (503, "instance_lost".into())
    );
    // The memory limit is the instance's, shared by its requests.
    let r = server.get("/raw/hog").await?;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (500, "memory_limit".into()),
        "{}",
        r.text()
    );
    let r = server.get("/raw/").await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let i = info(&server, "raw").await?;
    assert_eq!(
        i["instances"]["live"], 1,
        "failed instances are never reused: {i}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn pre_freeze_runs_after_the_last_of_concurrent_requests() -> Result<()> {
    let server = Server::start()?;
    server
        .deploy("hooks", HOOKS_P3, &[("max_instances", "1")])
        .await?;
    let paths: Vec<String> = (0..8).map(|_| "/hooks/?ms=300".to_owned()).collect();
    let replies = all_at_once(&server, &paths).await?;
    for (status, text) in &replies {
        assert_eq!(
            (*status, text.as_str()),
            (200, "primes=Some(9592) freezes=0 early=0\n")
        );
    }
    let freezes = || async {
        let detail = server.client().instances("hooks").await?;
        Ok::<_, anyhow::Error>(detail["instances"][0]["hooks"]["pre_freeze"]["calls"].as_u64())
    };
    eventually(
        std::time::Duration::from_secs(5),
        "pre-freeze to run",
        || async { Ok(freezes().await? == Some(1)) },
    )
    .await?;
    let r = server.get("/hooks/").await?;
    assert_eq!(r.text(), "primes=Some(9592) freezes=1 early=0\n");
    // pre-stop runs once when the instance goes.
    server.client().delete("hooks").await?;
    eventually(
        std::time::Duration::from_secs(5),
        "pre-stop to run",
        || async { Ok(server.log().contains("pre-stop after 2 freezes")) },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn fan_out_awaits_its_upstream_without_holding_the_instance() -> Result<()> {
    // Outbound requests are bounded per request in flight: 2 each here,
    // while every request makes one, wave after wave.
    let server = Server::builder()
        .env("FLOE_OUTBOUND__ALLOW_DATA_PLANE", "true")
        .env("FLOE_OUTBOUND__MAX_REQUESTS_PER_CALL", "2")
        .start()?;
    let data = server.data.port();
    server.deploy("upstream", P3_RAW, &[]).await?;
    server
        .deploy(
            "fan-out",
            FAN_OUT,
            &[
                (
                    "allowed_outbound_hosts",
                    &format!("http://127.0.0.1:{data}"),
                ),
                ("max_instances", "1"),
                ("timeout", "1500ms"),
            ],
        )
        .await?;
    // 16 requests on one instance, each awaiting a 400 ms upstream: one
    // after the other they would need 6.4 s, far past the timeout.
    let url = format!("http://127.0.0.1:{data}/upstream/sleep?ms=400");
    let paths: Vec<String> = (0..16).map(|_| format!("/fan-out/?url={url}")).collect();
    for _wave in 0..3 {
        let replies = all_at_once(&server, &paths).await?;
        for (status, text) in &replies {
            assert_eq!(
                (*status, text.as_str()),
                (200, "status=200 bytes=13 calls=1\n")
            );
        }
    }
    assert_eq!(info(&server, "fan-out").await?["instances"]["started"], 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spin_whose_client_went_away_is_still_stopped() -> Result<()> {
    let server = Server::start()?;
    server
        .deploy("raw", P3_RAW, &[("timeout", "1s"), ("max_instances", "1")])
        .await?;
    // The client gives up long before the timeout: nobody waits for the
    // answer, and the spin must end all the same.
    let gave_up = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        server.get("/raw/spin"),
    )
    .await;
    assert!(gave_up.is_err(), "the spin answered: {gave_up:?}");
    eventually(
        std::time::Duration::from_secs(10),
        "the spinning instance to stop",
        || async { Ok(info(&server, "raw").await?["instances"]["stopped"] == 1) },
    )
    .await?;
    let r = server.get("/raw/").await?;
    assert_eq!(r.status, 200, "{}", r.text());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn without_reuse_each_request_gets_its_own_p3_instance() -> Result<()> {
    let server = Server::start()?;
    server.deploy("raw", P3_RAW, &[("reuse", "false")]).await?;
    let paths: Vec<String> = (0..5).map(|_| "/raw/sleep?ms=200".to_owned()).collect();
    for (status, text) in all_at_once(&server, &paths).await? {
        assert_eq!(status, 200, "{text}");
    }
    let i = info(&server, "raw").await?;
    assert_eq!(i["instances"]["started"], 5, "{i}");
    Ok(())
}

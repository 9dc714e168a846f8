//! Autoscaling: scale-out on demand and back to the floor, reservation
//! policies, fairness of the server-wide budget, the bounded queue, and
//! metering.

use crate::harness::{Collector, Server, eventually, get, send};
use anyhow::Result;
use bytes::Bytes;
use floe_cli::client::ClientError;
use floe_tests::fixtures::{HELLO, HOOKS, SLOW};
use http::Request;
use http_body_util::Full;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

async fn info(server: &Server, name: &str) -> Result<serde_json::Value> {
    Ok(server.client().info(name).await?)
}

fn live(info: &serde_json::Value) -> u64 {
    info["instances"]["live"].as_u64().unwrap_or(u64::MAX)
}

/// Each live instance's time parked so far (idle or frozen, the current
/// stretch included), milliseconds, by instance id.
async fn parked_ms(server: &Server, name: &str) -> Result<HashMap<u64, f64>> {
    let detail = server.client().instances(name).await?;
    let list = detail["instances"].as_array().cloned().unwrap_or_default();
    Ok(list
        .iter()
        .filter_map(|i| Some((i["id"].as_u64()?, i["metering"]["frozen_ms"].as_f64()?)))
        .collect())
}

/// How long ago an instance of `/v1/functions/{name}/instances` ended its
/// last request, by the server's clock (its start time plus its age is the
/// time of the listing), milliseconds.
fn since_last_request_ms(instance: &serde_json::Value) -> u64 {
    let ms = |key: &str| instance[key].as_u64().unwrap_or(0);
    (ms("started_at_ms") + ms("age_ms")).saturating_sub(ms("last_used_at_ms"))
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_requests_scale_out_from_zero_and_back_with_pre_stop() -> Result<()> {
    let server = Server::start()?;
    let collector = Collector::start().await?;
    server
        .deploy(
            "hooks",
            HOOKS,
            &[
                ("max_instances", "50"),
                ("idle_ttl", "1s"),
                ("allowed_outbound_hosts", &collector.allow()),
            ],
        )
        .await?;
    assert_eq!(live(&info(&server, "hooks").await?), 0, "nothing reserved");

    let requests = (0..50).map(|_| {
        let request = Request::get(server.url("/hooks/?sleep=600"))
            .header("x-collector", collector.url.as_str())
            .body(Full::<Bytes>::default());
        tokio::spawn(async move { send(request?).await })
    });
    let mut instances = HashSet::new();
    for r in futures::future::join_all(requests).await {
        let r = r??;
        assert_eq!(r.status, 200, "{}", r.text());
        instances.insert(r.text());
    }
    let after_burst = info(&server, "hooks").await?;
    assert_eq!(
        after_burst["instances"]["started"], 50,
        "one instance per concurrent request: {after_burst}"
    );
    assert_eq!(
        instances.len(),
        50,
        "each request had an instance of its own"
    );

    // Back to zero after idle_ttl, each instance stopped with its pre-stop.
    eventually(Duration::from_secs(15), "scale back to zero", || async {
        Ok(live(&info(&server, "hooks").await?) == 0)
    })
    .await?;
    eventually(Duration::from_secs(10), "50 pre-stops", || async {
        Ok(collector.starting("stop").len() >= 50)
    })
    .await?;
    let stops = collector.starting("stop");
    let distinct: HashSet<&str> = stops
        .iter()
        .filter_map(|l| l.split(' ').find_map(|kv| kv.strip_prefix("instance=")))
        .collect();
    assert_eq!(
        (stops.len(), distinct.len()),
        (50, 50),
        "exactly one pre-stop per instance"
    );
    let view = info(&server, "hooks").await?;
    assert_eq!(view["scaling"]["policy"], "none");
    assert_eq!(view["scaling"]["target"], 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fixed_reservation_keeps_n_warm_across_idle_periods() -> Result<()> {
    let server = Server::start()?;
    server
        .deploy(
            "slow",
            SLOW,
            &[("min_instances", "3"), ("idle_ttl", "300ms")],
        )
        .await?;
    // Started ahead of any request.
    eventually(Duration::from_secs(5), "3 reserved instances", || async {
        let i = info(&server, "slow").await?;
        Ok(live(&i) == 3 && i["scaling"]["instances"]["idle"] == 3)
    })
    .await?;
    let view = info(&server, "slow").await?;
    assert_eq!(view["scaling"]["policy"], "fixed");
    assert_eq!(view["scaling"]["decided_by"], "fixed");
    assert_eq!(view["scaling"]["target"], 3);

    // A burst above the floor scales out, then back to the floor, not to 0.
    let burst = (0..8).map(|_| {
        let url = server.url("/slow/?ms=300");
        tokio::spawn(async move { get(&url).await })
    });
    for r in futures::future::join_all(burst).await {
        assert_eq!(r??.status, 200);
    }
    assert!(info(&server, "slow").await?["instances"]["started"].as_u64() >= Some(8));
    eventually(Duration::from_secs(10), "back to the floor", || async {
        Ok(live(&info(&server, "slow").await?) == 3)
    })
    .await?;
    // Idle periods many times idle_ttl long do not take the floor away: the
    // instances stay parked through five more idle_ttl (300ms) periods, as
    // the server meters it.
    let parked = parked_ms(&server, "slow").await?;
    eventually(Duration::from_secs(15), "5 x idle_ttl parked", || async {
        let now = parked_ms(&server, "slow").await?;
        Ok(now
            .iter()
            .all(|(id, ms)| *ms >= parked.get(id).copied().unwrap_or(0.0) + 1500.0))
    })
    .await?;
    let i = info(&server, "slow").await?;
    assert_eq!(live(&i), 3, "{i}");
    assert_eq!(
        server.get("/slow/?ms=1").await?.status,
        200,
        "a reserved instance serves"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_utilization_target_starts_instances_before_the_pool_saturates() -> Result<()> {
    let server = Server::start()?;
    server
        .deploy(
            "slow",
            SLOW,
            &[(
                "reserve",
                r#"{"utilization": {"target": 0.5, "min": 1, "max": 20}}"#,
            )],
        )
        .await?;
    eventually(Duration::from_secs(5), "the utilization floor", || async {
        Ok(live(&info(&server, "slow").await?) == 1)
    })
    .await?;

    // Four requests in flight at a 0.5 target: eight instances, four of them
    // idle and ready for the next requests.
    let busy = (0..4).map(|_| {
        let url = server.url("/slow/?ms=2500");
        tokio::spawn(async move { get(&url).await })
    });
    let busy: Vec<_> = busy.collect();
    eventually(Duration::from_secs(2), "pre-warmed instances", || async {
        let i = info(&server, "slow").await?;
        let s = &i["scaling"];
        Ok(s["target"] == 8
            && s["decided_by"] == "utilization"
            && s["instances"]["busy"] == 4
            && s["instances"]["idle"] == 4)
    })
    .await?;
    for r in futures::future::join_all(busy).await {
        assert_eq!(r??.status, 200);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_and_fixed_together_are_hybrid_and_the_largest_wins() -> Result<()> {
    let server = Server::start()?;
    // A window open all week: its count wins over min_instances.
    server
        .deploy(
            "hello",
            HELLO,
            &[
                ("min_instances", "1"),
                (
                    "reserve",
                    r#"{"scheduled": [{"days": "*", "from": "00:00", "to": "24:00",
                        "instances": 4, "timezone": "Europe/Paris"}]}"#,
                ),
            ],
        )
        .await?;
    eventually(Duration::from_secs(5), "4 reserved instances", || async {
        Ok(live(&info(&server, "hello").await?) == 4)
    })
    .await?;
    let view = info(&server, "hello").await?;
    let scaling = &view["scaling"];
    assert_eq!(scaling["policy"], "hybrid");
    assert_eq!(scaling["decided_by"], "scheduled");
    assert!(
        scaling["reason"]
            .as_str()
            .is_some_and(|r| r.contains("Europe/Paris")),
        "{scaling}"
    );
    assert_eq!(
        view["settings"]["reserve"]["scheduled"][0]["days"], "*",
        "{view}"
    );

    // Dropping the window takes the target back to min_instances.
    server
        .client()
        .configure("hello", &[("reserve".into(), "none".into())])
        .await?;
    eventually(Duration::from_secs(5), "back to min_instances", || async {
        let i = info(&server, "hello").await?;
        Ok(i["scaling"]["decided_by"] == "fixed" && i["scaling"]["target"] == 1)
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_scaling_settings_are_refused_with_400() -> Result<()> {
    let server = Server::start()?;
    server.deploy("hello", HELLO, &[]).await?;
    let cases = [
        ("min_instances", "65"),
        ("instance_concurrency", "4"),
        ("reserve", r#"{"utilization": {"target": 2}}"#),
        (
            "reserve",
            r#"{"scheduled": [{"days": "someday", "from": "09:00", "to": "10:00", "instances": 1}]}"#,
        ),
        (
            "reserve",
            r#"{"scheduled": [{"days": "*", "from": "09:00", "to": "10:00", "instances": 1, "timezone": "Nowhere/Atlantis"}]}"#,
        ),
        ("reserve", "fixed"),
    ];
    for (key, value) in cases {
        let refused = server
            .client()
            .configure("hello", &[(key.into(), value.into())])
            .await;
        match refused {
            Err(ClientError::Api {
                status,
                code,
                message,
                ..
            }) => {
                assert_eq!((status.as_u16(), code.as_str()), (400, "bad_request"));
                assert!(message.contains(key), "{key}={value}: {message}");
            }
            other => panic!("{key}={value} was not refused: {other:?}"),
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_at_its_burst_cannot_take_another_functions_reserved_slots() -> Result<()> {
    let server = Server::builder()
        .env("FLOE_LIMITS__MAX_INSTANCES_TOTAL", "8")
        .env("FLOE_FUNCTIONS__MAX_INSTANCES", "8")
        .start()?;
    server
        .deploy(
            "calm",
            SLOW,
            &[("min_instances", "2"), ("queue_timeout", "100ms")],
        )
        .await?;
    server
        .deploy(
            "flood",
            SLOW,
            &[
                ("max_instances", "8"),
                ("max_queue", "8"),
                ("queue_timeout", "200ms"),
            ],
        )
        .await?;
    eventually(Duration::from_secs(5), "calm's reservation", || async {
        Ok(live(&info(&server, "calm").await?) == 2)
    })
    .await?;

    let flood = (0..60).map(|_| {
        let url = server.url("/flood/?ms=400");
        tokio::spawn(async move { get(&url).await })
    });
    let flood: Vec<_> = flood.collect();
    // The flood is at its burst: the server's budget of 8 is in use (calm's
    // 2 and the 6 others).
    eventually(Duration::from_secs(5), "the flood at its burst", || async {
        let metrics = get(&server.control_url("/metrics")).await?.text();
        Ok(metrics.lines().any(|l| l == "floe_instances_total 8"))
    })
    .await?;
    // While the flood runs, calm is served by its reserved instances.
    let mut calm_ok = 0;
    for _ in 0..10 {
        let r = server.get("/calm/?ms=20").await?;
        assert_eq!(r.status, 200, "calm got {}: {}", r.status, r.text());
        calm_ok += 1;
    }
    let (mut ok, mut overloaded) = (0, 0);
    for r in futures::future::join_all(flood).await {
        let r = r??;
        match r.status.as_u16() {
            200 => ok += 1,
            503 => {
                assert!(r.headers.contains_key("retry-after"));
                overloaded += 1;
            }
            other => panic!("flood got {other}: {}", r.text()),
        }
    }
    assert_eq!(calm_ok, 10);
    assert!(ok > 0 && overloaded > 0, "ok {ok}, overloaded {overloaded}");
    let flood_info = info(&server, "flood").await?;
    assert!(
        flood_info["instances"]["started"].as_u64() <= Some(6),
        "flood took no more than the 6 unreserved slots: {flood_info}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_queue_is_bounded_in_length_and_in_time() -> Result<()> {
    let server = Server::start()?;
    // Length: one instance busy, two may wait, the rest are refused at once.
    server
        .deploy(
            "short",
            SLOW,
            &[
                ("max_instances", "1"),
                ("max_queue", "2"),
                ("queue_timeout", "30s"),
            ],
        )
        .await?;
    let first = {
        let url = server.url("/short/?ms=1500");
        tokio::spawn(async move { get(&url).await })
    };
    eventually(Duration::from_secs(5), "the instance busy", || async {
        Ok(info(&server, "short").await?["instances"]["busy"] == 1)
    })
    .await?;
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let url = server.url("/short/?ms=1");
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    eventually(Duration::from_secs(2), "two queued", || async {
        Ok(info(&server, "short").await?["instances"]["queued"] == 2)
    })
    .await?;
    let started = std::time::Instant::now();
    let refused = server.get("/short/?ms=1").await?;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.code(), "overloaded");
    assert!(refused.headers.contains_key("retry-after"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a full queue refuses at once"
    );
    assert_eq!(first.await??.status, 200);
    for w in waiting {
        assert_eq!(w.await??.status, 200);
    }

    // Time: a request that waits past queue_timeout is refused.
    server
        .deploy(
            "brief",
            SLOW,
            &[
                ("max_instances", "1"),
                ("max_queue", "100"),
                ("queue_timeout", "200ms"),
            ],
        )
        .await?;
    let busy = {
        let url = server.url("/brief/?ms=1500");
        tokio::spawn(async move { get(&url).await })
    };
    eventually(Duration::from_secs(5), "the instance busy", || async {
        Ok(info(&server, "brief").await?["instances"]["busy"] == 1)
    })
    .await?;
    let waited = std::time::Instant::now();
    let late = server.get("/brief/?ms=1").await?;
    assert_eq!(late.status, 503);
    assert_eq!(late.code(), "overloaded");
    assert!(late.headers.contains_key("retry-after"));
    assert!(
        waited.elapsed() >= Duration::from_millis(200),
        "refused after waiting its queue_timeout"
    );

    // A client that gives up leaves the queue at once.
    let gone = {
        let url = server.url("/brief/?ms=1");
        tokio::spawn(async move { get(&url).await })
    };
    eventually(Duration::from_secs(1), "one queued", || async {
        Ok(info(&server, "brief").await?["instances"]["queued"] == 1)
    })
    .await?;
    gone.abort();
    eventually(Duration::from_millis(500), "the queue empty", || async {
        Ok(info(&server, "brief").await?["instances"]["queued"] == 0)
    })
    .await?;
    assert_eq!(busy.await??.status, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn invocations_busy_frozen_and_hook_time_are_metered_in_compute_units() -> Result<()> {
    let server = Server::start()?;
    let collector = Collector::start().await?;
    server
        .deploy(
            "hooks",
            HOOKS,
            &[
                ("memory", "512MiB"),
                ("allowed_outbound_hosts", &collector.allow()),
            ],
        )
        .await?;
    for _ in 0..3 {
        let r = send(
            Request::get(server.url("/hooks/?sleep=100"))
                .header("x-collector", collector.url.as_str())
                .body(Full::<Bytes>::default())?,
        )
        .await?;
        assert_eq!(r.status, 200);
    }
    // The instance has run its pre-freeze after the last request and stayed
    // parked for 300ms since that request ended.
    eventually(Duration::from_secs(10), "frozen 300ms", || async {
        let detail = server.client().instances("hooks").await?;
        Ok(detail["instances"].as_array().is_some_and(|list| {
            !list.is_empty()
                && list
                    .iter()
                    .all(|i| i["state"] == "frozen" && since_last_request_ms(i) >= 300)
        }))
    })
    .await?;
    let view = info(&server, "hooks").await?;
    let m = &view["metering"];
    assert_eq!(m["invocations"], 3, "{view}");
    let busy = m["busy_ms"].as_f64().unwrap_or(0.0);
    assert!(busy >= 300.0, "{m}");
    assert!(
        m["hook_ms"].as_f64() > Some(0.0),
        "pre-freeze is metered: {m}"
    );
    // 0.5 GB for at least 0.3 s.
    let cu = m["compute_units"].as_f64().unwrap_or(0.0);
    assert!(cu >= 0.5 * 0.3 && cu < 0.5 * (busy / 1000.0 + 1.0), "{m}");

    let detail = server.client().instances("hooks").await?;
    let instance = &detail["instances"][0];
    assert_eq!(instance["metering"]["invocations"], 3, "{instance}");
    assert!(
        instance["metering"]["frozen_ms"].as_f64() > Some(100.0),
        "parked time counts while parked: {instance}"
    );

    let metrics = get(&server.control_url("/metrics")).await?.text();
    for series in [
        "floe_invocations_total{function=\"hooks\"} 3",
        "floe_compute_units_total{function=\"hooks\"}",
        "floe_frozen_seconds_total{function=\"hooks\"}",
        "floe_hook_seconds_total{function=\"hooks\"}",
        "floe_instance_compute_units_total{function=\"hooks\",instance=",
        "floe_scaling_target{function=\"hooks\"} 0",
    ] {
        assert!(metrics.contains(series), "{series} missing from /metrics");
    }
    Ok(())
}

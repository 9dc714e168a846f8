//! Checks of the example functions that every SDK's examples share a spec
//! with (`functions-examples/{js,python}/{json-api,metrics-flush}`): one
//! check, whatever language the function is written in.

use crate::harness::{Collector, Server, eventually, send};
use anyhow::Result;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use std::collections::BTreeMap;
use std::time::Duration;

/// The JSON API example, deployed as `name` with one instance: every route
/// and every status it answers.
pub(crate) async fn check_json_api(server: &Server, name: &str) -> Result<()> {
    let call = |method: &str, path: &str, body: &'static str| {
        Request::builder()
            .method(method)
            .uri(server.url(&format!("/{name}{path}")))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
    };
    let r = send(call("GET", "/notes", "")?).await?;
    assert_eq!((r.status.as_u16(), r.json()), (200, serde_json::json!([])));
    assert!(
        r.headers["content-type"]
            .to_str()?
            .starts_with("application/json")
    );
    let r = send(call("POST", "/notes", r#"{"text": "first"}"#)?).await?;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({"id": 1, "text": "first"}));
    let r = send(call("POST", "/notes", r#"{"text": "second"}"#)?).await?;
    assert_eq!(r.json()["id"], 2, "{}", r.text());
    let r = send(call("GET", "/notes", "")?).await?;
    assert_eq!(r.json().as_array().map(Vec::len), Some(2), "{}", r.text());
    let r = send(call("GET", "/notes/2", "")?).await?;
    assert_eq!(
        (r.status.as_u16(), r.json()["text"].clone()),
        (200, "second".into())
    );
    let r = send(call("GET", "/notes/9", "")?).await?;
    assert_eq!(
        (r.status.as_u16(), r.json()["error"].clone()),
        (404, "not found".into())
    );
    for bad in ["{not json", r#"{"text": 3}"#, "[]"] {
        let r = send(call("POST", "/notes", bad)?).await?;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(r.json()["error"].is_string(), "{}", r.text());
    }
    let r = send(call("PUT", "/notes", "{}")?).await?;
    assert_eq!(r.status, 405, "{}", r.text());
    let allow = r.headers["allow"].to_str()?.to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let r = send(call("DELETE", "/notes/1", "")?).await?;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = send(call("DELETE", "/notes/1", "")?).await?;
    assert_eq!(r.status, 404, "{}", r.text());
    let r = send(call("GET", "/notes/1", "")?).await?;
    assert_eq!(r.status, 404, "{}", r.text());
    // Ids are not reused.
    let r = send(call("POST", "/notes", r#"{"text": "third"}"#)?).await?;
    assert_eq!((r.status.as_u16(), r.json()["id"].clone()), (201, 3.into()));
    let r = send(call("GET", "/elsewhere", "")?).await?;
    assert_eq!(
        (r.status.as_u16(), r.json()["error"].clone()),
        (404, "no route".into())
    );
    Ok(())
}

/// Sums the counts of the collector's lines from `hook`.
fn counted(collector: &Collector, hook: &str) -> (usize, BTreeMap<String, u64>) {
    let mut sums = BTreeMap::new();
    let mut lines = 0;
    for line in collector.lines() {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if value["hook"] != hook {
            continue;
        }
        lines += 1;
        for (path, n) in value["counts"].as_object().into_iter().flatten() {
            *sums.entry(path.clone()).or_insert(0) += n.as_u64().unwrap_or(0);
        }
    }
    (lines, sums)
}

/// The metrics-flush example, deployed as `name` with one instance: its
/// `pre-freeze` flushes what requests counted to a collector on loopback,
/// over outbound HTTP, and its `pre-stop` says goodbye when the function is
/// deleted.
pub(crate) async fn check_metrics_flush(server: &Server, name: &str) -> Result<()> {
    let collector = Collector::start().await?;
    server
        .client()
        .configure(
            name,
            &[("allowed_outbound_hosts".into(), collector.allow())],
        )
        .await?;
    for path in ["/a", "/a?x=1", "/b"] {
        let r = send(
            Request::get(server.url(&format!("/{name}{path}")))
                .header("x-collector", collector.url.as_str())
                .body(Full::<Bytes>::default())?,
        )
        .await?;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().starts_with("counted /"), "{}", r.text());
    }
    let want: BTreeMap<String, u64> = [("/a".to_owned(), 2), ("/b".to_owned(), 1)].into();
    eventually(Duration::from_secs(20), "pre-freeze flushes", || {
        let got = counted(&collector, "pre-freeze").1;
        let want = want.clone();
        async move { Ok(got == want) }
    })
    .await?;
    assert!(
        counted(&collector, "pre-stop").0 == 0,
        "{:?}",
        collector.lines()
    );
    server.client().delete(name).await?;
    eventually(Duration::from_secs(20), "pre-stop on delete", || {
        let lines = counted(&collector, "pre-stop").0;
        async move { Ok(lines == 1) }
    })
    .await?;
    Ok(())
}

/// The event-echo example, deployed as `name`: bytes reversed as bytes, its
/// errors typed (`failure` is how the language words the failure). Returns
/// what it answers to `context`.
pub(crate) async fn check_event_echo(
    server: &Server,
    name: &str,
    failure: &str,
) -> Result<serde_json::Value> {
    let post = |body: &'static [u8]| {
        Request::post(server.url(&format!("/{name}")))
            .header("content-type", "application/x-test")
            .body(Full::new(Bytes::from_static(body)))
    };
    let r = send(post(b"ab\xff\x00c")?).await?;
    assert_eq!(
        (r.status.as_u16(), r.body.as_ref()),
        (200, &b"c\x00\xffba"[..])
    );
    let r = send(post(b"")?).await?;
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_input".into()));
    assert_eq!(r.json()["message"], "empty payload");
    let r = send(post(b"fail")?).await?;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (500, "function_error".into())
    );
    assert_eq!(r.json()["message"], failure);
    let r = send(post(b"context")?).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let context = r.json();
    assert_eq!(context["function"], name);
    assert_eq!(context["content_type"], "application/x-test");
    Ok(context)
}

/// The init-index example, deployed as `name`: `init` ran once, before the
/// first request, and the deploy says how. Returns its answer for `floe`.
pub(crate) async fn check_init_index(
    server: &Server,
    name: &str,
    component: &str,
) -> Result<serde_json::Value> {
    let deployed = server.deploy(name, component, &[]).await?;
    let mode = deployed["init"].as_str().unwrap_or_default().to_owned();
    assert!(mode == "snapshot" || mode == "instance", "{deployed}");
    if mode == "instance" {
        assert!(deployed["init_reason"].is_string(), "{deployed}");
    }
    let mut body = serde_json::Value::Null;
    for _ in 0..2 {
        let r = server.get(&format!("/{name}/?word=Floe")).await?;
        assert_eq!(r.status, 200, "{}", r.text());
        body = r.json();
        assert_eq!(body["word"], "floe");
        assert_eq!(body["init_runs"], 1);
        assert!(body["count"].as_u64() > Some(1_000), "{body}");
    }
    Ok(body)
}

/// The secret [`check_config_reader`] sets (`api_token`).
pub(crate) const CONFIG_READER_SECRET: &str = "s3cr3t-PLAINTEXT-4711";

/// The config-reader example, deployed as `name`: its `init` reads the
/// store (so it runs per instance), a variable and a secret set later
/// reach new instances after the old one's `pre-stop`, and nothing answers
/// the secret's value.
pub(crate) async fn check_config_reader(
    server: &Server,
    name: &str,
    component: &str,
) -> Result<()> {
    const SECRET: &str = CONFIG_READER_SECRET;
    let deployed = server.deploy(name, component, &[]).await?;
    // `init` reads the store: it is not snapshotted, and the deploy says why.
    assert_eq!(deployed["init"], "instance", "{deployed}");
    assert!(
        deployed["init_reason"]
            .as_str()
            .is_some_and(|r| r.contains("wasi:config/store")),
        "{deployed}"
    );
    assert_eq!(
        server.get(&format!("/{name}/")).await?.text(),
        "hello from config-reader\n"
    );
    let info = server
        .client()
        .configure(
            name,
            &[
                ("var.greeting".into(), "hi".into()),
                ("secret.api_token".into(), SECRET.into()),
            ],
        )
        .await?;
    assert!(!info.to_string().contains(SECRET), "{info}");
    eventually(
        std::time::Duration::from_secs(10),
        "the old instance's pre-stop",
        || async {
            Ok(server
                .log()
                .contains("config-reader pre-stop greeting=hello"))
        },
    )
    .await?;
    assert_eq!(
        server.get(&format!("/{name}/")).await?.text(),
        "hi from config-reader\n"
    );
    assert_eq!(
        server.get(&format!("/{name}/var/greeting")).await?.text(),
        "hi\n"
    );
    assert_eq!(server.get(&format!("/{name}/var/nope")).await?.status, 404);
    let r = server
        .get(&format!("/{name}/secret/api_token?expect={SECRET}"))
        .await?;
    assert_eq!(r.text(), format!("match=true len={}\n", SECRET.len()));
    assert_eq!(
        server.get(&format!("/{name}/keys")).await?.text(),
        "api_token\ngreeting\n"
    );
    assert!(!server.log().contains(SECRET));
    Ok(())
}

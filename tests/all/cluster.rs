//! Cluster mode against a real etcd and a real OCI registry, both started by
//! the tests on loopback: a deploy on one node reaches every node, versions
//! stay distinct under concurrent deploys, nodes catch up after a restart,
//! keep serving without etcd, and never load bytes that do not match the
//! digest etcd recorded.

use crate::harness::{Reply, Server, eventually, fixture, send};
use crate::services::{Etcd, Registry, installed};
use anyhow::{Result, bail};
use bytes::Bytes;
use floe::store::Digest;
use floe_tests::fixtures::{ECHO, EVENT_ECHO, HELLO};
use http::Request;
use http_body_util::Full;
use std::time::Duration;

/// Time for every node to converge in these tests (the goal is a second).
const CONVERGE: Duration = Duration::from_secs(20);

/// Whether the services these tests start are installed (the test command
/// installs them; a developer's machine may lack them).
fn services_installed() -> bool {
    let all = ["etcd", "etcdctl", "docker-registry"]
        .iter()
        .all(|p| installed(p));
    if !all {
        eprintln!(
            "skipped: etcd, etcdctl or docker-registry is not installed (scripts/setup installs them)"
        );
    }
    all
}

/// A component that is `base` with a custom section holding `n`: other
/// bytes (a new version), the same behaviour.
fn variant(base: &str, n: u32) -> Bytes {
    let mut bytes = fixture(base).to_vec();
    let name = b"floe-test";
    let payload = n.to_string();
    let size = 1 + name.len() + payload.len();
    bytes.push(0);
    bytes.push(u8::try_from(size).unwrap_or(127));
    bytes.push(u8::try_from(name.len()).unwrap_or(0));
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload.as_bytes());
    Bytes::from(bytes)
}

/// etcd, a registry, and floe nodes joined to them.
struct Fleet {
    etcd: Etcd,
    registry: Registry,
    nodes: Vec<Server>,
    token_dir: tempfile::TempDir,
}

impl Fleet {
    async fn start(size: usize) -> Result<Self> {
        Self::on(Etcd::start(1).await?, size).await
    }

    async fn on(etcd: Etcd, size: usize) -> Result<Self> {
        let registry = Registry::start().await?;
        let token_dir = tempfile::tempdir()?;
        std::fs::write(
            token_dir.path().join("token"),
            "cluster-test-token-0123456789",
        )?;
        let mut fleet = Self {
            etcd,
            registry,
            nodes: Vec::new(),
            token_dir,
        };
        for i in 0..size {
            let node = fleet.node(&format!("node-{i}"))?;
            fleet.nodes.push(node);
        }
        for node in &fleet.nodes {
            wait_synced(node).await?;
        }
        Ok(fleet)
    }

    /// A new node joined to the fleet's etcd and registry.
    fn node(&self, id: &str) -> Result<Server> {
        Server::builder()
            .env("FLOE_CLUSTER__ETCD", &self.etcd.endpoints_toml())
            .env(
                "FLOE_CLUSTER__REGISTRY",
                &format!("http://{}/floe", self.registry.host()),
            )
            .env("FLOE_CLUSTER__NODE_ID", id)
            .env("FLOE_CLUSTER__LEASE_TTL", "2s")
            .env("FLOE_CLUSTER__TIMEOUT", "2s")
            .env(
                "FLOE_SERVER__TOKEN_FILE",
                &self.token_dir.path().join("token").display().to_string(),
            )
            .start()
    }

    /// etcd's keys of function `name`.
    fn keys(&self, name: &str) -> Result<Vec<(String, String)>> {
        self.etcd.dump(&format!("/floe/v1/functions/{name}/"))
    }
}

/// Waits until `node` has listed etcd and etcd answers it.
async fn wait_synced(node: &Server) -> Result<()> {
    eventually(CONVERGE, "the node is synced with etcd", || async {
        let r = crate::harness::get(&node.control_url("/readyz")).await?;
        let j = r.json();
        Ok(j["cluster"]["synced"] == true && j["status"] == "ready")
    })
    .await
}

async fn put(node: &Server, path: &str, body: Bytes, if_match: Option<&str>) -> Result<Reply> {
    let mut request = Request::put(node.control_url(path))
        .header("authorization", format!("Bearer {}", node.token));
    if let Some(digest) = if_match {
        request = request.header("if-match", digest);
    }
    send(request.body(Full::new(body))?).await
}

async fn control(node: &Server, method: http::Method, path: &str) -> Result<Reply> {
    send(
        Request::builder()
            .method(method)
            .uri(node.control_url(path))
            .header("authorization", format!("Bearer {}", node.token))
            .body(Full::new(Bytes::new()))?,
    )
    .await
}

/// The version `node` serves of `name` (0: none).
async fn serving(node: &Server, name: &str) -> Result<u64> {
    let r = control(node, http::Method::GET, &format!("/v1/functions/{name}")).await?;
    Ok(if r.status == 200 {
        r.json()["active_version"].as_u64().unwrap_or(0)
    } else {
        0
    })
}

/// Waits until every node in `nodes` serves `version` of `name`.
async fn converged(nodes: &[&Server], name: &str, version: u64) -> Result<()> {
    for node in nodes {
        eventually(CONVERGE, &format!("{name} v{version} served"), || async {
            Ok(serving(node, name).await? == version)
        })
        .await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_deploy_on_one_node_is_served_by_every_node() -> Result<()> {
    if !services_installed() {
        return Ok(());
    }
    let fleet = Fleet::start(3).await?;
    let [a, b, c] = [&fleet.nodes[0], &fleet.nodes[1], &fleet.nodes[2]];

    // wait=all answers once every node serves it.
    let r = put(
        a,
        "/v1/functions/greet?wait=all&timeout=20s",
        fixture(HELLO),
        None,
    )
    .await?;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["behind"], serde_json::json!([]));
    assert_eq!(r.json()["version"], 1);
    for node in [a, b, c] {
        let reply = node.get("/greet/x").await?;
        assert_eq!(reply.status, 200);
        assert!(reply.text().contains("hello from floe"), "{}", reply.text());
    }

    // A deploy on B reaches A and C (checked through the body).
    let r = put(b, "/v1/functions/greet", fixture(ECHO), None).await?;
    assert_eq!(r.status, 201, "{}", r.text());
    for node in [a, c] {
        eventually(CONVERGE, "the echo version answers", || async {
            let reply = crate::harness::post(&node.url("/greet/"), "ping").await?;
            Ok(reply.status == 200 && reply.text() == "ping")
        })
        .await?;
    }

    // The nodes list says what each serves.
    let nodes = control(c, http::Method::GET, "/v1/nodes").await?.json();
    let list = nodes["nodes"].as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 3, "{nodes}");
    for node in &list {
        assert_eq!(node["serving"]["greet"], 2, "{nodes}");
    }

    // etcd holds records, never bytes.
    let keys = fleet.keys("greet")?;
    assert!(keys.iter().any(|(k, _)| k.ends_with("/meta")), "{keys:?}");
    assert!(keys.iter().any(|(k, _)| k.ends_with("/active")), "{keys:?}");
    assert!(
        keys.iter()
            .any(|(k, _)| k.ends_with("/versions/00000000000000000002")),
        "{keys:?}"
    );
    for (key, value) in &keys {
        assert!(value.len() < 4096, "{key} holds {} bytes", value.len());
    }

    // The component is a Wasm OCI artifact that other tools read.
    let version: serde_json::Value = serde_json::from_str(
        &keys
            .iter()
            .find(|(k, _)| k.ends_with("/versions/00000000000000000002"))
            .map(|(_, v)| v.clone())
            .unwrap_or_default(),
    )?;
    let manifest = version["oci"]["manifest"].as_str().unwrap_or_default();
    let repository = version["oci"]["repository"].as_str().unwrap_or_default();
    assert_eq!(repository, format!("{}/floe/greet", fleet.registry.host()));
    assert_eq!(
        version["digest"],
        Digest::of(&fixture(ECHO)).to_string(),
        "{version}"
    );
    if installed("skopeo") {
        let out = std::process::Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{repository}@{manifest}"))
            .output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let raw: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        assert_eq!(
            raw["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(
            raw["config"]["mediaType"],
            "application/vnd.wasm.config.v0+json"
        );
        assert_eq!(raw["layers"][0]["mediaType"], "application/wasm");
        assert_eq!(raw["layers"][0]["digest"], version["digest"]);
    }
    Ok(())
}

#[tokio::test]
async fn concurrent_deploys_get_distinct_versions_and_if_match_has_one_winner() -> Result<()> {
    if !services_installed() {
        return Ok(());
    }
    let fleet = Fleet::start(2).await?;
    let [a, b] = [&fleet.nodes[0], &fleet.nodes[1]];
    let path = "/v1/functions/race";
    let mut versions = Vec::new();
    for round in 0..4 {
        let (x, y) = tokio::join!(
            put(a, path, variant(HELLO, round * 2), None),
            put(b, path, variant(HELLO, round * 2 + 1), None)
        );
        for r in [x?, y?] {
            assert_eq!(r.status, 201, "{}", r.text());
            versions.push(r.json()["version"].as_u64().unwrap_or(0));
        }
    }
    let mut sorted = versions.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted,
        (1..=8).collect::<Vec<u64>>(),
        "versions {versions:?}"
    );

    // Both ask to replace the same active version: one wins, one is told.
    converged(&[a, b], "race", 8).await?;
    let active = control(a, http::Method::GET, "/v1/functions/race")
        .await?
        .json();
    let digest = active["digest"].as_str().unwrap_or_default().to_owned();
    let (x, y) = tokio::join!(
        put(a, path, variant(HELLO, 100), Some(&digest)),
        put(b, path, variant(HELLO, 101), Some(&digest))
    );
    let mut statuses = vec![x?.status.as_u16(), y?.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, vec![201, 412]);
    converged(&[a, b], "race", 9).await
}

#[tokio::test]
async fn rollback_and_delete_reach_every_node() -> Result<()> {
    if !services_installed() {
        return Ok(());
    }
    let fleet = Fleet::start(3).await?;
    let [a, b, c] = [&fleet.nodes[0], &fleet.nodes[1], &fleet.nodes[2]];
    for bytes in [fixture(HELLO), fixture(ECHO)] {
        let r = put(a, "/v1/functions/rb?wait=all&timeout=20s", bytes, None).await?;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let r = control(b, http::Method::POST, "/v1/functions/rb/rollback").await?;
    assert_eq!(r.status, 200, "{}", r.text());
    converged(&[a, b, c], "rb", 1).await?;
    for node in [a, c] {
        assert!(node.get("/rb/").await?.text().contains("hello from floe"));
    }
    let r = control(c, http::Method::DELETE, "/v1/functions/rb").await?;
    assert_eq!(r.status, 204, "{}", r.text());
    for node in [a, b, c] {
        eventually(CONVERGE, "the function is gone", || async {
            Ok(node.get("/rb/").await?.status == 404)
        })
        .await?;
    }
    assert!(fleet.keys("rb")?.is_empty());
    Ok(())
}

/// Blobs and compiled code `node` pulled from the registry since it started.
async fn pulls(node: &Server) -> Result<u64> {
    let j = crate::harness::get(&node.control_url("/readyz"))
        .await?
        .json();
    Ok(j["cluster"]["pulled"].as_u64().unwrap_or(0)
        + j["cluster"]["pulled_compiled"].as_u64().unwrap_or(0))
}

#[tokio::test]
async fn a_node_restarted_after_changes_catches_up_without_pulling_what_it_has() -> Result<()> {
    if !services_installed() {
        return Ok(());
    }
    let mut fleet = Fleet::start(2).await?;
    let r = put(
        &fleet.nodes[0],
        "/v1/functions/keep?wait=all&timeout=20s",
        fixture(HELLO),
        None,
    )
    .await?;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = put(
        &fleet.nodes[0],
        "/v1/functions/later?wait=all&timeout=20s",
        fixture(HELLO),
        None,
    )
    .await?;
    assert_eq!(r.status, 201, "{}", r.text());

    fleet.nodes[1].kill();
    for n in 0..2 {
        let r = put(
            &fleet.nodes[0],
            "/v1/functions/later",
            variant(ECHO, n),
            None,
        )
        .await?;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    // The history B would have watched is compacted away.
    let revision = fleet.etcd.revision()?;
    fleet.etcd.ctl(&["compact", &revision.to_string()])?;

    fleet.nodes[1].restart()?;
    let b = &fleet.nodes[1];
    wait_synced(b).await?;
    converged(&[b], "later", 3).await?;
    eventually(CONVERGE, "the echo version answers", || async {
        let reply = crate::harness::post(&b.url("/later/"), "again").await?;
        Ok(reply.text() == "again")
    })
    .await?;
    // It served `keep` from its own store, and pulled only the version it
    // had never seen (compiled code or component, one of them).
    assert_eq!(serving(b, "keep").await?, 1);
    assert_eq!(pulls(b).await?, 1);
    Ok(())
}

#[tokio::test]
async fn without_etcd_nodes_keep_serving_and_refuse_changes() -> Result<()> {
    if !services_installed() {
        return Ok(());
    }
    let mut fleet = Fleet::start(2).await?;
    let r = put(
        &fleet.nodes[0],
        "/v1/functions/up?wait=all&timeout=20s",
        fixture(HELLO),
        None,
    )
    .await?;
    assert_eq!(r.status, 201, "{}", r.text());

    fleet.etcd.stop();
    for node in &fleet.nodes {
        eventually(CONVERGE, "the node says it is degraded", || async {
            let r = crate::harness::get(&node.control_url("/readyz")).await?;
            Ok(r.status == 200 && r.json()["status"] == "degraded")
        })
        .await?;
        assert!(node.get("/up/").await?.text().contains("hello from floe"));
    }
    let r = put(&fleet.nodes[1], "/v1/functions/up", fixture(ECHO), None).await?;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.code(), "cluster_unavailable");
    let r = control(&fleet.nodes[0], http::Method::DELETE, "/v1/functions/up").await?;
    assert_eq!(r.status, 503, "{}", r.text());

    // A node restarted while etcd is away serves its last known state.
    fleet.nodes[1].restart()?;
    assert!(
        fleet.nodes[1]
            .get("/up/")
            .await?
            .text()
            .contains("hello from floe")
    );

    fleet.etcd.restart().await?;
    for node in &fleet.nodes {
        wait_synced(node).await?;
    }
    let r = put(&fleet.nodes[1], "/v1/functions/up", fixture(ECHO), None).await?;
    assert_eq!(r.status, 201, "{}", r.text());
    let nodes: Vec<&Server> = fleet.nodes.iter().collect();
    converged(&nodes, "up", 2).await
}

#[tokio::test]
async fn a_registry_failure_answers_503_and_writes_nothing_to_etcd() -> Result<()> {
    if !services_installed() {
        return Ok(());
    }
    let mut fleet = Fleet::start(1).await?;
    let r = put(&fleet.nodes[0], "/v1/functions/reg", fixture(HELLO), None).await?;
    assert_eq!(r.status, 201, "{}", r.text());
    let before = fleet.keys("reg")?;

    fleet.registry.stop();
    let r = put(&fleet.nodes[0], "/v1/functions/reg", fixture(ECHO), None).await?;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.code(), "cluster_unavailable");
    assert_eq!(fleet.keys("reg")?, before, "etcd changed without the bytes");
    let r = put(&fleet.nodes[0], "/v1/functions/fresh", fixture(ECHO), None).await?;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(fleet.keys("fresh")?.is_empty());
    assert_eq!(serving(&fleet.nodes[0], "reg").await?, 1);

    fleet.registry.restart().await?;
    let r = put(&fleet.nodes[0], "/v1/functions/reg", fixture(ECHO), None).await?;
    assert_eq!(r.status, 201, "{}", r.text());
    Ok(())
}

#[tokio::test]
async fn bytes_that_do_not_match_their_digest_are_refused() -> Result<()> {
    if !services_installed() {
        return Ok(());
    }
    let mut fleet = Fleet::start(1).await?;
    let r = put(
        &fleet.nodes[0],
        "/v1/functions/tamper",
        fixture(HELLO),
        None,
    )
    .await?;
    assert_eq!(r.status, 201, "{}", r.text());
    // Every blob of that version in the registry is replaced by other
    // bytes: the component and its compiled code.
    let keys = fleet.keys("tamper")?;
    let version: serde_json::Value = serde_json::from_str(
        &keys
            .iter()
            .find(|(k, _)| k.contains("/versions/"))
            .map(|(_, v)| v.clone())
            .unwrap_or_default(),
    )?;
    let mut digests = vec![version["digest"].as_str().unwrap_or_default().to_owned()];
    for code in version["oci"]["artifacts"]
        .as_object()
        .into_iter()
        .flatten()
    {
        digests.push(code.1.as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(digests.len(), 2, "{version}");
    for digest in &digests {
        let file = fleet.registry.blob_file(digest);
        let mut bytes = std::fs::read(&file)?;
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&file, bytes)?;
    }
    // A new node must pull them, and refuses what it gets.
    let fresh = fleet.node("node-fresh")?;
    wait_synced(&fresh).await?;
    let refused = eventually(CONVERGE, "the refusal is logged", || async {
        Ok(fresh.log().contains("the bytes pulled hash to"))
    })
    .await;
    if let Err(e) = refused {
        panic!("{e}; the new node's log:\n{}", fresh.log());
    }
    assert_ne!(fresh.get("/tamper/").await?.status, 200);
    fleet.nodes.push(fresh);
    Ok(())
}

#[tokio::test]
async fn a_three_member_etcd_losing_its_leader_mid_deploy() -> Result<()> {
    if !services_installed() {
        return Ok(());
    }
    let etcd = Etcd::start(3).await?;
    let mut fleet = Fleet::on(etcd, 2).await?;
    let r = put(
        &fleet.nodes[0],
        "/v1/functions/lead",
        variant(HELLO, 0),
        None,
    )
    .await?;
    assert_eq!(r.status, 201, "{}", r.text());

    let leader = fleet.etcd.leader()?;
    let deploy = put(
        &fleet.nodes[0],
        "/v1/functions/lead",
        variant(HELLO, 1),
        None,
    );
    let ((), during) = tokio::join!(async { fleet.etcd.kill(leader) }, deploy);
    let during = during?;
    // Either it committed, or it says it could not: never anything else.
    assert!(
        during.status == 201 || during.status == 503,
        "{} {}",
        during.status,
        during.text()
    );
    let last = std::sync::atomic::AtomicU64::new(0);
    eventually(CONVERGE, "a deploy after the election", || async {
        let r = put(
            &fleet.nodes[1],
            "/v1/functions/lead",
            variant(HELLO, 2),
            None,
        )
        .await?;
        if r.status == 201 {
            last.store(
                r.json()["version"].as_u64().unwrap_or(0),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        Ok(r.status == 201)
    })
    .await?;
    let last = last.into_inner();
    let expected = if during.status == 201 { 3 } else { 2 };
    if last != expected {
        bail!("the deploy after the election got version {last}, not {expected}");
    }
    let nodes: Vec<&Server> = fleet.nodes.iter().collect();
    converged(&nodes, "lead", expected).await?;
    fleet.nodes.truncate(2);
    Ok(())
}

#[tokio::test]
async fn async_invocations_are_answered_by_their_owner_through_any_node() -> Result<()> {
    if !services_installed() {
        return Ok(());
    }
    let mut fleet = Fleet::start(2).await?;
    let r = put(
        &fleet.nodes[0],
        "/v1/functions/ev?wait=all&timeout=20s",
        fixture(EVENT_ECHO),
        None,
    )
    .await?;
    assert_eq!(r.status, 201, "{}", r.text());

    let b = &fleet.nodes[1];
    let submitted = send(
        Request::post(b.control_url("/v1/functions/ev/invoke?mode=async"))
            .header("authorization", format!("Bearer {}", b.token))
            .body(Full::new(Bytes::from_static(b"abc")))?,
    )
    .await?;
    assert_eq!(submitted.status, 202, "{}", submitted.text());
    let id = submitted.json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(id.ends_with("-node-1"), "{id}");

    let a = &fleet.nodes[0];
    eventually(CONVERGE, "the invocation succeeds, seen from A", || async {
        let r = control(a, http::Method::GET, &format!("/v1/invocations/{id}")).await?;
        Ok(r.status == 200 && r.json()["status"] == "succeeded")
    })
    .await?;
    let result = control(
        a,
        http::Method::GET,
        &format!("/v1/invocations/{id}/result"),
    )
    .await?;
    assert_eq!(result.status, 200);
    assert_eq!(&result.body[..], b"abc");

    fleet.nodes[1].kill();
    let r = control(
        &fleet.nodes[0],
        http::Method::GET,
        &format!("/v1/invocations/{id}"),
    )
    .await?;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.code(), "owner_unavailable");
    Ok(())
}

/// Runs the `floe` command line against `node`.
fn floe_cli(node: &Server, args: &[&str]) -> Result<std::process::Output> {
    let mut cmd = std::process::Command::new(crate::harness::FLOE);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("FLOE_")) {
        cmd.env_remove(key);
    }
    Ok(cmd
        .env("FLOE_URL", node.control_url(""))
        .env("FLOE_TOKEN", &node.token)
        .args(args)
        .output()?)
}

#[tokio::test]
async fn a_pushed_component_is_deployed_from_its_oci_reference() -> Result<()> {
    if !services_installed() {
        return Ok(());
    }
    let fleet = Fleet::start(2).await?;
    let [a, b] = [&fleet.nodes[0], &fleet.nodes[1]];

    // Pushed, not deployed.
    let pushed = send(
        Request::post(a.control_url("/v1/functions/pushed/push?tag=v1"))
            .header("authorization", format!("Bearer {}", a.token))
            .body(Full::new(fixture(HELLO)))?,
    )
    .await?;
    assert_eq!(pushed.status, 201, "{}", pushed.text());
    let reference = pushed.json()["reference"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        reference,
        format!("oci://{}/floe/pushed:v1", fleet.registry.host())
    );
    assert!(fleet.keys("pushed")?.is_empty());
    assert_eq!(serving(a, "pushed").await?, 0);

    // Any node deploys it from the registry, by tag or by digest.
    let r = put(
        b,
        &format!("/v1/functions/pushed?source={reference}"),
        Bytes::new(),
        None,
    )
    .await?;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["digest"], Digest::of(&fixture(HELLO)).to_string());
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), fixture(ECHO))?;
    let out = floe_cli(
        a,
        &[
            "push",
            "pushed",
            &file.path().display().to_string(),
            "--json",
        ],
    )?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let by_digest: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let by_digest = by_digest["reference"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(by_digest.contains("/floe/pushed@sha256:"), "{by_digest}");
    let out = floe_cli(a, &["deploy", "pushed", &by_digest, "--wait", "20s"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    converged(&[a, b], "pushed", 2).await?;
    let reply = crate::harness::post(&b.url("/pushed/"), "from the registry").await?;
    assert_eq!(reply.text(), "from the registry");

    // `floe nodes` lists both, with what they serve.
    let out = floe_cli(b, &["nodes", "--json"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let nodes: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(nodes["nodes"].as_array().map(Vec::len), Some(2), "{nodes}");

    // Only the cluster's registry is pulled from; a reference and a body
    // together are refused.
    let elsewhere = format!("oci://127.0.0.1:1/floe/pushed@{}", Digest::of(b"x"));
    let r = put(
        a,
        &format!("/v1/functions/pushed?source={elsewhere}"),
        Bytes::new(),
        None,
    )
    .await?;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = put(
        a,
        &format!("/v1/functions/pushed?source={reference}"),
        fixture(HELLO),
        None,
    )
    .await?;
    assert_eq!(r.status, 400, "{}", r.text());
    let missing = format!("oci://{}/floe/pushed:nope", fleet.registry.host());
    let r = put(
        a,
        &format!("/v1/functions/pushed?source={missing}"),
        Bytes::new(),
        None,
    )
    .await?;
    assert!(
        r.status.is_client_error() || r.status == 503,
        "{}",
        r.text()
    );
    Ok(())
}

#[tokio::test]
async fn a_single_node_joining_an_empty_etcd_keeps_its_functions() -> Result<()> {
    if !services_installed() {
        return Ok(());
    }
    let mut solo = Server::start()?;
    let r = put(&solo, "/v1/functions/solo", fixture(HELLO), None).await?;
    assert_eq!(r.status, 201, "{}", r.text());

    // The same node, now joined to an etcd no floe ever wrote to.
    let etcd = Etcd::start(1).await?;
    let registry = Registry::start().await?;
    solo.set_env("FLOE_CLUSTER__ETCD", &etcd.endpoints_toml());
    solo.set_env(
        "FLOE_CLUSTER__REGISTRY",
        &format!("http://{}/floe", registry.host()),
    );
    solo.set_env("FLOE_CLUSTER__NODE_ID", "solo");
    solo.restart()?;
    wait_synced(&solo).await?;
    assert!(solo.get("/solo/").await?.text().contains("hello from floe"));
    assert_eq!(serving(&solo, "solo").await?, 1);
    assert!(
        solo.log()
            .contains("etcd holds no floe state under this prefix")
    );

    // Deployed again, it is the cluster's.
    let r = put(&solo, "/v1/functions/solo", fixture(ECHO), None).await?;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(!etcd.dump("/floe/v1/functions/solo/")?.is_empty());
    Ok(())
}

/// Every node's invocations of the probe, with their triggers.
async fn fleet_invocations(nodes: &[Server]) -> Result<Vec<serde_json::Value>> {
    let mut all = Vec::new();
    for node in nodes {
        let r = control(
            node,
            http::Method::GET,
            "/v1/invocations?function=probe&limit=1000",
        )
        .await?;
        all.extend(
            r.json()["invocations"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
    }
    Ok(all)
}

/// Triggers in a cluster: each cron run fires on one node, and the broker
/// hands each MQTT message to one node (a shared subscription).
#[tokio::test]
async fn each_cron_run_and_each_mqtt_message_runs_on_one_node() -> Result<()> {
    if !services_installed() {
        return Ok(());
    }
    let broker = crate::broker::Broker::start().await?;
    let fleet = Fleet::start(2).await?;
    let r = put(
        &fleet.nodes[0],
        "/v1/functions/probe?wait=all&timeout=20s",
        fixture(floe_tests::fixtures::TRIGGER_PROBE),
        None,
    )
    .await?;
    assert_eq!(r.status, 201, "{}", r.text());
    let triggers = serde_json::json!([
        {"kind": "cron", "name": "tick", "schedule": "* * * * * *"},
        {"kind": "mqtt", "name": "in", "broker": broker.url(), "topics": ["fleet/in"], "qos": 1},
    ]);
    fleet.nodes[0]
        .client()
        .configure("probe", &[("triggers".to_owned(), triggers.to_string())])
        .await?;
    for node in &fleet.nodes {
        crate::triggers::wait_for_state(node, "probe", "in", "connected").await?;
    }
    for i in 0..10 {
        broker.publish("fleet/in", &i.to_string(), 1, &[])?;
    }
    eventually(CONVERGE, "four cron runs and ten messages", || async {
        let all = fleet_invocations(&fleet.nodes).await?;
        let cron = all.iter().filter(|r| r["fired"]["kind"] == "cron").count();
        let mqtt = all.iter().filter(|r| r["fired"]["kind"] == "mqtt").count();
        Ok(cron >= 4 && mqtt >= 10)
    })
    .await?;
    let all = fleet_invocations(&fleet.nodes).await?;
    let mut times: Vec<u64> = all
        .iter()
        .filter_map(|r| r["fired"]["scheduled_ms"].as_u64())
        .collect();
    times.sort_unstable();
    let mut unique = times.clone();
    unique.dedup();
    assert_eq!(times, unique, "a cron time fired on two nodes");
    let messages = all.iter().filter(|r| r["fired"]["kind"] == "mqtt").count();
    assert_eq!(messages, 10, "each message on one node");
    Ok(())
}

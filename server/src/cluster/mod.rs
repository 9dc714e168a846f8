//! Cluster mode: many nodes serving the same functions, with the desired
//! state in etcd and component bytes in an OCI registry. Every node is an
//! etcd client (never a member), so a node joins by configuration alone.
//!
//! | file | what |
//! | --- | --- |
//! | `etcd.rs` | keys, reads, compare-and-swap transactions |
//! | `oci.rs` | Wasm OCI artifacts: push without re-sending blobs, verified pulls |
//! | `storage.rs` | the registry's storage: etcd records, registry bytes, a local copy |
//! | `converge.rs` | list, then watch: each node serves what etcd says |
//! | `nodes.rs` | this node's entry under a lease; the list of live nodes |
//!
//! Without etcd a node keeps serving what it last knew (from its local
//! store, across restarts too), refuses changes with 503
//! `cluster_unavailable` and says `degraded` on `/readyz`; it catches up
//! when etcd returns. Autoscaling, reservations and async invocations stay
//! per node.

mod converge;
mod etcd;
mod nodes;
mod oci;
mod storage;

pub use etcd::EtcdError;
pub use nodes::NodeInfo;
pub use oci::{Oci, OciError};
pub use storage::ClusterStorage;

use crate::config::{ClusterConfig, Config, RegistryLocation};
use crate::registry::{LocalStorage, Registry};
use crate::store::Digest;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Why cluster mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The configuration cannot be used.
    #[error("cluster configuration: {0}")]
    Config(String),
    /// etcd failed.
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    /// The registry failed.
    #[error(transparent)]
    Oci(#[from] OciError),
}

/// This node's part in a cluster.
#[derive(Debug)]
pub struct Cluster {
    id: String,
    etcd: etcd::Etcd,
    oci: Oci,
    storage: Arc<ClusterStorage>,
    config: ClusterConfig,
    upload_limit: u64,
    synced: tokio::sync::watch::Receiver<SyncState>,
    synced_tx: tokio::sync::watch::Sender<SyncState>,
    stop: CancellationToken,
    http: reqwest::Client,
}

/// How far this node got with etcd since it started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncState {
    /// Its first listing has not finished.
    Starting,
    /// Its first listing failed: it serves what it last knew.
    Unreachable,
    /// It has listed etcd and converged on it at least once.
    Synced,
}

/// Where this node listens, for its entry in the node list.
#[derive(Debug, Clone)]
pub struct Addresses {
    /// The control-plane URL other nodes reach.
    pub control: String,
    /// The data-plane address.
    pub data: String,
}

impl Cluster {
    /// Sets up cluster mode from `config` over this node's `local` store.
    /// Reaches nothing yet: a node starts (and serves its last known state)
    /// while etcd is away.
    pub async fn new(config: &Config, local: LocalStorage) -> Result<Arc<Self>, ClusterError> {
        let cluster = &config.cluster;
        // reqwest and tonic use rustls with the process's default provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let id = node_id(cluster)?;
        let timeout = cluster.timeout.0;
        let mut options = etcd_client::ConnectOptions::new()
            .with_timeout(timeout)
            .with_connect_timeout(timeout)
            .with_keep_alive(Duration::from_secs(2), timeout)
            .with_keep_alive_while_idle(true);
        if !cluster.etcd_user.is_empty() {
            options = options.with_user(&cluster.etcd_user, &cluster.etcd_password);
        }
        if !cluster.etcd_ca.as_os_str().is_empty() {
            let pem = std::fs::read(&cluster.etcd_ca).map_err(|e| {
                ClusterError::Config(format!("reading {}: {e}", cluster.etcd_ca.display()))
            })?;
            options = options.with_tls(
                etcd_client::TlsOptions::new()
                    .ca_certificate(etcd_client::Certificate::from_pem(pem)),
            );
        }
        // Expired or lost (an etcd restart) auth tokens are fetched again.
        let options = options.with_auto_token_refresh(true);
        let etcd = etcd::Etcd::new(cluster.etcd.clone(), options, &cluster.prefix, timeout);
        let location = RegistryLocation::parse(&cluster.registry).map_err(ClusterError::Config)?;
        let oci = Oci::new(
            location,
            &cluster.registry_user,
            &cluster.registry_password,
            timeout,
        )?;
        // A pulled component is at most an upload, or a snapshot of one
        // (its memory at most a function's); compiled code a few times that.
        let component_limit = config
            .limits
            .max_upload
            .0
            .saturating_add(config.limits.max_memory.0);
        let storage = Arc::new(ClusterStorage::new(
            local,
            etcd.clone(),
            oci.clone(),
            (component_limit, component_limit.saturating_mul(8)),
            cluster.share_compiled,
        ));
        let (synced_tx, synced) = tokio::sync::watch::channel(SyncState::Starting);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .no_proxy()
            .build()
            .map_err(|e| ClusterError::Config(format!("the HTTP client for other nodes: {e}")))?;
        Ok(Arc::new(Self {
            id,
            etcd,
            oci,
            storage,
            config: cluster.clone(),
            upload_limit: config.limits.max_upload.0,
            synced,
            synced_tx,
            stop: CancellationToken::new(),
            http,
        }))
    }

    /// A client for other nodes' control planes.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The registry's storage in cluster mode.
    pub fn storage(&self) -> Arc<ClusterStorage> {
        self.storage.clone()
    }

    /// This node's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether etcd answered the last request.
    pub fn online(&self) -> bool {
        self.etcd.online()
    }

    /// Whether this node has listed etcd at least once since it started.
    pub fn synced(&self) -> bool {
        *self.synced.borrow() == SyncState::Synced
    }

    /// Whether this node is still starting: its first listing of etcd has
    /// neither finished nor failed.
    pub fn starting(&self) -> bool {
        *self.synced.borrow() == SyncState::Starting
    }

    /// Starts converging on etcd and keeping this node's entry.
    pub fn start(&self, registry: Arc<Registry>, addresses: Addresses) {
        let me = NodeInfo {
            id: self.id.clone(),
            control: if self.config.advertise.is_empty() {
                addresses.control
            } else {
                self.config.advertise.clone()
            },
            data: addresses.data,
            started_at_ms: crate::clock::unix_ms(),
            release: env!("CARGO_PKG_VERSION").to_owned(),
            serving: Default::default(),
        };
        tokio::spawn(converge::run(
            self.etcd.clone(),
            self.storage.clone(),
            registry.clone(),
            self.synced_tx.clone(),
            self.stop.clone(),
        ));
        tokio::spawn(nodes::run(
            self.etcd.clone(),
            registry,
            me,
            self.config.lease_ttl.0,
            self.stop.clone(),
        ));
    }

    /// Stops converging and leaves the node list.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Every live node.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, EtcdError> {
        nodes::list(&self.etcd).await
    }

    /// Waits (at most `timeout`) until every live node serves `version` (or
    /// a newer one) of `function`. Returns the ids of the nodes still
    /// behind (empty: all serve it).
    pub async fn wait_all(
        &self,
        function: &str,
        version: u64,
        timeout: Duration,
    ) -> Result<Vec<String>, EtcdError> {
        let deadline = Instant::now() + timeout;
        loop {
            let behind: Vec<String> = self
                .nodes()
                .await?
                .into_iter()
                .filter(|n| n.serving.get(function).is_none_or(|v| *v < version))
                .map(|n| n.id)
                .collect();
            if behind.is_empty() || Instant::now() >= deadline {
                return Ok(behind);
            }
            tokio::time::sleep(Duration::from_millis(20).min(deadline - Instant::now())).await;
        }
    }

    /// The control-plane URL of live node `id`, if it is live.
    pub async fn control_url(&self, id: &str) -> Result<Option<String>, EtcdError> {
        Ok(self
            .nodes()
            .await?
            .into_iter()
            .find(|n| n.id == id)
            .map(|n| n.control))
    }

    /// Pushes `bytes` as a Wasm artifact of function `name` (tagged `tag`)
    /// without deploying it. Returns its reference and the component digest.
    pub async fn push(
        &self,
        name: &str,
        bytes: &Bytes,
        tag: Option<&str>,
    ) -> Result<(String, Digest), OciError> {
        let repository = self.oci.repository(name);
        let meta = oci::ComponentMeta {
            name,
            ..Default::default()
        };
        let pushed = self
            .oci
            .push_component(&repository, bytes, &meta, tag)
            .await?;
        let reference = match tag {
            Some(tag) => format!("{repository}:{tag}"),
            None => format!("{repository}@{}", pushed.manifest),
        };
        Ok((reference, Digest::of(bytes)))
    }

    /// The repository of function `name`: `host:port/prefix/name`.
    pub fn repository(&self, name: &str) -> String {
        self.oci.repository(name)
    }

    /// The function whose repository in the cluster's registry `reference`
    /// (`host/prefix/name@…` or `:tag`) names; `None` for anything else.
    pub fn function_of_reference(&self, reference: &str) -> Option<String> {
        let parsed: oci_client::Reference = reference.parse().ok()?;
        let location = self.oci.location();
        if parsed.registry() != location.host {
            return None;
        }
        let repository = parsed.repository();
        let name = match location.prefix.as_str() {
            "" => repository,
            prefix => repository.strip_prefix(prefix)?.strip_prefix('/')?,
        };
        crate::registry::FunctionName::new(name)
            .ok()
            .map(|n| n.to_string())
    }

    /// Pulls the component of the Wasm artifact `reference` (at most an
    /// upload's size). Only the cluster's registry is reached.
    pub async fn pull(&self, reference: &str) -> Result<Bytes, OciError> {
        if self.function_of_reference(reference).is_none() {
            return Err(OciError::BadReference(format!(
                "{reference} (only function repositories of the cluster's registry, {}, are pulled from)",
                self.repository("NAME")
            )));
        }
        self.oci.pull_component(reference, self.upload_limit).await
    }
}

/// This node's id: configured, else the host name.
fn node_id(cluster: &ClusterConfig) -> Result<String, ClusterError> {
    if !cluster.node_id.is_empty() {
        return Ok(cluster.node_id.clone());
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let host = host.trim();
    if crate::config::valid_node_id(host) {
        Ok(host.to_owned())
    } else {
        Err(ClusterError::Config(format!(
            "the host name {host:?} cannot be a node id; set [cluster] node_id"
        )))
    }
}

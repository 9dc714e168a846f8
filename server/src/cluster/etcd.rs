//! The desired state in etcd: keys, reads, and the compare-and-swap
//! transactions every change is made with. Bytes never go into etcd (its
//! requests are limited to 1.5 MiB): only records naming digests.
//!
//! ```text
//! {prefix}functions/{name}/meta              {settings, next_version}
//! {prefix}functions/{name}/versions/{n:020}  a version: digest, size, init, hooks, oci {repository, manifest, artifacts}
//! {prefix}functions/{name}/active            {version, digest}
//! {prefix}nodes/{id}                         a live node (under its lease)
//! ```
//!
//! A function's revision is its `meta` key's modification revision: every
//! change writes `meta`, so a transaction that compares it (0: absent)
//! serializes all changes to one function across the fleet.

use crate::config::FunctionSettings;
use crate::registry::{Current, Revision};
use crate::store::{Digest, FunctionRecord, VersionRecord};
use etcd_client::{Client, Compare, CompareOp, DeleteOptions, GetOptions, KeyValue, Txn, TxnOp};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// An etcd request that failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// etcd could not be reached or refused the request.
    #[error("etcd: {0}")]
    Client(#[from] etcd_client::Error),
    /// etcd did not answer in time.
    #[error("etcd: no answer within {0:?}")]
    Timeout(Duration),
    /// A stored value does not parse.
    #[error("etcd key {key}: {source}")]
    Corrupt {
        /// The key.
        key: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

/// `functions/{name}/meta`.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    settings: FunctionSettings,
    next_version: u64,
}

/// `functions/{name}/active`.
#[derive(Debug, Serialize, Deserialize)]
struct Active {
    version: u64,
    digest: Digest,
}

/// The outcome of a conditional write.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// Written, at this revision.
    Done(Revision),
    /// The function changed since the expected revision; nothing written.
    Conflict,
}

/// Keys read per request when listing every function (etcd answers are
/// bounded; a fleet may hold thousands of functions).
const PAGE: i64 = 256;

/// What listing every function found.
#[derive(Debug)]
pub struct Listing {
    /// Each function's newest record, or why it could not be read (a value
    /// this release does not understand): such a function is left as it is.
    pub functions: Vec<(String, Result<Current, EtcdError>)>,
    /// The revision everything was read at.
    pub revision: Revision,
    /// Whether a floe deploy ever wrote under this prefix (an etcd that
    /// never did is not taken to mean "delete every function").
    pub initialized: bool,
}

/// How to reach etcd: the client is made on first use, so that a node
/// starts (and serves) while etcd is away, credentials or not.
struct Connect {
    endpoints: Vec<String>,
    options: etcd_client::ConnectOptions,
}

/// floe's keys in one etcd cluster.
#[derive(Clone)]
pub struct Etcd {
    client: Arc<tokio::sync::OnceCell<Client>>,
    connect: Arc<Connect>,
    prefix: String,
    timeout: Duration,
    online: Arc<AtomicBool>,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Etcd {
    /// floe's keys under `prefix` of the etcd at `endpoints`.
    pub fn new(
        endpoints: Vec<String>,
        options: etcd_client::ConnectOptions,
        prefix: &str,
        timeout: Duration,
    ) -> Self {
        Self {
            client: Arc::default(),
            connect: Arc::new(Connect { endpoints, options }),
            prefix: prefix.to_owned(),
            timeout,
            online: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The client (cheap to clone), connected on first use.
    pub async fn client(&self) -> Result<Client, EtcdError> {
        let connect = async {
            let Connect { endpoints, options } = &*self.connect;
            self.call(Client::connect(endpoints, Some(options.clone())))
                .await
        };
        Ok(self.client.get_or_try_init(|| connect).await?.clone())
    }

    /// Whether the last request reached etcd.
    pub fn online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    /// Records whether etcd answered.
    pub fn set_online(&self, online: bool) {
        let was = self.online.swap(online, Ordering::Relaxed);
        if was != online {
            if online {
                tracing::info!("etcd reachable; cluster state is current");
            } else {
                tracing::warn!("etcd unreachable; serving the last known state, refusing changes");
            }
        }
    }

    /// Every function key starts with this.
    pub fn functions_prefix(&self) -> String {
        format!("{}functions/", self.prefix)
    }

    /// Every node key starts with this.
    pub fn nodes_prefix(&self) -> String {
        format!("{}nodes/", self.prefix)
    }

    fn function_prefix(&self, name: &str) -> String {
        format!("{}functions/{name}/", self.prefix)
    }

    fn meta_key(&self, name: &str) -> String {
        format!("{}meta", self.function_prefix(name))
    }

    fn version_key(&self, name: &str, version: u64) -> String {
        format!("{}versions/{version:020}", self.function_prefix(name))
    }

    /// The function a key under [`Etcd::functions_prefix`] belongs to.
    pub fn function_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        function_of(&self.prefix, key)
    }

    /// Runs `op` with the request timeout, recording whether etcd answered.
    pub async fn call<T>(
        &self,
        op: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, EtcdError> {
        let result = match tokio::time::timeout(self.timeout, op).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(EtcdError::Client(e)),
            Err(_) => Err(EtcdError::Timeout(self.timeout)),
        };
        self.set_online(result.is_ok());
        result
    }

    /// The newest record of `name`.
    pub async fn function(&self, name: &str) -> Result<Current, EtcdError> {
        let mut client = self.client().await?;
        let prefix = self.function_prefix(name);
        let response = self
            .call(client.get(prefix, Some(GetOptions::new().with_prefix())))
            .await?;
        self.assemble(name, response.kvs())
    }

    /// The key that says a floe deploy wrote under this prefix.
    fn marker_key(&self) -> String {
        format!("{}cluster", self.prefix)
    }

    /// Every function's newest record, read page by page at one revision.
    pub async fn list(&self) -> Result<Listing, EtcdError> {
        let mut client = self.client().await?;
        let marker = self.call(client.get(self.marker_key(), None)).await?;
        let revision = marker.header().map_or(0, |h| h.revision());
        let initialized = !marker.kvs().is_empty();
        let prefix = self.functions_prefix();
        let mut end = prefix.clone().into_bytes();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let mut by_name: std::collections::BTreeMap<String, Vec<KeyValue>> = Default::default();
        let mut from = prefix.into_bytes();
        loop {
            let options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(PAGE)
                .with_revision(revision);
            let page = self.call(client.get(from.clone(), Some(options))).await?;
            for kv in page.kvs() {
                if let Some(name) = kv.key_str().ok().and_then(|k| self.function_of(k)) {
                    by_name.entry(name.to_owned()).or_default().push(kv.clone());
                }
            }
            match page.kvs().last() {
                Some(last) if page.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        let functions = by_name
            .into_iter()
            .map(|(name, kvs)| {
                let current = self.assemble(&name, &kvs);
                (name, current)
            })
            .collect();
        Ok(Listing {
            functions,
            revision,
            initialized,
        })
    }

    fn assemble(&self, name: &str, kvs: &[KeyValue]) -> Result<Current, EtcdError> {
        let meta_key = self.meta_key(name);
        let mut meta: Option<(Meta, Revision)> = None;
        let mut active: Option<Active> = None;
        let mut versions: Vec<VersionRecord> = Vec::new();
        for kv in kvs {
            let key = kv.key_str().unwrap_or_default();
            let corrupt = |source| EtcdError::Corrupt {
                key: key.to_owned(),
                source,
            };
            if key == meta_key {
                meta = Some((
                    serde_json::from_slice(kv.value()).map_err(corrupt)?,
                    kv.mod_revision(),
                ));
            } else if key.ends_with("/active") {
                active = Some(serde_json::from_slice(kv.value()).map_err(corrupt)?);
            } else if key.contains("/versions/") {
                versions.push(serde_json::from_slice(kv.value()).map_err(corrupt)?);
            }
        }
        // A function exists once its meta and active keys do (one
        // transaction writes both).
        let meta_revision = meta.as_ref().map_or(0, |(_, revision)| *revision);
        let (Some((meta, revision)), Some(active)) = (meta, active) else {
            return Ok(Current {
                record: None,
                revision: meta_revision,
            });
        };
        versions.sort_by_key(|v| v.version);
        Ok(Current {
            record: Some(FunctionRecord {
                name: name.to_owned(),
                active: active.version,
                next_version: meta.next_version,
                settings: meta.settings,
                versions,
            }),
            revision,
        })
    }

    /// Writes `record` whole, if the function is still at `expected`.
    pub async fn write(
        &self,
        record: &FunctionRecord,
        expected: Revision,
    ) -> Result<Written, EtcdError> {
        let name = record.name.as_str();
        let meta = Meta {
            settings: record.settings.clone(),
            next_version: record.next_version,
        };
        let active = record.active_version().map(|v| Active {
            version: v.version,
            digest: v.digest,
        });
        let mut ops = vec![TxnOp::put(self.meta_key(name), json(&meta), None)];
        if let Some(active) = &active {
            ops.push(TxnOp::put(
                format!("{}active", self.function_prefix(name)),
                json(active),
                None,
            ));
        }
        // Versions older than the oldest kept were pruned.
        let oldest = record.versions.iter().map(|v| v.version).min().unwrap_or(0);
        if oldest > 0 {
            ops.push(TxnOp::delete(
                self.version_key(name, 0),
                Some(DeleteOptions::new().with_range(self.version_key(name, oldest))),
            ));
        }
        for version in &record.versions {
            ops.push(TxnOp::put(
                self.version_key(name, version.version),
                json(version),
                None,
            ));
        }
        self.transact(name, expected, ops).await
    }

    /// Deletes the function, if it is still at `expected`.
    pub async fn delete(&self, name: &str, expected: Revision) -> Result<Written, EtcdError> {
        let ops = vec![TxnOp::delete(
            self.function_prefix(name),
            Some(DeleteOptions::new().with_prefix()),
        )];
        self.transact(name, expected, ops).await
    }

    async fn transact(
        &self,
        name: &str,
        expected: Revision,
        ops: Vec<TxnOp>,
    ) -> Result<Written, EtcdError> {
        let mut ops = ops;
        ops.push(TxnOp::put(
            self.marker_key(),
            json(&serde_json::json!({ "release": env!("CARGO_PKG_VERSION") })),
            None,
        ));
        let txn = Txn::new()
            .when([Compare::mod_revision(
                self.meta_key(name),
                CompareOp::Equal,
                expected,
            )])
            .and_then(ops);
        let mut client = self.client().await?;
        let response = self.call(client.txn(txn)).await?;
        Ok(if response.succeeded() {
            Written::Done(response.header().map_or(0, |h| h.revision()))
        } else {
            Written::Conflict
        })
    }
}

/// A value as etcd stores it. These types serialize infallibly (no maps
/// with non-string keys, no failing `Serialize` impls).
fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// The function a key under `{prefix}functions/` belongs to.
fn function_of<'k>(prefix: &str, key: &'k str) -> Option<&'k str> {
    key.strip_prefix(prefix)?
        .strip_prefix("functions/")?
        .split('/')
        .next()
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_function() {
        let prefix = "/floe/v1/";
        let key = format!("{prefix}functions/hello/versions/{:020}", 3);
        assert_eq!(function_of(prefix, &key), Some("hello"));
        assert_eq!(
            function_of(prefix, "/floe/v1/functions/a-b/meta"),
            Some("a-b")
        );
        assert_eq!(function_of(prefix, "/floe/v1/nodes/n1"), None);
        assert_eq!(function_of(prefix, "/other/functions/x/meta"), None);
        assert_eq!(function_of(prefix, "/floe/v1/functions//meta"), None);
    }
}

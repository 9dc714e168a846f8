//! This node's entry under `{prefix}nodes/{id}`, held by an etcd lease: its
//! addresses and the version it serves of each function. A node that stops
//! renewing (crashed, cut off) drops out of the list after the lease TTL.

use super::etcd::Etcd;
use crate::registry::Registry;
use etcd_client::{GetOptions, PutOptions};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a node says of itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Its id.
    pub id: String,
    /// Its control-plane URL.
    pub control: String,
    /// Its data-plane address.
    pub data: String,
    /// When it started (milliseconds since the Unix epoch).
    pub started_at_ms: u64,
    /// The floe release it runs.
    pub release: String,
    /// The version it serves of each function.
    pub serving: BTreeMap<String, u64>,
}

/// Every live node, by id.
pub(super) async fn list(etcd: &Etcd) -> Result<Vec<NodeInfo>, super::etcd::EtcdError> {
    let mut client = etcd.client().await?;
    let response = etcd
        .call(client.get(etcd.nodes_prefix(), Some(GetOptions::new().with_prefix())))
        .await?;
    Ok(response
        .kvs()
        .iter()
        .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
        .collect())
}

/// Keeps this node's entry current until `stop`: granted a lease, renewed
/// at a third of its TTL, rewritten whenever what the node serves changes,
/// and registered again after etcd comes back.
pub(super) async fn run(
    etcd: Etcd,
    registry: Arc<Registry>,
    mut me: NodeInfo,
    ttl: Duration,
    stop: CancellationToken,
) {
    let key = format!("{}{}", etcd.nodes_prefix(), me.id);
    let ttl_secs = i64::try_from(ttl.as_secs().max(2)).unwrap_or(10);
    let mut changes = registry.subscribe();
    'register: loop {
        if stop.is_cancelled() {
            break;
        }
        let granted = match etcd.client().await {
            Ok(mut client) => etcd
                .call(client.lease_grant(ttl_secs, None))
                .await
                .map(|lease| (client, lease.id())),
            Err(e) => Err(e),
        };
        let (mut client, lease) = match granted {
            Ok(granted) => granted,
            Err(e) => {
                tracing::debug!(error = %e, "registering this node: etcd unreachable");
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        let mut written: Option<NodeInfo> = None;
        let mut renew = tokio::time::interval(ttl / 3);
        loop {
            me.serving = registry.serving();
            if written.as_ref() != Some(&me) {
                let value = serde_json::to_vec(&me).unwrap_or_default();
                let put = client.put(
                    key.clone(),
                    value,
                    Some(PutOptions::new().with_lease(lease)),
                );
                match etcd.call(put).await {
                    Ok(_) => written = Some(me.clone()),
                    Err(e) => {
                        tracing::debug!(error = %e, "writing this node's entry failed");
                        if pause(&stop).await {
                            break 'register;
                        }
                        continue 'register;
                    }
                }
            }
            tokio::select! {
                () = stop.cancelled() => {
                    // Leave the list at once rather than after the TTL.
                    let _ = etcd.call(client.lease_revoke(lease)).await;
                    break 'register;
                }
                _ = changes.changed() => {}
                _ = renew.tick() => {
                    match etcd.call(client.lease_keep_alive(lease)).await {
                        Ok((mut keeper, mut responses)) => {
                            let renewed = async {
                                keeper.keep_alive().await?;
                                responses.message().await
                            };
                            match etcd.call(renewed).await {
                                Ok(Some(r)) if r.ttl() > 0 => {}
                                _ => {
                                    if pause(&stop).await {
                                        break 'register;
                                    }
                                    continue 'register;
                                }
                            }
                        }
                        Err(_) => {
                            if pause(&stop).await {
                                break 'register;
                            }
                            continue 'register;
                        }
                    }
                }
            }
        }
    }
}

/// Waits a second before registering again; true when `stop` came first.
async fn pause(stop: &CancellationToken) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(Duration::from_secs(1)) => false,
    }
}

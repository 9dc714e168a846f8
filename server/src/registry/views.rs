//! What the API and `/metrics` show about functions: records, pools and
//! the autoscaler's view, read without taking any function's lock.

use super::{FunctionName, Registry, RegistryError};
use crate::config::FunctionSettings;
use crate::metrics::PoolGauge;
use crate::pool::{InstanceView, PoolCounts};
use crate::store::{Digest, FunctionRecord, VersionRecord};
use serde::Serialize;

/// What the API shows about a function.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionInfo {
    /// The function.
    pub name: String,
    /// `ready`, or `unavailable` when its stored code could not be loaded.
    pub status: &'static str,
    /// The version requests go to.
    pub active_version: u64,
    /// Its digest.
    pub digest: Option<Digest>,
    /// Settings in force (its variables included; its secrets are not).
    pub settings: FunctionSettings,
    /// The names of its secrets (their values are never shown).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Versions kept, oldest first.
    pub versions: Vec<VersionRecord>,
    /// `http`, `event` or `http+event` (what the active version exports).
    pub kind: &'static str,
    /// The WASI release the active version is built for: `0.3` when it
    /// exports `wasi:http/handler@0.3` or `floe:function/event@0.2.0`, `0.2`
    /// otherwise (empty while the function is unavailable).
    pub wasi: &'static str,
    /// Requests one instance of the active version serves at once (16 by
    /// default for WASI 0.3, always 1 for WASI 0.2).
    pub instance_concurrency: u32,
    /// Why the active version gets a fresh instance per request although
    /// `reuse` is unset (it answered only the first request of an
    /// instance); absent when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fresh_instances: Option<String>,
    /// How the active version's instances are initialized: `snapshot`,
    /// `instance` or `none`.
    pub init: &'static str,
    /// Instance counts of the active version.
    pub instances: PoolCounts,
    /// What the function used, all versions together: invocations, busy,
    /// frozen and hook time, compute units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metering: Option<crate::metrics::MeterView>,
    /// The autoscaler's target and why, and instances by state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling: Option<crate::scaling::ScalingView>,
    /// Each live instance (only in the single-function view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_list: Option<Vec<InstanceView>>,
    /// Why the function is unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Registry {
    /// What the API shows about `name`; `detail` adds every instance.
    pub fn info(&self, name: &FunctionName, detail: bool) -> Result<FunctionInfo, RegistryError> {
        let record = self
            .records
            .lock()
            .get(name.as_str())
            .cloned()
            .ok_or_else(|| RegistryError::NotFound(name.to_string()))?;
        Ok(self.describe(record, detail))
    }

    fn describe(&self, record: FunctionRecord, detail: bool) -> FunctionInfo {
        let function = self.get(&record.name);
        let error = self.unavailable.lock().get(&record.name).cloned();
        FunctionInfo {
            status: if function.is_some() {
                "ready"
            } else {
                "unavailable"
            },
            active_version: record.active,
            digest: record.active_version().map(|v| v.digest),
            kind: function.as_ref().map_or("", |f| f.runnable.prepared.kind()),
            wasi: function.as_ref().map_or("", |f| {
                let p = &f.runnable.prepared;
                if p.is_p3() { "0.3" } else { "0.2" }
            }),
            instance_concurrency: function.as_ref().map_or(1, |f| f.pool.concurrency()),
            fresh_instances: function.as_ref().and_then(|f| f.pool.fresh_reason()),
            init: function.as_ref().map_or("", |f| f.runnable.init_mode()),
            instances: function
                .as_ref()
                .map(|f| f.pool.counts())
                .unwrap_or_default(),
            metering: function.as_ref().map(|f| f.metrics.meter.view()),
            scaling: function
                .as_ref()
                .map(|f| crate::scaling::ScalingView::of(&f.pool)),
            instance_list: detail.then(|| self.instances_of(&record.name)),
            error,
            name: record.name,
            secrets: record.settings.secrets.keys().cloned().collect(),
            settings: FunctionSettings {
                secrets: Default::default(),
                ..record.settings
            },
            versions: record.versions,
        }
    }

    /// Every live instance of `name`, of any version, by id.
    pub fn instances(&self, name: &FunctionName) -> Result<Vec<InstanceView>, RegistryError> {
        if !self.records.lock().contains_key(name.as_str()) {
            return Err(RegistryError::NotFound(name.to_string()));
        }
        Ok(self.instances_of(name.as_str()))
    }

    fn instances_of(&self, name: &str) -> Vec<InstanceView> {
        let mut list: Vec<InstanceView> = self
            .ctx
            .budget
            .pools()
            .iter()
            .filter(|p| p.function().as_ref() == name)
            .flat_map(|p| p.instances())
            .collect();
        list.sort_by_key(|i| i.id);
        list
    }

    /// Every function, in name order.
    pub fn list(&self) -> Vec<FunctionInfo> {
        let records: Vec<FunctionRecord> = self.records.lock().values().cloned().collect();
        records
            .into_iter()
            .map(|r| self.describe(r, false))
            .collect()
    }

    /// Instance counts of every active pool, for `/metrics`, with the
    /// metering of live instances up to `[limits] max_instance_series` in
    /// all (the instance view has every instance): a scrape costs
    /// O(functions) past that.
    pub fn pool_gauges(&self) -> Vec<PoolGauge> {
        let mut active = self.active_functions();
        active.sort_by(|a, b| a.name.cmp(&b.name));
        let mut series_left = self.config.limits.max_instance_series as usize;
        active
            .iter()
            .map(|f| {
                let instances = f.pool.meterings(series_left);
                series_left -= instances.len();
                PoolGauge {
                    function: f.name.as_arc().clone(),
                    version: f.version,
                    counts: f.pool.counts(),
                    states: f.pool.states(),
                    target: f.pool.floor(),
                    fresh: f.pool.fresh_reason().is_some(),
                    instances,
                }
            })
            .collect()
    }
}

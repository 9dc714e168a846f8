//! The GPU service: the device, budgets and job slots.
//!
//! The device is opened in the background when the first function that
//! imports the interface is deployed or loaded: a server whose functions
//! never import it pays nothing for it, and deploys never wait for it.
//! A call is checked against `[gpu]`'s budget, waits for one of its
//! function's `max_jobs_per_function` slots, then runs on a blocking thread
//! while the device is shared first come, first served. A job that outlives
//! the request's deadline is answered as a timeout (the work finishes on the
//! device, bounded by the budget).

use super::GpuUsage;
use crate::config::GpuSettings;
use floe_gpu::{BackendChoice, Budget, Gpu, GpuConfig, GpuError};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The server's GPU capability.
pub struct GpuService {
    settings: GpuSettings,
    device: OnceLock<Result<Gpu, GpuError>>,
    slots: Mutex<HashMap<Arc<str>, Arc<Semaphore>>>,
    warming: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for GpuService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuService")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl GpuService {
    /// The service `settings` describe. The device is opened when a
    /// function that imports the interface is deployed or loaded
    /// ([`GpuService::warm`]), or at the first call.
    pub fn new(settings: &GpuSettings) -> Arc<Self> {
        Arc::new(Self {
            settings: settings.clone(),
            device: OnceLock::new(),
            slots: Mutex::new(HashMap::new()),
            warming: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Starts opening the device on a thread of its own (once).
    pub fn warm(self: &Arc<Self>) {
        if !self.settings.enabled
            || self
                .warming
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let opening = self.clone();
        let spawned = std::thread::Builder::new()
            .name("floe-gpu-open".into())
            .spawn(move || {
                if let Err(e) = opening.gpu() {
                    tracing::warn!(error = %e, "no GPU frame work on this server");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start opening the GPU device");
        }
    }

    /// The device, opening it if no one has yet (blocking).
    pub(crate) fn gpu(&self) -> Result<Gpu, GpuError> {
        if !self.settings.enabled {
            return Err(GpuError::Unavailable(
                "GPU frame work is disabled on this server ([gpu] enabled = false)".into(),
            ));
        }
        self.device
            .get_or_init(|| {
                let backend = BackendChoice::parse(&self.settings.backend).ok_or_else(|| {
                    GpuError::Unavailable(format!("unknown backend {:?}", self.settings.backend))
                })?;
                Gpu::open(GpuConfig {
                    backend,
                    adapter: self.settings.adapter.clone(),
                    max_recoveries: self.settings.max_recoveries,
                    pool_bytes: self.settings.pool_bytes.bytes(),
                })
            })
            .clone()
    }

    pub(crate) fn budget(&self) -> Budget {
        Budget {
            max_call_bytes: self.settings.max_call_bytes.bytes(),
            max_device_bytes: self.settings.max_device_bytes.bytes(),
        }
    }

    /// One of `function`'s job slots (waits while all are taken).
    pub(crate) async fn slot(&self, function: &Arc<str>) -> Option<OwnedSemaphorePermit> {
        let semaphore = self
            .slots
            .lock()
            .entry(function.clone())
            .or_insert_with(|| {
                Arc::new(Semaphore::new(self.settings.max_jobs_per_function as usize))
            })
            .clone();
        semaphore.acquire_owned().await.ok()
    }

    /// What `/readyz` says: the device, or why there is none.
    pub fn status(&self) -> Value {
        if !self.settings.enabled {
            return json!({ "state": "disabled" });
        }
        match self.device.get() {
            None if self.warming.load(std::sync::atomic::Ordering::Relaxed) => {
                json!({ "state": "opening" })
            }
            None => {
                json!({ "state": "idle", "note": "opened when a function that uses it is deployed" })
            }
            Some(Ok(gpu)) => {
                let a = gpu.adapter();
                json!({
                    "state": "ready",
                    "adapter": a.name,
                    "backend": a.backend,
                    "device_type": a.device_type,
                    "driver": a.driver,
                })
            }
            Some(Err(e)) => json!({ "state": "unavailable", "reason": e.to_string() }),
        }
    }

    /// What an instance of `function` uses to reach the device.
    pub fn access(self: &Arc<Self>, function: Arc<str>, usage: Arc<GpuUsage>) -> GpuAccess {
        GpuAccess {
            service: self.clone(),
            function,
            usage,
        }
    }
}

/// An instance's way to the device, and its counters.
#[derive(Clone, Debug)]
pub struct GpuAccess {
    pub(crate) service: Arc<GpuService>,
    pub(crate) function: Arc<str>,
    pub(crate) usage: Arc<GpuUsage>,
}

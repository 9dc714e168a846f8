//! `[gpu]`: GPU frame work (`floe:function/gpu`).

use super::ByteSize;
use serde::{Deserialize, Serialize};

/// `[gpu]`: the device behind `floe:function/gpu`, and what each function
/// may use of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuSettings {
    /// Open a device and serve the interface (a server built without the
    /// `gpu` feature never does).
    pub enabled: bool,
    /// `auto`, `vulkan`, `gl`, `metal` or `dx12`.
    pub backend: String,
    /// Use the first adapter whose name contains this; empty: the first
    /// GPU, else a software device.
    pub adapter: String,
    /// Bytes of frames in and out of one call.
    pub max_call_bytes: ByteSize,
    /// Device memory one call may hold (input, intermediate and output
    /// frames).
    pub max_device_bytes: ByteSize,
    /// GPU jobs one function may have queued or running at once; further
    /// calls wait.
    pub max_jobs_per_function: u32,
    /// Buffers kept on the device for reuse between calls.
    pub pool_bytes: ByteSize,
    /// Times in a row a lost device is recreated before calls answer
    /// `unavailable`.
    pub max_recoveries: u32,
}

impl Default for GpuSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            backend: "auto".into(),
            adapter: String::new(),
            max_call_bytes: ByteSize::mib(64),
            max_device_bytes: ByteSize::mib(512),
            max_jobs_per_function: 2,
            pool_bytes: ByteSize::mib(256),
            max_recoveries: 3,
        }
    }
}

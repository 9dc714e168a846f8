//! `floe:function/gpu`: functions' GPU frame work, on the server's one
//! device (the `floe-gpu` crate), when floe is built with the `gpu` feature
//! (the default). Without it the interface is not linked: a function that
//! imports it is refused at deploy, naming the import.

mod usage;
pub use usage::{GpuUsage, GpuUsageView};

#[cfg(feature = "gpu")]
mod pipeline;
#[cfg(feature = "gpu")]
mod service;

#[cfg(feature = "gpu")]
pub use pipeline::PipelineResource;
#[cfg(feature = "gpu")]
pub use service::{GpuAccess, GpuService};

//! A pipeline a function made through `floe:function/gpu`, as the
//! resource table holds it.

use floe_gpu::{GpuError, Operation};

/// A pipeline a function made: its operations, and why they were refused
/// if they were.
#[derive(Debug)]
pub struct PipelineResource {
    pub(crate) operations: Vec<Operation>,
    pub(crate) refused: Option<GpuError>,
}

//! floe's GPU frame work: the operations of the `floe:function/gpu`
//! interface as wgpu compute kernels (WGSL), on the node's GPU or, where
//! there is none, on a software Vulkan device (Mesa's lavapipe).
//!
//! [`Gpu`] owns one device for the server. Work is checked against the
//! caller's [`Budget`] before it touches the device, runs one job at a time
//! in arrival order (a fair lock), keeps intermediate frames on the device,
//! and reuses buffers across calls. A lost device is recreated on the next
//! call, a bounded number of times in a row.
//!
//! Every kernel has a CPU reference in [`floe_frames`]; the tests compare
//! them on odd sizes, both matrices and both ranges.

mod device;
mod exec;
mod kernels;
mod ops;
mod pool;

pub use device::{AdapterInfo, BackendChoice};
pub use exec::Timings;
pub use floe_frames::{
    BadDimensions, Color, Filter, Frame, Matrix, PixelFormat, Range, Rect, check_size, chroma_size,
};
pub use ops::{Operation, Plan, Shape, plan};

use parking_lot::{FairMutex, Mutex};
use std::sync::Arc;

/// Why GPU work was not done (the `error` variant of the interface).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    /// A frame or operation does not fit.
    #[error("bad dimensions: {0}")]
    BadDimensions(String),
    /// Over the caller's budget.
    #[error("over the GPU budget: {0}")]
    BudgetExceeded(String),
    /// The device was lost; it is recreated on the next call.
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),
    /// No GPU capability.
    #[error("no GPU: {0}")]
    Unavailable(String),
}

impl From<BadDimensions> for GpuError {
    fn from(e: BadDimensions) -> Self {
        GpuError::BadDimensions(e.0)
    }
}

/// How the server picks its device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuConfig {
    /// Which graphics API to use.
    pub backend: BackendChoice,
    /// Pick the first adapter whose name contains this (case-insensitive);
    /// empty: the first GPU, else a software device.
    pub adapter: String,
    /// Times in a row a lost device is recreated before calls answer
    /// `unavailable`.
    pub max_recoveries: u32,
    /// Bytes of buffers kept for reuse between calls.
    pub pool_bytes: u64,
}

impl Default for GpuConfig {
    fn default() -> Self {
        Self {
            backend: BackendChoice::Auto,
            adapter: String::new(),
            max_recoveries: 3,
            pool_bytes: 256 << 20,
        }
    }
}

/// What one caller (a function's instance) may use per call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Bytes of frames in and out of one call.
    pub max_call_bytes: u64,
    /// Bytes of device memory one call may hold (its input, intermediate
    /// and output frames).
    pub max_device_bytes: u64,
}

impl Budget {
    fn admit(&self, plan: &ops::Plan) -> Result<(), GpuError> {
        if plan.call_bytes > self.max_call_bytes {
            return Err(GpuError::BudgetExceeded(format!(
                "{} bytes in and out in one call; the limit is {}",
                plan.call_bytes, self.max_call_bytes
            )));
        }
        if plan.device_bytes > self.max_device_bytes {
            return Err(GpuError::BudgetExceeded(format!(
                "{} bytes of device memory in one call; the limit is {}",
                plan.device_bytes, self.max_device_bytes
            )));
        }
        Ok(())
    }
}

/// The server's GPU: one device, shared by every function fairly.
#[derive(Clone)]
pub struct Gpu {
    inner: Arc<Inner>,
}

/// The device, behind a trait object. wgpu's types refer to each other in
/// cycles, and proving `Send`/`Sync` through them again in every crate that
/// holds a [`Gpu`] inside a future can overflow the compiler's recursion
/// limit; behind this object it is proven once, here.
trait Opened: Send + Sync {
    fn device(&self) -> &device::Device;
}

impl Opened for device::Device {
    fn device(&self) -> &device::Device {
        self
    }
}

struct Inner {
    config: GpuConfig,
    /// The device; `None` after a loss until it is recreated. Jobs hold the
    /// lock while they run: first come, first served.
    device: FairMutex<Option<Arc<dyn Opened>>>,
    /// Losses since the device last worked.
    recoveries: Mutex<u32>,
    info: AdapterInfo,
}

impl Gpu {
    /// Opens the device `config` asks for.
    pub fn open(config: GpuConfig) -> Result<Self, GpuError> {
        let device = device::Device::open(&config)?;
        let info = device.info().clone();
        tracing::info!(adapter = %info.name, backend = %info.backend, kind = %info.device_type, "GPU device ready");
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                device: FairMutex::new(Some(Arc::new(device) as Arc<dyn Opened>)),
                recoveries: Mutex::new(0),
                info,
            }),
        })
    }

    /// The device's description.
    pub fn adapter(&self) -> &AdapterInfo {
        &self.inner.info
    }

    /// Runs `job` on the device (recreating it first if it was lost).
    fn with_device<T>(
        &self,
        job: impl FnOnce(&device::Device) -> Result<T, GpuError>,
    ) -> Result<T, GpuError> {
        let mut slot = self.inner.device.lock();
        if slot.is_none() {
            let mut recoveries = self.inner.recoveries.lock();
            if *recoveries >= self.inner.config.max_recoveries {
                return Err(GpuError::Unavailable(format!(
                    "the device was lost {} times in a row",
                    *recoveries
                )));
            }
            *recoveries += 1;
            tracing::warn!(attempt = *recoveries, "recreating the lost GPU device");
            let opened: Arc<dyn Opened> = Arc::new(device::Device::open(&self.inner.config)?);
            *slot = Some(opened);
        }
        let opened = slot
            .clone()
            .ok_or_else(|| GpuError::Unavailable("no device".into()))?;
        let device = opened.device();
        let result = if device.is_lost() {
            Err(GpuError::DeviceLost(
                "the device was lost before the work".into(),
            ))
        } else {
            job(device)
        };
        match &result {
            Err(GpuError::DeviceLost(reason)) => {
                tracing::warn!(%reason, "GPU device lost");
                *slot = None;
            }
            _ if device.is_lost() => *slot = None,
            _ => *self.inner.recoveries.lock() = 0,
        }
        result
    }

    /// Runs `operations` over `input` within `budget`.
    pub fn run(
        &self,
        operations: &[Operation],
        input: &Frame,
        budget: &Budget,
    ) -> Result<Frame, GpuError> {
        let plan = plan(operations, Shape::of(input))?;
        budget.admit(&plan)?;
        self.with_device(|device| exec::run(device, &plan, input, None))
    }

    /// Like [`Gpu::run`], waiting after the upload, the kernels and the
    /// read-back to time each (slower than `run`: for measurements).
    pub fn run_timed(
        &self,
        operations: &[Operation],
        input: &Frame,
        budget: &Budget,
    ) -> Result<(Frame, Timings), GpuError> {
        let plan = plan(operations, Shape::of(input))?;
        budget.admit(&plan)?;
        let mut timings = Timings::default();
        let frame =
            self.with_device(|device| exec::run(device, &plan, input, Some(&mut timings)))?;
        Ok((frame, timings))
    }

    /// The mean absolute luma difference of `a` and `b`, within `budget`.
    pub fn difference(&self, a: &Frame, b: &Frame, budget: &Budget) -> Result<f32, GpuError> {
        let plan = ops::difference_plan(a, b)?;
        budget.admit(&plan)?;
        self.with_device(|device| exec::difference(device, a, b))
    }

    /// Loses the device on purpose (for tests of recovery).
    pub fn lose_device_for_test(&self) {
        if let Some(device) = self.inner.device.lock().as_ref() {
            device.device().destroy();
        }
    }
}

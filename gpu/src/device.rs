//! Choosing an adapter and opening the device.

use crate::kernels::Kernels;
use crate::pool::BufferPool;
use crate::{GpuConfig, GpuError};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Which graphics API floe asks wgpu for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    /// Whatever the platform has (Vulkan, Metal, DX12, then GL).
    Auto,
    /// Vulkan (on Linux without a GPU: Mesa's lavapipe).
    Vulkan,
    /// OpenGL ES / EGL.
    Gl,
    /// Metal (macOS).
    Metal,
    /// Direct3D 12 (Windows).
    Dx12,
}

impl BackendChoice {
    /// Parses `auto`, `vulkan`, `gl`, `metal` or `dx12`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "auto" => BackendChoice::Auto,
            "vulkan" => BackendChoice::Vulkan,
            "gl" => BackendChoice::Gl,
            "metal" => BackendChoice::Metal,
            "dx12" => BackendChoice::Dx12,
            _ => return None,
        })
    }

    fn backends(self) -> wgpu::Backends {
        match self {
            BackendChoice::Auto => wgpu::Backends::all(),
            BackendChoice::Vulkan => wgpu::Backends::VULKAN,
            BackendChoice::Gl => wgpu::Backends::GL,
            BackendChoice::Metal => wgpu::Backends::METAL,
            BackendChoice::Dx12 => wgpu::Backends::DX12,
        }
    }
}

/// What functions (and `/readyz`) are told about the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterInfo {
    /// The adapter's name.
    pub name: String,
    /// `vulkan`, `metal`, `dx12` or `gl`.
    pub backend: String,
    /// `discrete-gpu`, `integrated-gpu`, `virtual-gpu`, `cpu` or `other`.
    pub device_type: String,
    /// The driver and its version.
    pub driver: String,
}

impl AdapterInfo {
    fn of(info: &wgpu::AdapterInfo) -> Self {
        let device_type = match info.device_type {
            wgpu::DeviceType::DiscreteGpu => "discrete-gpu",
            wgpu::DeviceType::IntegratedGpu => "integrated-gpu",
            wgpu::DeviceType::VirtualGpu => "virtual-gpu",
            wgpu::DeviceType::Cpu => "cpu",
            wgpu::DeviceType::Other => "other",
        };
        Self {
            name: info.name.clone(),
            backend: info.backend.to_str().to_owned(),
            device_type: device_type.to_owned(),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_owned(),
        }
    }
}

impl fmt::Display for AdapterInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {})", self.name, self.backend, self.device_type)
    }
}

/// An open device with its kernels and buffer pool.
pub(crate) struct Device {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) kernels: Kernels,
    pub(crate) pool: BufferPool,
    info: AdapterInfo,
    lost: Arc<AtomicBool>,
}

/// Ranks adapters: real GPUs first, software last.
fn rank(info: &wgpu::AdapterInfo) -> u8 {
    match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

impl Device {
    pub(crate) fn open(config: &GpuConfig) -> Result<Self, GpuError> {
        let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
        descriptor.backends = config.backend.backends();
        let instance = wgpu::Instance::new(descriptor);
        let mut adapters =
            pollster::block_on(instance.enumerate_adapters(config.backend.backends()));
        let wanted = config.adapter.to_lowercase();
        adapters
            .retain(|a| wanted.is_empty() || a.get_info().name.to_lowercase().contains(&wanted));
        adapters.sort_by_key(|a| {
            let info = a.get_info();
            // Vulkan before GL on the same hardware.
            (rank(&info), info.backend == wgpu::Backend::Gl)
        });
        let Some(adapter) = adapters.into_iter().next() else {
            return Err(GpuError::Unavailable(if wanted.is_empty() {
                format!(
                    "no {:?} adapter found (on Linux without a GPU, install Mesa's \
                     Vulkan drivers: mesa-vulkan-drivers)",
                    config.backend
                )
            } else {
                format!("no adapter named like {:?}", config.adapter)
            }));
        };
        let info = AdapterInfo::of(&adapter.get_info());
        let limits = wgpu::Limits::downlevel_defaults().using_resolution(adapter.limits());
        let limits = wgpu::Limits {
            max_storage_buffer_binding_size: adapter.limits().max_storage_buffer_binding_size,
            max_buffer_size: adapter.limits().max_buffer_size,
            ..limits
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("floe-gpu"),
            required_limits: limits,
            ..Default::default()
        }))
        .map_err(|e| GpuError::Unavailable(format!("opening {}: {e}", info.name)))?;
        let lost = Arc::new(AtomicBool::new(false));
        let flag = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            tracing::warn!(?reason, %message, "GPU device lost");
            flag.store(true, Ordering::Relaxed);
        });
        // Errors outside an error scope are logged, never a panic.
        device.on_uncaptured_error(Arc::new(|error| {
            tracing::warn!(%error, "GPU error");
        }));
        let kernels = Kernels::compile(&device);
        Ok(Self {
            pool: BufferPool::new(config.pool_bytes),
            device,
            queue,
            kernels,
            info,
            lost,
        })
    }

    pub(crate) fn info(&self) -> &AdapterInfo {
        &self.info
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    pub(crate) fn destroy(&self) {
        self.lost.store(true, Ordering::Relaxed);
        self.device.destroy();
    }
}

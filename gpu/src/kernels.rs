//! The WGSL kernels, compiled once per device.

/// One compute pipeline per kernel entry point.
pub(crate) struct Kernels {
    pub(crate) yuv_to_rgba: wgpu::ComputePipeline,
    pub(crate) yuv_thumbnail: wgpu::ComputePipeline,
    pub(crate) rgba_to_luma: wgpu::ComputePipeline,
    pub(crate) rgba_to_chroma: wgpu::ComputePipeline,
    pub(crate) resize_area: wgpu::ComputePipeline,
    pub(crate) resize_bilinear: wgpu::ComputePipeline,
    pub(crate) crop: wgpu::ComputePipeline,
    pub(crate) to_nv12: wgpu::ComputePipeline,
    pub(crate) to_i420: wgpu::ComputePipeline,
    pub(crate) difference: wgpu::ComputePipeline,
}

/// Helpers every module starts with.
const COMMON: &str = include_str!("wgsl/common.wgsl");

fn module(device: &wgpu::Device, name: &str, source: &str) -> wgpu::ShaderModule {
    device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(name),
        source: wgpu::ShaderSource::Wgsl(format!("{COMMON}\n{source}").into()),
    })
}

fn pipeline(
    device: &wgpu::Device,
    module: &wgpu::ShaderModule,
    entry: &str,
) -> wgpu::ComputePipeline {
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry),
        layout: None,
        module,
        entry_point: Some(entry),
        compilation_options: Default::default(),
        cache: None,
    })
}

impl Kernels {
    pub(crate) fn compile(device: &wgpu::Device) -> Self {
        let yuv = module(device, "yuv_to_rgba", include_str!("wgsl/yuv_to_rgba.wgsl"));
        let luma = module(device, "rgba_to_yuv", include_str!("wgsl/rgba_to_yuv.wgsl"));
        let resize = module(device, "resize", include_str!("wgsl/resize.wgsl"));
        let crop = module(device, "crop", include_str!("wgsl/crop.wgsl"));
        let repack = module(device, "repack", include_str!("wgsl/repack.wgsl"));
        let difference = module(device, "difference", include_str!("wgsl/difference.wgsl"));
        Self {
            yuv_to_rgba: pipeline(device, &yuv, "main"),
            yuv_thumbnail: pipeline(device, &yuv, "thumbnail"),
            rgba_to_luma: pipeline(device, &luma, "luma"),
            rgba_to_chroma: pipeline(device, &luma, "chroma"),
            resize_area: pipeline(device, &resize, "area"),
            resize_bilinear: pipeline(device, &resize, "bilinear"),
            crop: pipeline(device, &crop, "main"),
            to_nv12: pipeline(device, &repack, "to_nv12"),
            to_i420: pipeline(device, &repack, "to_i420"),
            difference: pipeline(device, &difference, "main"),
        }
    }
}

//! Running a plan on the device: upload once, dispatch every step with the
//! frames staying on the device, read the output back once.

use crate::GpuError;
use crate::device::Device;
use crate::ops::{Plan, Shape, Step};
use bytemuck::{Pod, Zeroable};
use floe_frames::{Filter, Frame, PixelFormat, Rect, chroma_size};

/// A frame on the device: one buffer per plane, each padded to 4 bytes.
struct DeviceFrame {
    shape: Shape,
    planes: Vec<wgpu::Buffer>,
}

fn padded(len: usize) -> u64 {
    (len as u64).div_ceil(4) * 4
}

fn upload(device: &Device, frame: &Frame) -> DeviceFrame {
    DeviceFrame {
        shape: Shape::of(frame),
        planes: frame
            .planes()
            .into_iter()
            .map(|plane| upload_plane(device, plane))
            .collect(),
    }
}

/// One plane in a (pooled) buffer, its last word zero-padded.
fn upload_plane(device: &Device, plane: &[u8]) -> wgpu::Buffer {
    let buffer = device.pool.take(&device.device, padded(plane.len()));
    let whole = plane.len() / 4 * 4;
    if whole > 0 {
        device.queue.write_buffer(&buffer, 0, &plane[..whole]);
    }
    if whole < plane.len() {
        let mut tail = [0_u8; 4];
        tail[..plane.len() - whole].copy_from_slice(&plane[whole..]);
        device.queue.write_buffer(&buffer, whole as u64, &tail);
    }
    buffer
}

fn allocate(device: &Device, shape: Shape) -> DeviceFrame {
    let planes = shape
        .format
        .plane_lengths(shape.width, shape.height)
        .into_iter()
        .map(|len| device.pool.take(&device.device, padded(len)))
        .collect();
    DeviceFrame { shape, planes }
}

fn uniform<T: Pod>(device: &Device, params: &T) -> wgpu::Buffer {
    let bytes = bytemuck::bytes_of(params);
    let buffer = device.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("floe-gpu params"),
        size: bytes.len() as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    device.queue.write_buffer(&buffer, 0, bytes);
    buffer
}

/// Records one dispatch of `pipeline` with `bindings` (binding number and
/// buffer), `groups` workgroups.
fn dispatch(
    device: &Device,
    encoder: &mut wgpu::CommandEncoder,
    pipeline: &wgpu::ComputePipeline,
    bindings: &[(u32, &wgpu::Buffer)],
    groups: (u32, u32),
) {
    let entries: Vec<wgpu::BindGroupEntry<'_>> = bindings
        .iter()
        .map(|(binding, buffer)| wgpu::BindGroupEntry {
            binding: *binding,
            resource: buffer.as_entire_binding(),
        })
        .collect();
    let group = device.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    });
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
    pass.set_pipeline(pipeline);
    pass.set_bind_group(0, &group, &[]);
    pass.dispatch_workgroups(groups.0, groups.1, 1);
}

/// Workgroups of 16 × 16 over a `width` × `height` grid.
fn grid(width: u32, height: u32) -> (u32, u32) {
    (width.div_ceil(16), height.div_ceil(16))
}

/// Workgroups of 64 over `items` items, folded into two dimensions (the
/// kernels index `id.y * groups.x * 64 + id.x`).
fn line(items: u32) -> (u32, u32) {
    let groups = items.div_ceil(64).max(1);
    let x = groups.min(65_535);
    (x, groups.div_ceil(x))
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ToRgbaParams {
    width: u32,
    height: u32,
    chroma_width: u32,
    nv12: u32,
    y_offset: f32,
    y_scale: f32,
    c_scale: f32,
    cr_r: f32,
    cb_g: f32,
    cr_g: f32,
    cb_b: f32,
    dst_width: u32,
    dst_height: u32,
    blocks: u32,
    pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct FromRgbaParams {
    width: u32,
    height: u32,
    chroma_width: u32,
    chroma_height: u32,
    nv12: u32,
    y_offset: f32,
    y_scale: f32,
    c_scale: f32,
    kr: f32,
    kg: f32,
    kb: f32,
    cb_b: f32,
    cr_r: f32,
    pad: [f32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ResizeParams {
    src_width: u32,
    src_height: u32,
    width: u32,
    height: u32,
    scale_x: f32,
    scale_y: f32,
    pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct CropParams {
    src_width: u32,
    x: u32,
    y: u32,
    width: u32,
    height: u32,
    pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct CountParams {
    count: u32,
    flag: u32,
    pad: [u32; 2],
}

/// Whether `from` is `to` times an even integer: area spans are then whole
/// 2×2 chroma blocks.
fn even_factor(from: u32, to: u32) -> bool {
    to > 0 && from.is_multiple_of(to) && (from / to).is_multiple_of(2)
}

/// A 4-byte buffer standing in for a plane a kernel does not use.
fn spare(device: &Device) -> wgpu::Buffer {
    device.pool.take(&device.device, 4)
}

/// Records `step` from `src` into a new frame of shape `out`; the new frame
/// and the buffers to give back afterwards.
fn record(
    device: &Device,
    encoder: &mut wgpu::CommandEncoder,
    step: Step,
    src: &DeviceFrame,
    out: Shape,
    keep: &mut Vec<wgpu::Buffer>,
) -> DeviceFrame {
    let dst = allocate(device, out);
    let k = &device.kernels;
    let (w, h) = (src.shape.width, src.shape.height);
    let (cw, ch) = chroma_size(w, h);
    match step {
        Step::ToRgba(color) | Step::ToRgbaArea(color) => {
            let c = color.coefficients();
            let params = uniform(
                device,
                &ToRgbaParams {
                    width: w,
                    height: h,
                    chroma_width: cw,
                    nv12: u32::from(src.shape.format == PixelFormat::Nv12),
                    y_offset: c.y_offset,
                    y_scale: c.y_scale,
                    c_scale: c.c_scale,
                    cr_r: c.cr_r,
                    cb_g: c.cb_g,
                    cr_g: c.cr_g,
                    cb_b: c.cb_b,
                    dst_width: out.width,
                    dst_height: out.height,
                    blocks: u32::from(
                        matches!(step, Step::ToRgbaArea(_))
                            && even_factor(w, out.width)
                            && even_factor(h, out.height),
                    ),
                    pad: [0; 2],
                },
            );
            let none = spare(device);
            let v = src.planes.get(2).unwrap_or(&none);
            let (pipeline, groups) = match step {
                Step::ToRgbaArea(_) => (
                    &k.yuv_thumbnail,
                    (out.width.div_ceil(8), out.height.div_ceil(8)),
                ),
                _ => (&k.yuv_to_rgba, grid(w, h)),
            };
            dispatch(
                device,
                encoder,
                pipeline,
                &[
                    (0, &params),
                    (1, &src.planes[0]),
                    (2, &src.planes[1]),
                    (3, v),
                    (4, &dst.planes[0]),
                ],
                groups,
            );
            keep.push(none);
        }
        Step::FromRgba(color) => {
            let c = color.coefficients();
            let params = uniform(
                device,
                &FromRgbaParams {
                    width: w,
                    height: h,
                    chroma_width: cw,
                    chroma_height: ch,
                    nv12: u32::from(out.format == PixelFormat::Nv12),
                    y_offset: c.y_offset,
                    y_scale: c.y_scale,
                    c_scale: c.c_scale,
                    kr: c.kr,
                    kg: c.kg,
                    kb: c.kb,
                    cb_b: c.cb_b,
                    cr_r: c.cr_r,
                    pad: [0.0; 3],
                },
            );
            dispatch(
                device,
                encoder,
                &k.rgba_to_luma,
                &[(0, &params), (1, &src.planes[0]), (2, &dst.planes[0])],
                line((w * h).div_ceil(4)),
            );
            let none = spare(device);
            let v = dst.planes.get(2).unwrap_or(&none);
            let per_word = if out.format == PixelFormat::Nv12 {
                2
            } else {
                4
            };
            dispatch(
                device,
                encoder,
                &k.rgba_to_chroma,
                &[
                    (0, &params),
                    (1, &src.planes[0]),
                    (3, &dst.planes[1]),
                    (4, v),
                ],
                line((cw * ch).div_ceil(per_word)),
            );
            keep.push(none);
        }
        Step::Repack => {
            let samples = cw * ch;
            let params = uniform(
                device,
                &CountParams {
                    count: samples,
                    flag: 0,
                    pad: [0; 2],
                },
            );
            encoder.copy_buffer_to_buffer(&src.planes[0], 0, &dst.planes[0], 0, None);
            if out.format == PixelFormat::Nv12 {
                dispatch(
                    device,
                    encoder,
                    &k.to_nv12,
                    &[
                        (0, &params),
                        (1, &src.planes[1]),
                        (2, &src.planes[2]),
                        (3, &dst.planes[1]),
                    ],
                    line(samples.div_ceil(2)),
                );
            } else {
                dispatch(
                    device,
                    encoder,
                    &k.to_i420,
                    &[
                        (0, &params),
                        (1, &src.planes[1]),
                        (3, &dst.planes[1]),
                        (4, &dst.planes[2]),
                    ],
                    line(samples.div_ceil(4)),
                );
            }
        }
        Step::Resize(filter) => {
            let params = uniform(
                device,
                &ResizeParams {
                    src_width: w,
                    src_height: h,
                    width: out.width,
                    height: out.height,
                    scale_x: w as f32 / out.width as f32,
                    scale_y: h as f32 / out.height as f32,
                    pad: [0; 2],
                },
            );
            let pipeline = match filter {
                Filter::Area => &k.resize_area,
                Filter::Bilinear => &k.resize_bilinear,
            };
            dispatch(
                device,
                encoder,
                pipeline,
                &[(0, &params), (1, &src.planes[0]), (2, &dst.planes[0])],
                grid(out.width, out.height),
            );
        }
        Step::Crop(Rect {
            x,
            y,
            width,
            height,
        }) => {
            let params = uniform(
                device,
                &CropParams {
                    src_width: w,
                    x,
                    y,
                    width,
                    height,
                    pad: [0; 3],
                },
            );
            dispatch(
                device,
                encoder,
                &k.crop,
                &[(0, &params), (1, &src.planes[0]), (2, &dst.planes[0])],
                grid(width, height),
            );
        }
    }
    dst
}

/// Copies `buffers` (with their real lengths) to one mappable buffer,
/// submits `encoder`, waits, and returns the bytes.
fn read_back(
    device: &Device,
    mut encoder: wgpu::CommandEncoder,
    buffers: &[(&wgpu::Buffer, usize)],
) -> Result<Vec<Vec<u8>>, GpuError> {
    let total: u64 = buffers.iter().map(|(_, len)| padded(*len)).sum();
    let staging = device.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("floe-gpu readback"),
        size: total.max(4),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut offset = 0;
    for (buffer, len) in buffers {
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, offset, padded(*len));
        offset += padded(*len);
    }
    let scope = device
        .device
        .push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    device.queue.submit([encoder.finish()]);
    if let Some(error) = pollster::block_on(scope.pop()) {
        return Err(GpuError::BudgetExceeded(format!(
            "the device is out of memory: {error}"
        )));
    }
    let (sender, receiver) = std::sync::mpsc::channel();
    staging.map_async(wgpu::MapMode::Read, .., move |result| {
        let _ = sender.send(result);
    });
    device
        .device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| GpuError::DeviceLost(e.to_string()))?;
    match receiver.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(GpuError::DeviceLost(format!("reading back: {e}"))),
        Err(_) => return Err(GpuError::DeviceLost("the read-back was dropped".into())),
    }
    let view = staging
        .get_mapped_range(..)
        .map_err(|e| GpuError::DeviceLost(format!("reading back: {e}")))?;
    let mut out = Vec::with_capacity(buffers.len());
    let mut offset = 0;
    for (_, len) in buffers {
        out.push(view[offset..offset + len].to_vec());
        offset += padded(*len) as usize;
    }
    drop(view);
    staging.unmap();
    if device.is_lost() {
        return Err(GpuError::DeviceLost("lost during the work".into()));
    }
    Ok(out)
}

/// Where one call's time went, each part waited for on its own.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// Copying the input to the device.
    pub upload: std::time::Duration,
    /// Running the kernels.
    pub compute: std::time::Duration,
    /// Copying the output back.
    pub readback: std::time::Duration,
}

/// Submits nothing new and waits for the queue to drain.
fn wait(device: &Device) -> Result<(), GpuError> {
    device.queue.submit([]);
    device
        .device
        .poll(wgpu::PollType::wait_indefinitely())
        .map(|_| ())
        .map_err(|e| GpuError::DeviceLost(e.to_string()))
}

/// Runs `plan` over `input`. With `timings`, waits after each part and
/// records how long it took (slower: for measuring only).
pub(crate) fn run(
    device: &Device,
    plan: &Plan,
    input: &Frame,
    mut timings: Option<&mut Timings>,
) -> Result<Frame, GpuError> {
    let started = std::time::Instant::now();
    let source = upload(device, input);
    if plan.steps.is_empty() {
        device.pool.give(source.planes);
        return Ok(input.clone());
    }
    if let Some(t) = timings.as_deref_mut() {
        wait(device)?;
        t.upload = started.elapsed();
    }
    let started = std::time::Instant::now();
    let scope = device
        .device
        .push_error_scope(wgpu::ErrorFilter::Validation);
    let mut encoder = device
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
    let mut keep = Vec::new();
    let mut current = source;
    for (step, shape) in &plan.steps {
        let next = record(device, &mut encoder, *step, &current, *shape, &mut keep);
        keep.extend(std::mem::replace(&mut current, next).planes);
    }
    if let Some(error) = pollster::block_on(scope.pop()) {
        device.pool.give(keep);
        device.pool.give(current.planes);
        return Err(GpuError::DeviceLost(format!(
            "the kernels were refused: {error}"
        )));
    }
    if let Some(t) = timings.as_deref_mut() {
        device.queue.submit([encoder.finish()]);
        wait(device)?;
        t.compute = started.elapsed();
        encoder = device
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
    }
    let started = std::time::Instant::now();
    let lengths = plan
        .output
        .format
        .plane_lengths(plan.output.width, plan.output.height);
    let buffers: Vec<(&wgpu::Buffer, usize)> = current.planes.iter().zip(lengths).collect();
    let planes = read_back(device, encoder, &buffers);
    device.pool.give(keep);
    device.pool.give(current.planes);
    let data = planes?.concat();
    if let Some(t) = timings {
        t.readback = started.elapsed();
    }
    Ok(Frame::new(
        plan.output.width,
        plan.output.height,
        plan.output.format,
        data,
    )?)
}

/// The mean absolute luma difference of two frames of the same shape.
pub(crate) fn difference(device: &Device, a: &Frame, b: &Frame) -> Result<f32, GpuError> {
    let pixels = a.width() * a.height();
    let rgba = a.format() == PixelFormat::Rgba8;
    // Only the Y planes (or the RGBA pixels) are compared.
    let fa = upload_plane(device, a.planes()[0]);
    let fb = upload_plane(device, b.planes()[0]);
    let words = if rgba { pixels } else { pixels.div_ceil(4) };
    let groups = words.div_ceil(256 * 16).clamp(1, 256);
    let partial = device.pool.take(&device.device, 4 * u64::from(groups));
    let params = uniform(
        device,
        &CountParams {
            count: pixels,
            flag: u32::from(rgba),
            pad: [0; 2],
        },
    );
    let mut encoder = device
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
    dispatch(
        device,
        &mut encoder,
        &device.kernels.difference,
        &[(0, &params), (1, &fa), (2, &fb), (3, &partial)],
        (groups, 1),
    );
    let sums = read_back(device, encoder, &[(&partial, 4 * groups as usize)]);
    device.pool.give([fa, fb, partial]);
    let sums = sums?;
    let total: u64 = sums[0]
        .chunks_exact(4)
        .map(|w| u64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]])))
        .sum();
    Ok((total as f64 / f64::from(pixels)) as f32)
}

//! Operations, and the plan of a pipeline: the shape of every frame it
//! makes, checked before any work, and what it costs.

use crate::GpuError;
use floe_frames::{
    Color, Filter, Frame, MAX_AREA_PIXELS, PixelFormat, Rect, area_pixels, check_size,
    thumbnail_size,
};

/// One step of a pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// To another pixel format; `color` is the YUV side's color space.
    Convert {
        /// The format to convert to.
        to: PixelFormat,
        /// The YUV side's color space.
        color: Color,
    },
    /// An RGBA8 frame to another size.
    Resize {
        /// The new width.
        width: u32,
        /// The new height.
        height: u32,
        /// How to sample.
        filter: Filter,
    },
    /// Part of an RGBA8 frame.
    Crop(Rect),
    /// To RGBA8, area-scaled down to fit a size, aspect kept.
    Thumbnail {
        /// The width to fit in.
        width: u32,
        /// The height to fit in.
        height: u32,
        /// The color space of YUV input.
        color: Color,
    },
}

/// A frame's size and format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Pixel format.
    pub format: PixelFormat,
}

impl Shape {
    /// The shape of `frame`.
    pub fn of(frame: &Frame) -> Self {
        Self {
            width: frame.width(),
            height: frame.height(),
            format: frame.format(),
        }
    }

    /// Its length in bytes.
    pub fn bytes(&self) -> u64 {
        self.format.frame_len(self.width, self.height) as u64
    }
}

/// What one kernel dispatch does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Step {
    /// YUV to RGBA8.
    ToRgba(Color),
    /// YUV to RGBA8, area-scaled in the same pass (a thumbnail).
    ToRgbaArea(Color),
    /// RGBA8 to YUV.
    FromRgba(Color),
    /// I420 ↔ NV12.
    Repack,
    /// Resize an RGBA8 frame.
    Resize(Filter),
    /// Crop an RGBA8 frame.
    Crop(Rect),
}

/// A checked pipeline.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The dispatches, each with the shape it makes.
    pub(crate) steps: Vec<(Step, Shape)>,
    /// The output's shape.
    pub output: Shape,
    /// Bytes crossing the boundary: input and output.
    pub call_bytes: u64,
    /// The most device memory the call holds at once (every frame it makes
    /// stays until the end: a simple, safe bound).
    pub device_bytes: u64,
}

fn rgba_only(shape: Shape, what: &str) -> Result<(), GpuError> {
    if shape.format != PixelFormat::Rgba8 {
        return Err(GpuError::BadDimensions(format!(
            "{what} takes RGBA8 frames, not {}: convert first",
            shape.format
        )));
    }
    Ok(())
}

fn resize_step(
    from: Shape,
    width: u32,
    height: u32,
    filter: Filter,
) -> Result<(Step, Shape), GpuError> {
    check_size(width, height)?;
    if filter == Filter::Area
        && area_pixels(from.width, from.height, width, height) > MAX_AREA_PIXELS
    {
        return Err(GpuError::BadDimensions(format!(
            "an area resize from {}x{} to {width}x{height} averages too many pixels \
             per output pixel; resize in two steps",
            from.width, from.height
        )));
    }
    Ok((
        Step::Resize(filter),
        Shape {
            width,
            height,
            format: PixelFormat::Rgba8,
        },
    ))
}

/// Checks `operations` on an input of shape `input`, and plans them.
pub fn plan(operations: &[Operation], input: Shape) -> Result<Plan, GpuError> {
    if operations.is_empty() {
        return Err(GpuError::BadDimensions(
            "a pipeline has at least one operation".into(),
        ));
    }
    check_size(input.width, input.height)?;
    let mut steps = Vec::new();
    let mut shape = input;
    let mut device_bytes = input.bytes();
    let mut push = |steps: &mut Vec<(Step, Shape)>, step: Step, next: Shape| {
        device_bytes += next.bytes();
        steps.push((step, next));
        next
    };
    for op in operations {
        shape = match *op {
            Operation::Convert { to, color } => {
                let next = Shape {
                    format: to,
                    ..shape
                };
                match (shape.format, to) {
                    (from, to) if from == to => shape,
                    (PixelFormat::Rgba8, _) => push(&mut steps, Step::FromRgba(color), next),
                    (_, PixelFormat::Rgba8) => push(&mut steps, Step::ToRgba(color), next),
                    _ => push(&mut steps, Step::Repack, next),
                }
            }
            Operation::Resize {
                width,
                height,
                filter,
            } => {
                rgba_only(shape, "resize")?;
                let (step, next) = resize_step(shape, width, height, filter)?;
                push(&mut steps, step, next)
            }
            Operation::Crop(rect) => {
                rgba_only(shape, "crop")?;
                check_size(rect.width, rect.height)?;
                let inside = |start: u32, len: u32, side: u32| {
                    start.checked_add(len).is_some_and(|end| end <= side)
                };
                if !inside(rect.x, rect.width, shape.width)
                    || !inside(rect.y, rect.height, shape.height)
                {
                    return Err(GpuError::BadDimensions(format!(
                        "the crop {}x{} at ({}, {}) falls outside the {}x{} frame",
                        rect.width, rect.height, rect.x, rect.y, shape.width, shape.height
                    )));
                }
                let next = Shape {
                    width: rect.width,
                    height: rect.height,
                    format: PixelFormat::Rgba8,
                };
                push(&mut steps, Step::Crop(rect), next)
            }
            Operation::Thumbnail {
                width,
                height,
                color,
            } => {
                check_size(width, height)?;
                let (w, h) = thumbnail_size(shape.width, shape.height, width, height);
                let (step, next) = resize_step(shape, w, h, Filter::Area)?;
                // From YUV, conversion and scaling are one pass.
                let step = if shape.format.is_yuv() {
                    Step::ToRgbaArea(color)
                } else {
                    step
                };
                push(&mut steps, step, next)
            }
        };
    }
    Ok(Plan {
        steps,
        output: shape,
        call_bytes: input.bytes() + shape.bytes(),
        device_bytes,
    })
}

/// The plan of a difference score: checks that the frames match.
pub(crate) fn difference_plan(a: &Frame, b: &Frame) -> Result<Plan, GpuError> {
    let (sa, sb) = (Shape::of(a), Shape::of(b));
    if sa != sb {
        return Err(GpuError::BadDimensions(format!(
            "frames of different shapes: {}x{} {} and {}x{} {}",
            sa.width, sa.height, sa.format, sb.width, sb.height, sb.format
        )));
    }
    Ok(Plan {
        steps: Vec::new(),
        output: sa,
        call_bytes: 2 * sa.bytes(),
        device_bytes: 2 * sa.bytes(),
    })
}

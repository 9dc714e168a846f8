//! The host side of `floe:function/gpu`: what a guest's calls do, on the
//! server's device ([`crate::gpu`]).

use super::StoreData;
use crate::bindings::gpu::{self as wit, Host, HostPipeline};
use crate::gpu::{GpuAccess, GpuService, PipelineResource};
use floe_gpu::{
    Color, Filter, Frame, GpuError, Matrix, Operation, PixelFormat, Range, Rect, check_size,
};
use std::time::Instant;
use wasmtime::component::{HasData, Linker, Resource};

fn format(f: wit::PixelFormat) -> PixelFormat {
    match f {
        wit::PixelFormat::I420 => PixelFormat::I420,
        wit::PixelFormat::Nv12 => PixelFormat::Nv12,
        wit::PixelFormat::Rgba8 => PixelFormat::Rgba8,
    }
}

fn wit_format(f: PixelFormat) -> wit::PixelFormat {
    match f {
        PixelFormat::I420 => wit::PixelFormat::I420,
        PixelFormat::Nv12 => wit::PixelFormat::Nv12,
        PixelFormat::Rgba8 => wit::PixelFormat::Rgba8,
    }
}

fn color(c: wit::Color) -> Color {
    Color {
        matrix: match c.matrix {
            wit::ColorMatrix::Bt601 => Matrix::Bt601,
            wit::ColorMatrix::Bt709 => Matrix::Bt709,
        },
        range: match c.range {
            wit::ColorRange::Limited => Range::Limited,
            wit::ColorRange::Full => Range::Full,
        },
    }
}

fn operation(op: wit::Operation) -> Operation {
    match op {
        wit::Operation::Convert(c) => Operation::Convert {
            to: format(c.to),
            color: color(c.color),
        },
        wit::Operation::Resize((size, filter)) => Operation::Resize {
            width: size.width,
            height: size.height,
            filter: match filter {
                wit::Filter::Bilinear => Filter::Bilinear,
                wit::Filter::Area => Filter::Area,
            },
        },
        wit::Operation::Crop(r) => Operation::Crop(Rect {
            x: r.x,
            y: r.y,
            width: r.width,
            height: r.height,
        }),
        wit::Operation::Thumbnail(t) => Operation::Thumbnail {
            width: t.fit.width,
            height: t.fit.height,
            color: color(t.color),
        },
    }
}

/// What can be checked of `operations` before any frame: at least one, and
/// every size they name possible.
fn check(operations: &[Operation]) -> Result<(), GpuError> {
    if operations.is_empty() {
        return Err(GpuError::BadDimensions(
            "a pipeline has at least one operation".into(),
        ));
    }
    for op in operations {
        match *op {
            Operation::Resize { width, height, .. }
            | Operation::Thumbnail { width, height, .. } => check_size(width, height)?,
            Operation::Crop(rect) => check_size(rect.width, rect.height)?,
            Operation::Convert { .. } => {}
        }
    }
    Ok(())
}

fn frame(f: wit::Frame) -> Result<Frame, GpuError> {
    Ok(Frame::new(f.width, f.height, format(f.format), f.data)?)
}

fn wit_frame(f: Frame) -> wit::Frame {
    wit::Frame {
        width: f.width(),
        height: f.height(),
        format: wit_format(f.format()),
        data: f.into_data(),
    }
}

fn wit_error(e: GpuError) -> wit::Error {
    match e {
        GpuError::BadDimensions(m) => wit::Error::BadDimensions(m),
        GpuError::BudgetExceeded(m) => wit::Error::BudgetExceeded(m),
        GpuError::DeviceLost(m) => wit::Error::DeviceLost(m),
        GpuError::Unavailable(m) => wit::Error::Unavailable(m),
    }
}

impl StoreData {
    fn gpu_access(&self) -> Result<GpuAccess, GpuError> {
        self.gpu.clone().ok_or_else(|| {
            GpuError::Unavailable("GPU work is not available while init is snapshotted".into())
        })
    }

    /// Runs `job` with the device on a blocking thread, within the
    /// function's job slots and the request's deadline; counts it.
    async fn gpu_job<T: Send + 'static>(
        &mut self,
        bytes: u64,
        job: impl FnOnce(&GpuService) -> Result<T, GpuError> + Send + 'static,
    ) -> wasmtime::Result<Result<T, GpuError>> {
        let access = match self.gpu_access() {
            Ok(access) => access,
            Err(e) => return Ok(Err(e)),
        };
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(self.deadline);
        let work = async {
            let _slot = access.service.slot(&access.function).await;
            let service = access.service.clone();
            let queued = started.elapsed();
            tokio::task::spawn_blocking(move || {
                let running = Instant::now();
                let result = job(&service);
                (result, running.elapsed())
            })
            .await
            .map(|(result, ran)| {
                tracing::debug!(
                    queued_us = queued.as_micros() as u64,
                    ran_us = ran.as_micros() as u64,
                    "GPU job"
                );
                result
            })
        };
        let result = match tokio::time::timeout_at(deadline, work).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(GpuError::DeviceLost(format!("the GPU job failed: {e}"))),
            // Past the deadline: trap, as for any request that overruns.
            Err(_) => wasmtime::bail!("GPU work ran past the request's deadline"),
        };
        access
            .usage
            .record(started.elapsed(), bytes, result.is_ok());
        Ok(result)
    }
}

impl Host for StoreData {
    async fn adapter(&mut self) -> wasmtime::Result<Result<wit::AdapterInfo, wit::Error>> {
        let info = self
            .gpu_job(0, |service| Ok(service.gpu()?.adapter().clone()))
            .await?;
        Ok(info
            .map(|a| wit::AdapterInfo {
                name: a.name,
                backend: a.backend,
                device_type: a.device_type,
                driver: a.driver,
            })
            .map_err(wit_error))
    }

    async fn difference(
        &mut self,
        a: wit::Frame,
        b: wit::Frame,
    ) -> wasmtime::Result<Result<f32, wit::Error>> {
        let bytes = (a.data.len() + b.data.len()) as u64;
        let (a, b) = match (frame(a), frame(b)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return Ok(Err(wit_error(e))),
        };
        let score = self
            .gpu_job(bytes, move |service| {
                service.gpu()?.difference(&a, &b, &service.budget())
            })
            .await?;
        Ok(score.map_err(wit_error))
    }
}

impl HostPipeline for StoreData {
    async fn new(
        &mut self,
        operations: Vec<wit::Operation>,
    ) -> wasmtime::Result<Resource<PipelineResource>> {
        let operations: Vec<Operation> = operations.into_iter().map(operation).collect();
        let refused = check(&operations).err();
        Ok(self.table.push(PipelineResource {
            operations,
            refused,
        })?)
    }

    async fn check(
        &mut self,
        pipeline: Resource<PipelineResource>,
    ) -> wasmtime::Result<Result<(), wit::Error>> {
        let pipeline = self.table.get(&pipeline)?;
        Ok(match &pipeline.refused {
            Some(e) => Err(wit_error(e.clone())),
            None => Ok(()),
        })
    }

    async fn run(
        &mut self,
        pipeline: Resource<PipelineResource>,
        input: wit::Frame,
    ) -> wasmtime::Result<Result<wit::Frame, wit::Error>> {
        let entered = Instant::now();
        let pipeline = self.table.get(&pipeline)?;
        if let Some(e) = &pipeline.refused {
            return Ok(Err(wit_error(e.clone())));
        }
        let operations = pipeline.operations.clone();
        let bytes = input.data.len() as u64;
        let input = match frame(input) {
            Ok(f) => f,
            Err(e) => return Ok(Err(wit_error(e))),
        };
        let output = self
            .gpu_job(bytes, move |service| {
                service.gpu()?.run(&operations, &input, &service.budget())
            })
            .await?;
        tracing::debug!(
            host_us = entered.elapsed().as_micros() as u64,
            "GPU pipeline run"
        );
        Ok(output.map(wit_frame).map_err(wit_error))
    }

    async fn drop(&mut self, pipeline: Resource<PipelineResource>) -> wasmtime::Result<()> {
        self.table.delete(pipeline)?;
        Ok(())
    }
}

/// The `HasData` of the interface: the instance's state itself.
struct GpuData;

impl HasData for GpuData {
    type Data<'a> = &'a mut StoreData;
}

/// Adds `floe:function/gpu` to `linker`.
pub(super) fn add_to_linker(linker: &mut Linker<StoreData>) -> wasmtime::Result<()> {
    wit::add_to_linker::<StoreData, GpuData>(linker, |state| state)
}

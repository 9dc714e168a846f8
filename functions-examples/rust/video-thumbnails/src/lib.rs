//! Scene thumbnails of a video clip, made on the server's GPU.
//!
//! `POST /` with a Y4M clip (4:2:0) as the body. Each frame is scored
//! against the one before with `floe:function/gpu`'s difference score; a
//! frame scoring over the threshold starts a new scene (the first frame
//! always does). The first frame of each scene becomes a thumbnail (RGBA,
//! area-scaled on the GPU), encoded as PNG here. The answer is JSON: the
//! scene starts, every score, and the thumbnails as base64 PNG.
//!
//! Query parameters:
//! - `threshold=N`: the score that makes a cut (default 30);
//! - `fit=WxH`: the box thumbnails fit in (default 320x180);
//! - `matrix=601|709`, `range=limited|full`: the clip's color space
//!   (default 709, limited);
//! - `all=1`: a thumbnail of every frame (for measuring throughput);
//! - `cpu=1`: the same work in Wasm with floe-frames, for comparison.

mod y4m;

use base64::Engine as _;
use floe_frames as cpu;
use floe_sdk::gpu;
use floe_sdk::http::{Body, Request, Response, Result, StatusCode};
use std::time::Instant;

floe_sdk::http_function!(handle);

/// What the query asks for.
struct Options {
    threshold: f32,
    fit: (u32, u32),
    color: gpu::Color,
    all: bool,
    cpu: bool,
}

impl Options {
    fn parse(query: &str) -> std::result::Result<Self, String> {
        let mut options = Options {
            threshold: 30.0,
            fit: (320, 180),
            color: gpu::BT709_LIMITED,
            all: false,
            cpu: false,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = || format!("bad {key}: {value:?}");
            match key {
                "threshold" => options.threshold = value.parse().map_err(|_| bad())?,
                "fit" => {
                    let (w, h) = value.split_once('x').ok_or_else(bad)?;
                    options.fit = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
                }
                "matrix" => {
                    options.color.matrix = match value {
                        "601" => gpu::ColorMatrix::Bt601,
                        "709" => gpu::ColorMatrix::Bt709,
                        _ => return Err(bad()),
                    }
                }
                "range" => {
                    options.color.range = match value {
                        "limited" => gpu::ColorRange::Limited,
                        "full" => gpu::ColorRange::Full,
                        _ => return Err(bad()),
                    }
                }
                "all" => options.all = value == "1",
                "cpu" => options.cpu = value == "1",
                _ => {}
            }
        }
        Ok(options)
    }
}

/// A thumbnail: the frame it shows and its RGBA pixels.
struct Thumb {
    frame: usize,
    width: u32,
    height: u32,
    rgba: Vec<u8>,
}

/// What the scene search found, and how long its parts took.
#[derive(Default)]
struct Found {
    scores: Vec<f32>,
    thumbs: Vec<Thumb>,
    score_ms: f64,
    thumb_ms: f64,
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

fn on_gpu(clip: &y4m::Clip<'_>, options: &Options) -> std::result::Result<Found, gpu::Error> {
    let pipeline = gpu::Pipeline::new(&[gpu::Operation::Thumbnail(gpu::Thumbnail {
        fit: gpu::Size {
            width: options.fit.0,
            height: options.fit.1,
        },
        color: options.color,
    })]);
    pipeline.check()?;
    // The frames go to the host straight from the request body.
    let frame = |data| gpu::FrameRef {
        width: clip.width,
        height: clip.height,
        format: gpu::PixelFormat::I420,
        data,
    };
    let mut found = Found::default();
    let mut previous: Option<&[u8]> = None;
    for (i, data) in clip.frames.iter().enumerate() {
        let started = Instant::now();
        let score = match previous {
            Some(previous) if !options.all => gpu::difference(frame(previous), frame(data))?,
            _ => 255.0,
        };
        found.score_ms += ms(started);
        if i > 0 && !options.all {
            found.scores.push(score);
        }
        if score > options.threshold || i == 0 || options.all {
            let started = Instant::now();
            let thumb = pipeline.run(frame(data))?;
            found.thumb_ms += ms(started);
            found.thumbs.push(Thumb {
                frame: i,
                width: thumb.width,
                height: thumb.height,
                rgba: thumb.data,
            });
        }
        previous = Some(data);
    }
    Ok(found)
}

fn on_cpu(
    clip: &y4m::Clip<'_>,
    options: &Options,
) -> std::result::Result<Found, cpu::BadDimensions> {
    let color = cpu::Color {
        matrix: match options.color.matrix {
            gpu::ColorMatrix::Bt601 => cpu::Matrix::Bt601,
            gpu::ColorMatrix::Bt709 => cpu::Matrix::Bt709,
        },
        range: match options.color.range {
            gpu::ColorRange::Limited => cpu::Range::Limited,
            gpu::ColorRange::Full => cpu::Range::Full,
        },
    };
    let mut found = Found::default();
    let mut previous: Option<cpu::Frame> = None;
    for (i, data) in clip.frames.iter().enumerate() {
        let current = cpu::Frame::new(
            clip.width,
            clip.height,
            cpu::PixelFormat::I420,
            data.to_vec(),
        )?;
        let started = Instant::now();
        let score = match &previous {
            Some(previous) if !options.all => cpu::difference(previous, &current)?,
            _ => 255.0,
        };
        found.score_ms += ms(started);
        if i > 0 && !options.all {
            found.scores.push(score);
        }
        if score > options.threshold || i == 0 || options.all {
            let started = Instant::now();
            let thumb = cpu::thumbnail(&current, options.fit.0, options.fit.1, color)?;
            found.thumb_ms += ms(started);
            found.thumbs.push(Thumb {
                frame: i,
                width: thumb.width(),
                height: thumb.height(),
                rgba: thumb.into_data(),
            });
        }
        previous = Some(current);
    }
    Ok(found)
}

fn png(thumb: &Thumb) -> std::result::Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, thumb.width, thumb.height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&thumb.rgba)?;
    writer.finish()?;
    Ok(out)
}

fn answer(status: StatusCode, value: &serde_json::Value) -> Result<Response<Body>> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(value.to_string().into())?)
}

fn gpu_status(e: &gpu::Error) -> StatusCode {
    match e {
        gpu::Error::BadDimensions(_) => StatusCode::BAD_REQUEST,
        gpu::Error::BudgetExceeded(_) => StatusCode::PAYLOAD_TOO_LARGE,
        gpu::Error::DeviceLost(_) | gpu::Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn handle(request: Request<Body>) -> Result<Response<Body>> {
    let query = request.uri().query().unwrap_or("").to_owned();
    let options = match Options::parse(&query) {
        Ok(options) => options,
        Err(e) => return answer(StatusCode::BAD_REQUEST, &serde_json::json!({ "error": e })),
    };
    if request.uri().path() == "/adapter" {
        return match gpu::adapter() {
            Ok(a) => answer(
                StatusCode::OK,
                &serde_json::json!({
                    "name": a.name, "backend": a.backend,
                    "device_type": a.device_type, "driver": a.driver,
                }),
            ),
            Err(e) => answer(
                gpu_status(&e),
                &serde_json::json!({ "error": format!("{e:?}") }),
            ),
        };
    }
    let body = request.into_body().bytes_contents().await?;
    let clip = match y4m::parse(&body) {
        Ok(clip) => clip,
        Err(e) => return answer(StatusCode::BAD_REQUEST, &serde_json::json!({ "error": e })),
    };
    let started = Instant::now();
    let found = if options.cpu {
        on_cpu(&clip, &options).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))
    } else {
        on_gpu(&clip, &options).map_err(|e| (gpu_status(&e), format!("{e:?}")))
    };
    let found = match found {
        Ok(found) => found,
        Err((status, e)) => return answer(status, &serde_json::json!({ "error": e })),
    };
    let work_ms = ms(started);
    let encode = Instant::now();
    let mut thumbnails = Vec::new();
    for thumb in &found.thumbs {
        let png = png(thumb)?;
        thumbnails.push(serde_json::json!({
            "frame": thumb.frame,
            "width": thumb.width,
            "height": thumb.height,
            "png": base64::engine::general_purpose::STANDARD.encode(png),
        }));
    }
    let scenes: Vec<usize> = found.thumbs.iter().map(|t| t.frame).collect();
    answer(
        StatusCode::OK,
        &serde_json::json!({
            "path": if options.cpu { "cpu" } else { "gpu" },
            "frames": clip.frames.len(),
            "width": clip.width,
            "height": clip.height,
            "scenes": scenes,
            "scores": found.scores,
            "thumbnails": thumbnails,
            "ms": {
                "work": work_ms,
                "scores": found.score_ms,
                "thumbnails": found.thumb_ms,
                "png": ms(encode),
            },
        }),
    )
}

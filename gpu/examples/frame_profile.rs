//! Times the GPU path of a 1080p I420 → 320×180 RGBA thumbnail and a
//! difference score, split into upload, compute and read-back, against the
//! CPU reference: `cargo run -p floe-gpu --release --example frame_profile`.
#![allow(clippy::print_stdout, clippy::unwrap_used, reason = "a measuring tool")]

use floe_gpu::{Budget, Color, Frame, Gpu, GpuConfig, Matrix, Operation, PixelFormat, Range};
use std::time::Instant;

fn main() {
    let gpu = Gpu::open(GpuConfig::default()).unwrap();
    println!("device: {}", gpu.adapter());
    let (w, h) = (1920, 1080);
    let data: Vec<u8> = (0..PixelFormat::I420.frame_len(w, h))
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let frame = Frame::new(w, h, PixelFormat::I420, data).unwrap();
    let color = Color {
        matrix: Matrix::Bt709,
        range: Range::Limited,
    };
    let op = [Operation::Thumbnail {
        width: 320,
        height: 180,
        color,
    }];
    let budget = Budget {
        max_call_bytes: 1 << 30,
        max_device_bytes: 1 << 30,
    };
    let n = 20;
    gpu.run(&op, &frame, &budget).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        gpu.run(&op, &frame, &budget).unwrap();
    }
    let per = t.elapsed().as_secs_f64() * 1e3 / f64::from(n);
    println!("thumbnail, GPU: {per:.2} ms/frame ({:.1} fps)", 1e3 / per);
    // As a server gets them: a freshly received copy of the frame each time.
    let t = Instant::now();
    for _ in 0..n {
        let copy = Frame::new(w, h, PixelFormat::I420, frame.data().to_vec()).unwrap();
        gpu.run(&op, &copy, &budget).unwrap();
    }
    let per = t.elapsed().as_secs_f64() * 1e3 / f64::from(n);
    println!("thumbnail, GPU, fresh input each time: {per:.2} ms/frame");
    let mut sum = floe_gpu::Timings::default();
    for _ in 0..n {
        let (_, t) = gpu.run_timed(&op, &frame, &budget).unwrap();
        sum.upload += t.upload;
        sum.compute += t.compute;
        sum.readback += t.readback;
    }
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3 / f64::from(n);
    println!(
        "  timed apart: upload {:.2} ms, compute {:.2} ms, read-back {:.2} ms",
        ms(sum.upload),
        ms(sum.compute),
        ms(sum.readback)
    );
    let t = Instant::now();
    for _ in 0..n {
        floe_frames::thumbnail(&frame, 320, 180, color).unwrap();
    }
    let per = t.elapsed().as_secs_f64() * 1e3 / f64::from(n);
    println!("thumbnail, CPU reference (native, one thread): {per:.2} ms/frame");
    let other = Frame::new(
        w,
        h,
        PixelFormat::I420,
        frame.data().iter().map(|b| b ^ 1).collect(),
    )
    .unwrap();
    let t = Instant::now();
    for _ in 0..n {
        gpu.difference(&frame, &other, &budget).unwrap();
    }
    println!(
        "difference, GPU: {:.2} ms",
        t.elapsed().as_secs_f64() * 1e3 / f64::from(n)
    );
    let t = Instant::now();
    for _ in 0..n {
        floe_frames::difference(&frame, &other).unwrap();
    }
    println!(
        "difference, CPU reference: {:.2} ms",
        t.elapsed().as_secs_f64() * 1e3 / f64::from(n)
    );
}

//! Every kernel against its CPU reference (floe-frames), on odd sizes, both
//! matrices and both ranges, on whatever device the machine has: a GPU, or
//! Mesa's lavapipe (software Vulkan) in CI. Not skipped when there is no
//! device: these tests fail then, loudly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    reason = "tests fail loudly and say which device they ran on"
)]

use floe_frames as reference;
use floe_gpu::{
    Budget, Color, Filter, Frame, Gpu, GpuConfig, GpuError, Matrix, Operation, PixelFormat, Range,
    Rect,
};
use std::sync::OnceLock;

const SIZES: [(u32, u32); 3] = [(1, 1), (3, 5), (1921, 1081)];
const COLORS: [Color; 4] = [
    Color {
        matrix: Matrix::Bt601,
        range: Range::Limited,
    },
    Color {
        matrix: Matrix::Bt601,
        range: Range::Full,
    },
    Color {
        matrix: Matrix::Bt709,
        range: Range::Limited,
    },
    Color {
        matrix: Matrix::Bt709,
        range: Range::Full,
    },
];
const PLENTY: Budget = Budget {
    max_call_bytes: 1 << 30,
    max_device_bytes: 1 << 30,
};

fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let gpu = Gpu::open(GpuConfig::default()).expect("a GPU or lavapipe (mesa-vulkan-drivers)");
        eprintln!("device: {}", gpu.adapter());
        gpu
    })
}

/// A frame of pseudo-random bytes (alpha 255 for RGBA8), smooth enough in
/// places and noisy in others.
fn frame(width: u32, height: u32, format: PixelFormat, seed: u32) -> Frame {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let len = format.frame_len(width, height);
    let mut data: Vec<u8> = (0..len)
        .map(|i| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            if (i / 64) % 2 == 0 {
                (i % 251) as u8
            } else {
                (state >> 24) as u8
            }
        })
        .collect();
    if format == PixelFormat::Rgba8 {
        for pixel in data.chunks_mut(4) {
            pixel[3] = 255;
        }
    }
    Frame::new(width, height, format, data).unwrap()
}

/// Asserts `got` equals `want` within `tolerance` per byte.
fn assert_close(got: &Frame, want: &Frame, tolerance: u8, what: &str) {
    assert_eq!(
        (got.width(), got.height(), got.format()),
        (want.width(), want.height(), want.format()),
        "{what}"
    );
    let mut worst = 0;
    let mut off = 0;
    for (a, b) in got.data().iter().zip(want.data()) {
        let d = a.abs_diff(*b);
        worst = worst.max(d);
        off += usize::from(d > 0);
    }
    assert!(
        worst <= tolerance,
        "{what}: {off} bytes differ, by up to {worst} (tolerance {tolerance})"
    );
}

fn run(ops: &[Operation], input: &Frame) -> Frame {
    gpu().run(ops, input, &PLENTY).unwrap()
}

#[test]
fn yuv_to_rgba_matches_the_reference_within_one() {
    for (w, h) in SIZES {
        for format in [PixelFormat::I420, PixelFormat::Nv12] {
            let input = frame(w, h, format, w + h);
            for color in COLORS {
                let got = run(
                    &[Operation::Convert {
                        to: PixelFormat::Rgba8,
                        color,
                    }],
                    &input,
                );
                let want = reference::rgba_from_yuv(&input, color);
                assert_close(&got, &want, 1, &format!("{format}->RGBA {w}x{h} {color:?}"));
            }
        }
    }
}

#[test]
fn rgba_to_yuv_matches_the_reference_within_one() {
    for (w, h) in SIZES {
        let input = frame(w, h, PixelFormat::Rgba8, w * h);
        for format in [PixelFormat::I420, PixelFormat::Nv12] {
            for color in COLORS {
                let got = run(&[Operation::Convert { to: format, color }], &input);
                let want = reference::yuv_from_rgba(&input, format, color);
                assert_close(&got, &want, 1, &format!("RGBA->{format} {w}x{h} {color:?}"));
            }
        }
    }
}

#[test]
fn repacking_between_i420_and_nv12_is_exact() {
    for (w, h) in SIZES {
        let i420 = frame(w, h, PixelFormat::I420, 7);
        let color = COLORS[0];
        let nv12 = run(
            &[Operation::Convert {
                to: PixelFormat::Nv12,
                color,
            }],
            &i420,
        );
        assert_eq!(nv12, reference::repack(&i420, PixelFormat::Nv12), "{w}x{h}");
        let back = run(
            &[Operation::Convert {
                to: PixelFormat::I420,
                color,
            }],
            &nv12,
        );
        assert_eq!(back, i420, "{w}x{h}");
    }
}

#[test]
fn resizes_match_the_reference() {
    let cases = [
        ((1921, 1081), (320, 180)),
        ((1921, 1081), (641, 359)),
        ((3, 5), (7, 11)),
        ((3, 5), (1, 1)),
        ((1, 1), (2, 3)),
    ];
    for ((sw, sh), (dw, dh)) in cases {
        let input = frame(sw, sh, PixelFormat::Rgba8, sw ^ dh);
        for filter in [Filter::Area, Filter::Bilinear] {
            let got = run(
                &[Operation::Resize {
                    width: dw,
                    height: dh,
                    filter,
                }],
                &input,
            );
            let want = reference::resize(&input, dw, dh, filter).unwrap();
            // Area sums integers: exact. Bilinear rounds floats: within one.
            let tolerance = if filter == Filter::Area { 0 } else { 1 };
            assert_close(
                &got,
                &want,
                tolerance,
                &format!("{filter:?} {sw}x{sh}->{dw}x{dh}"),
            );
        }
    }
}

#[test]
fn crops_are_exact() {
    for (w, h) in SIZES {
        let input = frame(w, h, PixelFormat::Rgba8, 3);
        let rect = Rect {
            x: w / 3,
            y: h / 2,
            width: w - w / 3,
            height: (h - h / 2).max(1),
        };
        let got = run(&[Operation::Crop(rect)], &input);
        assert_eq!(got, reference::crop(&input, rect).unwrap(), "{w}x{h}");
    }
}

#[test]
fn thumbnails_match_the_reference_within_one() {
    for (w, h) in SIZES {
        for format in [PixelFormat::I420, PixelFormat::Nv12, PixelFormat::Rgba8] {
            let input = frame(w, h, format, 11);
            let color = COLORS[2];
            let got = run(
                &[Operation::Thumbnail {
                    width: 320,
                    height: 180,
                    color,
                }],
                &input,
            );
            let want = reference::thumbnail(&input, 320, 180, color).unwrap();
            assert_close(&got, &want, 1, &format!("thumbnail of {format} {w}x{h}"));
        }
    }
}

#[test]
fn thumbnails_by_even_factors_match_the_reference_within_one() {
    // 1920×1080 and 640×360 into 320×180 scale by 6 and by 2: the kernel
    // then sums whole 2×2 chroma blocks, a path of its own.
    for (w, h) in [(1920, 1080), (640, 360)] {
        for format in [PixelFormat::I420, PixelFormat::Nv12] {
            for color in COLORS {
                let input = frame(w, h, format, 13);
                let op = Operation::Thumbnail {
                    width: 320,
                    height: 180,
                    color,
                };
                let got = run(&[op], &input);
                let want = reference::thumbnail(&input, 320, 180, color).unwrap();
                assert_close(
                    &got,
                    &want,
                    1,
                    &format!("thumbnail of {format} {w}x{h} {color:?}"),
                );
            }
        }
    }
}

#[test]
fn difference_scores_are_exact() {
    for (w, h) in SIZES {
        for format in [PixelFormat::I420, PixelFormat::Nv12, PixelFormat::Rgba8] {
            let a = frame(w, h, format, 1);
            let b = frame(w, h, format, 2);
            let got = gpu().difference(&a, &b, &PLENTY).unwrap();
            let want = reference::difference(&a, &b).unwrap();
            assert_eq!(got, want, "{format} {w}x{h}");
            assert_eq!(gpu().difference(&a, &a, &PLENTY).unwrap(), 0.0);
        }
    }
}

#[test]
fn a_pipeline_keeps_intermediates_on_the_device_and_matches_step_by_step() {
    let input = frame(1921, 1081, PixelFormat::Nv12, 5);
    let color = COLORS[3];
    let rect = Rect {
        x: 11,
        y: 7,
        width: 1001,
        height: 503,
    };
    let ops = [
        Operation::Convert {
            to: PixelFormat::Rgba8,
            color,
        },
        Operation::Crop(rect),
        Operation::Resize {
            width: 333,
            height: 167,
            filter: Filter::Area,
        },
        Operation::Convert {
            to: PixelFormat::I420,
            color,
        },
    ];
    let got = run(&ops, &input);
    // Each GPU step against the reference of that step, fed the GPU's own
    // previous output (differences do not compound through the chain).
    let rgba = run(&ops[..1], &input);
    let cropped = reference::crop(&rgba, rect).unwrap();
    let small = reference::resize(&cropped, 333, 167, Filter::Area).unwrap();
    let want = reference::yuv_from_rgba(&small, PixelFormat::I420, color);
    assert_close(&got, &want, 1, "pipeline");
}

#[test]
fn bad_input_gets_typed_errors() {
    let rgba = frame(4, 4, PixelFormat::Rgba8, 1);
    let i420 = frame(4, 4, PixelFormat::I420, 1);
    let bad = |r: Result<Frame, GpuError>| matches!(r, Err(GpuError::BadDimensions(_)));
    assert!(bad(gpu().run(&[], &rgba, &PLENTY)));
    let resize = Operation::Resize {
        width: 2,
        height: 2,
        filter: Filter::Area,
    };
    assert!(bad(gpu().run(&[resize], &i420, &PLENTY)));
    let outside = Operation::Crop(Rect {
        x: 3,
        y: 0,
        width: 2,
        height: 1,
    });
    assert!(bad(gpu().run(&[outside], &rgba, &PLENTY)));
    let zero = Operation::Resize {
        width: 0,
        height: 2,
        filter: Filter::Bilinear,
    };
    assert!(bad(gpu().run(&[zero], &rgba, &PLENTY)));
    let other = frame(4, 2, PixelFormat::Rgba8, 1);
    assert!(matches!(
        gpu().difference(&rgba, &other, &PLENTY),
        Err(GpuError::BadDimensions(_))
    ));
}

#[test]
fn work_over_the_budget_is_refused_before_it_runs() {
    let input = frame(1921, 1081, PixelFormat::I420, 1);
    let tight = Budget {
        max_call_bytes: 1 << 20,
        max_device_bytes: 1 << 30,
    };
    let thumb = Operation::Thumbnail {
        width: 320,
        height: 180,
        color: COLORS[0],
    };
    assert!(matches!(
        gpu().run(&[thumb], &input, &tight),
        Err(GpuError::BudgetExceeded(_))
    ));
    let small_device = Budget {
        max_call_bytes: 1 << 30,
        max_device_bytes: 2 << 20,
    };
    assert!(matches!(
        gpu().run(&[thumb], &input, &small_device),
        Err(GpuError::BudgetExceeded(_))
    ));
    // The same work within budget runs.
    assert!(gpu().run(&[thumb], &input, &PLENTY).is_ok());
}

#[test]
fn a_lost_device_is_recreated() {
    let gpu = Gpu::open(GpuConfig::default()).unwrap();
    let input = frame(3, 5, PixelFormat::Rgba8, 1);
    let op = [Operation::Resize {
        width: 2,
        height: 2,
        filter: Filter::Area,
    }];
    let want = gpu.run(&op, &input, &PLENTY).unwrap();
    gpu.lose_device_for_test();
    let mut answers = Vec::new();
    for _ in 0..3 {
        let r = gpu.run(&op, &input, &PLENTY);
        let ok = r.as_ref().is_ok_and(|f| *f == want);
        answers.push(r.map(|_| ()));
        if ok {
            break;
        }
    }
    assert!(
        answers.last().is_some_and(Result::is_ok),
        "no recovery: {answers:?}"
    );
    assert!(
        answers
            .iter()
            .all(|a| matches!(a, Ok(()) | Err(GpuError::DeviceLost(_)))),
        "{answers:?}"
    );
}

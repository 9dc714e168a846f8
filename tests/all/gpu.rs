//! GPU frame work (`floe:function/gpu`) end to end: the video-thumbnails
//! example on the server's device (a GPU, or lavapipe in CI: never skipped),
//! against the same work in Wasm; budgets; `/readyz`; and a server built
//! without the `gpu` feature.

use crate::harness::{Server, send};
use anyhow::{Context, Result};
use base64::Engine as _;
use bytes::Bytes;
use floe_tests::fixtures::{HELLO, VIDEO_THUMBNAILS};
use http::Request;
use http_body_util::Full;

/// A Y4M clip of `scenes` scenes of `per_scene` frames each: every scene has
/// its own brightness and colour, and its frames drift slowly.
pub(crate) fn clip(width: u32, height: u32, scenes: u32, per_scene: u32) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut out = format!("YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n").into_bytes();
    for scene in 0..scenes as usize {
        let base = [40_usize, 200, 110, 160][scene % 4];
        for frame in 0..per_scene as usize {
            out.extend_from_slice(b"FRAME\n");
            for _ in 0..h {
                out.extend((0..w).map(|x| (base + ((x + frame) * (scene + 1)) % 40) as u8));
            }
            out.extend(std::iter::repeat_n((60 * scene + 30) as u8, cw * ch));
            out.extend(std::iter::repeat_n((255 - 50 * scene) as u8, cw * ch));
        }
    }
    out
}

pub(crate) async fn thumbnails(
    server: &Server,
    name: &str,
    query: &str,
    body: Vec<u8>,
) -> Result<crate::harness::Reply> {
    send(
        Request::post(server.url(&format!("/{name}/?{query}")))
            .body(Full::new(Bytes::from(body)))?,
    )
    .await
}

/// The RGBA pixels of a base64 PNG, with its size.
pub(crate) fn decode(png_base64: &serde_json::Value) -> Result<(u32, u32, Vec<u8>)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(png_base64.as_str().context("a base64 string")?)?;
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info()?;
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels)?;
    pixels.truncate(info.buffer_size());
    Ok((info.width, info.height, pixels))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_video_example_finds_scene_cuts_and_matches_its_wasm_path() -> Result<()> {
    let server = Server::start()?;
    server.deploy("video", VIDEO_THUMBNAILS, &[]).await?;
    let adapter = server.get("/video/adapter").await?;
    assert_eq!(adapter.status, 200, "{}", adapter.text());
    assert!(
        adapter.json()["device_type"].is_string(),
        "{}",
        adapter.text()
    );

    let body = clip(643, 361, 4, 3);
    let gpu = thumbnails(&server, "video", "", body.clone()).await?;
    assert_eq!(gpu.status, 200, "{}", gpu.text());
    let gpu = gpu.json();
    assert_eq!(gpu["path"], "gpu");
    assert_eq!(gpu["frames"], 12);
    assert_eq!(
        gpu["scenes"],
        serde_json::json!([0, 3, 6, 9]),
        "{}",
        gpu["scores"]
    );
    let cpu = thumbnails(&server, "video", "cpu=1", body).await?.json();
    assert_eq!(cpu["path"], "cpu");
    assert_eq!(cpu["scenes"], gpu["scenes"]);
    // Integer scores: the same on both paths.
    assert_eq!(cpu["scores"], gpu["scores"]);

    let (gpu_thumbs, cpu_thumbs) = (
        gpu["thumbnails"].as_array().context("thumbnails")?,
        cpu["thumbnails"].as_array().context("thumbnails")?,
    );
    assert_eq!(gpu_thumbs.len(), 4);
    for (g, c) in gpu_thumbs.iter().zip(cpu_thumbs) {
        let (gw, gh, gp) = decode(&g["png"])?;
        let (cw, ch, cp) = decode(&c["png"])?;
        assert_eq!((gw, gh), (320, 180), "aspect kept, fits 320x180");
        assert_eq!((gw, gh), (cw, ch));
        let worst = gp.iter().zip(&cp).map(|(a, b)| a.abs_diff(*b)).max();
        assert!(
            worst <= Some(1),
            "GPU and Wasm thumbnails differ by {worst:?}"
        );
    }

    // Not a clip: 400, from the function.
    let r = thumbnails(&server, "video", "", b"not a clip".to_vec()).await?;
    assert_eq!(r.status, 400, "{}", r.text());

    let ready = crate::harness::get(&server.control_url("/readyz"))
        .await?
        .json();
    assert_eq!(ready["gpu"]["state"], "ready", "{ready}");
    let instances = server.client().instances("video").await?;
    let gpu_calls = instances["instances"][0]["gpu"]["calls"].as_u64();
    assert!(gpu_calls >= Some(12), "{instances}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn over_budget_work_gets_a_typed_error_and_other_functions_still_run() -> Result<()> {
    let server = Server::builder()
        .env("FLOE_GPU__MAX_CALL_BYTES", "200KiB")
        .start()?;
    server.deploy("big", VIDEO_THUMBNAILS, &[]).await?;
    server.deploy("small", VIDEO_THUMBNAILS, &[]).await?;
    // 640x360 I420 is 345,600 bytes a frame: over the budget.
    let big = thumbnails(&server, "big", "", clip(640, 360, 2, 2));
    let small = thumbnails(&server, "small", "", clip(160, 90, 2, 2));
    let (big, small) = tokio::join!(big, small);
    let (big, small) = (big?, small?);
    assert_eq!(big.status, 413, "{}", big.text());
    assert!(big.text().contains("BudgetExceeded"), "{}", big.text());
    assert_eq!(small.status, 200, "{}", small.text());
    assert_eq!(small.json()["scenes"], serde_json::json!([0, 2]));
    Ok(())
}

/// The floe binary built without the `gpu` feature (`scripts/test` builds
/// it).
fn floe_without_gpu() -> Result<String> {
    let path = crate::sdk::repo().join("target/floe-no-gpu");
    anyhow::ensure!(
        path.exists(),
        "{} is missing: scripts/test builds it (cargo build -p floe-cli --no-default-features)",
        path.display()
    );
    Ok(path.display().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_built_without_gpu_runs_functions_that_do_not_import_it() -> Result<()> {
    let server = Server::builder().binary(&floe_without_gpu()?).start()?;
    server.deploy("hello", HELLO, &[]).await?;
    assert_eq!(server.get("/hello/").await?.status, 200);
    let refused = server.deploy("video", VIDEO_THUMBNAILS, &[]).await;
    let message = format!(
        "{:#}",
        refused.err().context("the GPU function was deployed")?
    );
    assert!(message.contains("floe:function/gpu"), "{message}");
    let ready = crate::harness::get(&server.control_url("/readyz"))
        .await?
        .json();
    assert_eq!(ready["gpu"]["state"], "not built in", "{ready}");
    Ok(())
}

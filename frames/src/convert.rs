//! Pixel-format conversion.

use crate::{BadDimensions, Color, Frame, PixelFormat, chroma_size, to_byte};

/// The U and V samples of chroma sample `i` of a YUV frame's planes.
fn chroma_at(format: PixelFormat, planes: &[&[u8]], i: usize) -> (u8, u8) {
    match format {
        PixelFormat::I420 => (planes[1][i], planes[2][i]),
        _ => (planes[1][2 * i], planes[1][2 * i + 1]),
    }
}

/// A YUV frame as RGBA8 (alpha 255), each pixel from its own Y and the U
/// and V of the 2×2 block it is in.
pub fn rgba_from_yuv(frame: &Frame, color: Color) -> Frame {
    let c = color.coefficients();
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let cw = chroma_size(frame.width(), frame.height()).0 as usize;
    let planes = frame.planes();
    let mut out = Vec::with_capacity(4 * w * h);
    for y in 0..h {
        for x in 0..w {
            let (u, v) = chroma_at(frame.format(), &planes, (y / 2) * cw + x / 2);
            let rgb = c.rgb(planes[0][y * w + x], u, v);
            out.extend(rgb.map(to_byte));
            out.push(255);
        }
    }
    Frame::from_parts(frame.width(), frame.height(), PixelFormat::Rgba8, out)
}

/// An RGBA8 frame as I420 or NV12: Y per pixel; U and V from the mean RGB
/// of the (up to) 2×2 pixels each chroma sample covers. Alpha is dropped.
pub fn yuv_from_rgba(frame: &Frame, to: PixelFormat, color: Color) -> Frame {
    let c = color.coefficients();
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let (cw, ch) = chroma_size(frame.width(), frame.height());
    let (cw, ch) = (cw as usize, ch as usize);
    let rgba = frame.data();
    let pixel = |x: usize, y: usize| {
        let p = &rgba[4 * (y * w + x)..4 * (y * w + x) + 3];
        [f32::from(p[0]), f32::from(p[1]), f32::from(p[2])]
    };
    let mut luma = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            luma.push(to_byte(c.y(pixel(x, y))));
        }
    }
    let mut u_plane = Vec::with_capacity(cw * ch);
    let mut v_plane = Vec::with_capacity(cw * ch);
    for cy in 0..ch {
        for cx in 0..cw {
            let mut sum = [0.0_f32; 3];
            let mut n = 0.0_f32;
            for y in 2 * cy..(2 * cy + 2).min(h) {
                for x in 2 * cx..(2 * cx + 2).min(w) {
                    let p = pixel(x, y);
                    for k in 0..3 {
                        sum[k] += p[k];
                    }
                    n += 1.0;
                }
            }
            let [u, v] = c.uv(sum.map(|s| s / n)).map(to_byte);
            u_plane.push(u);
            v_plane.push(v);
        }
    }
    let mut out = luma;
    match to {
        PixelFormat::Nv12 => {
            for (u, v) in u_plane.iter().zip(&v_plane) {
                out.push(*u);
                out.push(*v);
            }
        }
        _ => {
            out.extend(u_plane);
            out.extend(v_plane);
        }
    }
    Frame::from_parts(frame.width(), frame.height(), to, out)
}

/// A YUV frame in the other YUV layout (I420 ↔ NV12); the samples are
/// unchanged.
pub fn repack(frame: &Frame, to: PixelFormat) -> Frame {
    let planes = frame.planes();
    let mut out = planes[0].to_vec();
    let chroma = chroma_size(frame.width(), frame.height());
    let n = chroma.0 as usize * chroma.1 as usize;
    let pairs = (0..n).map(|i| chroma_at(frame.format(), &planes, i));
    match to {
        PixelFormat::Nv12 => {
            for (u, v) in pairs {
                out.push(u);
                out.push(v);
            }
        }
        _ => {
            let (u, v): (Vec<u8>, Vec<u8>) = pairs.unzip();
            out.extend(u);
            out.extend(v);
        }
    }
    Frame::from_parts(frame.width(), frame.height(), to, out)
}

/// `frame` in pixel format `to`; `color` is the color space of the YUV side.
pub fn convert(frame: &Frame, to: PixelFormat, color: Color) -> Result<Frame, BadDimensions> {
    Ok(match (frame.format(), to) {
        (from, to) if from == to => frame.clone(),
        (PixelFormat::Rgba8, to) => yuv_from_rgba(frame, to, color),
        (_, PixelFormat::Rgba8) => rgba_from_yuv(frame, color),
        (_, to) => repack(frame, to),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Matrix, Range};

    const BT709_FULL: Color = Color {
        matrix: Matrix::Bt709,
        range: Range::Full,
    };

    #[test]
    fn repacking_round_trips_exactly_on_odd_sizes() {
        let data: Vec<u8> = (0..PixelFormat::I420.frame_len(3, 5))
            .map(|i| i as u8)
            .collect();
        let i420 = Frame::new(3, 5, PixelFormat::I420, data).unwrap();
        let nv12 = repack(&i420, PixelFormat::Nv12);
        assert_eq!(&nv12.data()[15..19], &[15, 21, 16, 22]);
        assert_eq!(repack(&nv12, PixelFormat::I420), i420);
    }

    #[test]
    fn a_gray_frame_stays_gray_through_yuv() {
        let rgba = Frame::new(3, 3, PixelFormat::Rgba8, [90, 90, 90, 7].repeat(9)).unwrap();
        let yuv = convert(&rgba, PixelFormat::I420, BT709_FULL).unwrap();
        assert!(yuv.planes()[1].iter().all(|&u| u == 128));
        let back = convert(&yuv, PixelFormat::Rgba8, BT709_FULL).unwrap();
        assert_eq!(back.data(), [90, 90, 90, 255].repeat(9));
    }
}

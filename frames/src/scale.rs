//! Resizing, cropping, thumbnails and difference scores.

use crate::{BadDimensions, Color, Frame, PixelFormat, check_size, convert, to_byte};

/// How a resize samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Filter {
    /// Bilinear interpolation between the four nearest pixels.
    Bilinear,
    /// The rounded mean of the source pixels each output pixel covers.
    Area,
}

/// A rectangle of a frame, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

fn rgba_only(frame: &Frame, what: &str) -> Result<(), BadDimensions> {
    if frame.format() != PixelFormat::Rgba8 {
        return Err(BadDimensions(format!(
            "{what} takes RGBA8 frames, not {}: convert first",
            frame.format()
        )));
    }
    Ok(())
}

/// The source pixels `[start, end)` an area filter averages for output
/// pixel `i` of `to` when scaling from `from`.
pub fn area_span(i: u32, from: u32, to: u32) -> (u32, u32) {
    let start = (u64::from(i) * u64::from(from) / u64::from(to)) as u32;
    let end = (u64::from(i + 1) * u64::from(from)).div_ceil(u64::from(to)) as u32;
    (start, end.max(start + 1).min(from))
}

/// The largest number of source pixels one output pixel of an area resize
/// may average (its integer sums must fit 32 bits).
pub const MAX_AREA_PIXELS: u64 = 1 << 24;

/// A bound on the source pixels one output pixel averages when an area
/// resize goes from `sw` × `sh` to `dw` × `dh`.
pub fn area_pixels(sw: u32, sh: u32, dw: u32, dh: u32) -> u64 {
    let span = |from: u32, to: u32| u64::from(from.div_ceil(to)) + 1;
    span(sw, dw) * span(sh, dh)
}

/// Where output pixel `i` of `to` samples a source of `from` pixels under
/// bilinear filtering: the two source pixels and the second one's weight.
pub fn bilinear_tap(i: u32, from: u32, to: u32) -> (u32, u32, f32) {
    let scale = from as f32 / to as f32;
    let s = ((i as f32 + 0.5) * scale - 0.5).clamp(0.0, (from - 1) as f32);
    let s0 = s.floor();
    let i0 = s0 as u32;
    ((i0), (i0 + 1).min(from - 1), s - s0)
}

/// An RGBA8 frame resized to `width` × `height`.
pub fn resize(
    frame: &Frame,
    width: u32,
    height: u32,
    filter: Filter,
) -> Result<Frame, BadDimensions> {
    rgba_only(frame, "resize")?;
    check_size(width, height)?;
    let (sw, sh) = (frame.width(), frame.height());
    if filter == Filter::Area && area_pixels(sw, sh, width, height) > MAX_AREA_PIXELS {
        return Err(BadDimensions(format!(
            "an area resize from {sw}x{sh} to {width}x{height} averages too many pixels \
             per output pixel; resize in two steps"
        )));
    }
    let src = frame.data();
    let at = |x: u32, y: u32, k: usize| src[4 * (y as usize * sw as usize + x as usize) + k];
    let mut out = Vec::with_capacity(4 * width as usize * height as usize);
    for y in 0..height {
        for x in 0..width {
            for k in 0..4 {
                let value = match filter {
                    Filter::Area => {
                        let (x0, x1) = area_span(x, sw, width);
                        let (y0, y1) = area_span(y, sh, height);
                        let mut sum = 0_u32;
                        for sy in y0..y1 {
                            for sx in x0..x1 {
                                sum += u32::from(at(sx, sy, k));
                            }
                        }
                        let n = (x1 - x0) * (y1 - y0);
                        ((sum + n / 2) / n) as u8
                    }
                    Filter::Bilinear => {
                        let (x0, x1, fx) = bilinear_tap(x, sw, width);
                        let (y0, y1, fy) = bilinear_tap(y, sh, height);
                        let p = |x, y| f32::from(at(x, y, k));
                        let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
                        let bottom = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
                        to_byte(top * (1.0 - fy) + bottom * fy)
                    }
                };
                out.push(value);
            }
        }
    }
    Ok(Frame::from_parts(width, height, PixelFormat::Rgba8, out))
}

/// The part `rect` of an RGBA8 frame.
pub fn crop(frame: &Frame, rect: Rect) -> Result<Frame, BadDimensions> {
    rgba_only(frame, "crop")?;
    check_size(rect.width, rect.height)?;
    let fits = |start: u32, len: u32, side: u32| start.checked_add(len).is_some_and(|e| e <= side);
    if !fits(rect.x, rect.width, frame.width()) || !fits(rect.y, rect.height, frame.height()) {
        return Err(BadDimensions(format!(
            "the crop {}x{} at ({}, {}) falls outside the {}x{} frame",
            rect.width,
            rect.height,
            rect.x,
            rect.y,
            frame.width(),
            frame.height()
        )));
    }
    let row = 4 * frame.width() as usize;
    let mut out = Vec::with_capacity(4 * rect.width as usize * rect.height as usize);
    for y in rect.y..rect.y + rect.height {
        let start = y as usize * row + 4 * rect.x as usize;
        out.extend_from_slice(&frame.data()[start..start + 4 * rect.width as usize]);
    }
    Ok(Frame::from_parts(
        rect.width,
        rect.height,
        PixelFormat::Rgba8,
        out,
    ))
}

/// The size of the thumbnail of a `width` × `height` frame that fits in
/// `fit_width` × `fit_height`: scaled down (never up), aspect kept, each
/// side at least 1.
pub fn thumbnail_size(width: u32, height: u32, fit_width: u32, fit_height: u32) -> (u32, u32) {
    if width <= fit_width && height <= fit_height {
        return (width, height);
    }
    let scale =
        (f64::from(fit_width) / f64::from(width)).min(f64::from(fit_height) / f64::from(height));
    let side = |len: u32, fit: u32| ((f64::from(len) * scale).round() as u32).clamp(1, fit.max(1));
    (side(width, fit_width), side(height, fit_height))
}

/// A thumbnail: `frame` as RGBA8, area-scaled to fit `fit_width` ×
/// `fit_height`.
pub fn thumbnail(
    frame: &Frame,
    fit_width: u32,
    fit_height: u32,
    color: Color,
) -> Result<Frame, BadDimensions> {
    check_size(fit_width, fit_height)?;
    let rgba = convert(frame, PixelFormat::Rgba8, color)?;
    let (w, h) = thumbnail_size(frame.width(), frame.height(), fit_width, fit_height);
    resize(&rgba, w, h, Filter::Area)
}

/// The mean absolute luma difference of two frames of the same size and
/// format, 0.0 to 255.0.
pub fn difference(a: &Frame, b: &Frame) -> Result<f32, BadDimensions> {
    if (a.width(), a.height(), a.format()) != (b.width(), b.height(), b.format()) {
        return Err(BadDimensions(format!(
            "frames of different shapes: {}x{} {} and {}x{} {}",
            a.width(),
            a.height(),
            a.format(),
            b.width(),
            b.height(),
            b.format()
        )));
    }
    let n = a.width() as usize * a.height() as usize;
    let sum: u64 = (0..n)
        .map(|i| u64::from(a.luma(i).abs_diff(b.luma(i))))
        .sum();
    Ok((sum as f64 / n as f64) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgba(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 4]) -> Frame {
        let f = &f;
        let data = (0..h)
            .flat_map(|y| (0..w).flat_map(move |x| f(x, y)))
            .collect();
        Frame::new(w, h, PixelFormat::Rgba8, data).unwrap()
    }

    #[test]
    fn area_halving_averages_two_by_two_blocks() {
        let f = rgba(4, 2, |x, _| [(x * 10) as u8, 0, 0, 255]);
        let half = resize(&f, 2, 1, Filter::Area).unwrap();
        assert_eq!(half.data(), &[5, 0, 0, 255, 25, 0, 0, 255]);
    }

    #[test]
    fn spans_cover_every_source_pixel_when_shrinking() {
        let mut next = 0;
        for i in 0..7 {
            let (s, e) = area_span(i, 1921, 7);
            assert!(s <= next && e > s);
            next = e;
        }
        assert_eq!(next, 1921);
        assert_eq!(area_span(0, 1, 5), (0, 1));
    }

    #[test]
    fn bilinear_keeps_a_flat_frame_flat_and_identity_is_exact() {
        let f = rgba(3, 5, |x, y| [(x * 40 + y) as u8, 9, 200, 255]);
        assert_eq!(resize(&f, 3, 5, Filter::Bilinear).unwrap(), f);
        let flat = rgba(3, 5, |_, _| [7, 8, 9, 10]);
        let up = resize(&flat, 7, 11, Filter::Bilinear).unwrap();
        assert!(up.data().chunks(4).all(|p| p == [7, 8, 9, 10]));
    }

    #[test]
    fn crops_check_their_bounds() {
        let f = rgba(3, 5, |x, y| [x as u8, y as u8, 0, 0]);
        let c = crop(
            &f,
            Rect {
                x: 1,
                y: 2,
                width: 2,
                height: 3,
            },
        )
        .unwrap();
        assert_eq!(&c.data()[..8], &[1, 2, 0, 0, 2, 2, 0, 0]);
        assert!(
            crop(
                &f,
                Rect {
                    x: 2,
                    y: 0,
                    width: 2,
                    height: 1
                }
            )
            .is_err()
        );
        assert!(
            crop(
                &f,
                Rect {
                    x: u32::MAX,
                    y: 0,
                    width: 2,
                    height: 1
                }
            )
            .is_err()
        );
    }

    #[test]
    fn thumbnails_fit_and_keep_the_aspect() {
        assert_eq!(thumbnail_size(1920, 1080, 320, 320), (320, 180));
        assert_eq!(thumbnail_size(1080, 1920, 320, 180), (101, 180));
        assert_eq!(thumbnail_size(100, 50, 320, 180), (100, 50));
        assert_eq!(thumbnail_size(10_000, 1, 10, 10), (10, 1));
    }

    #[test]
    fn difference_is_the_mean_absolute_luma_step() {
        let a = Frame::new(2, 2, PixelFormat::I420, vec![10, 10, 10, 10, 1, 2]).unwrap();
        let b = Frame::new(2, 2, PixelFormat::I420, vec![20, 10, 0, 10, 9, 9]).unwrap();
        assert_eq!(difference(&a, &b).unwrap(), 5.0);
        let c = Frame::new(1, 1, PixelFormat::Rgba8, vec![255, 255, 255, 0]).unwrap();
        assert!(difference(&a, &c).is_err());
    }
}

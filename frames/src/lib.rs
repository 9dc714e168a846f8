//! Video frames as floe's `floe:function/gpu` interface sees them, and the
//! CPU reference of every operation it offers.
//!
//! The host's GPU kernels are tested against these functions, and functions
//! can run them inside Wasm (the "CPU path") for the same results. The math
//! is written once here, in `f32` where filtering rounds, so that a kernel
//! doing the same steps lands within ±1 of it, and in integers elsewhere, so
//! that a kernel matches it exactly.
//!
//! Layout: planes packed one after the other with no row padding; chroma
//! planes are `(width + 1) / 2` × `(height + 1) / 2`.

use std::fmt;

mod color;
mod convert;
mod scale;

pub use color::{Coefficients, Color, Matrix, Range};
pub use convert::{convert, repack, rgba_from_yuv, yuv_from_rgba};
pub use scale::{
    Filter, MAX_AREA_PIXELS, Rect, area_pixels, area_span, bilinear_tap, crop, difference, resize,
    thumbnail, thumbnail_size,
};

/// The largest width or height a frame may have.
pub const MAX_SIDE: u32 = 16_384;

/// How a frame's bytes are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Y, then U, then V planes.
    I420,
    /// Y, then interleaved U and V.
    Nv12,
    /// R, G, B, A bytes per pixel.
    Rgba8,
}

impl PixelFormat {
    /// Whether it is a YUV format.
    pub fn is_yuv(self) -> bool {
        !matches!(self, PixelFormat::Rgba8)
    }

    /// The byte lengths of its planes for a `width` × `height` frame.
    pub fn plane_lengths(self, width: u32, height: u32) -> Vec<usize> {
        let luma = width as usize * height as usize;
        let (cw, ch) = chroma_size(width, height);
        let chroma = cw as usize * ch as usize;
        match self {
            PixelFormat::I420 => vec![luma, chroma, chroma],
            PixelFormat::Nv12 => vec![luma, 2 * chroma],
            PixelFormat::Rgba8 => vec![4 * luma],
        }
    }

    /// The byte length of a `width` × `height` frame.
    pub fn frame_len(self, width: u32, height: u32) -> usize {
        self.plane_lengths(width, height).iter().sum()
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PixelFormat::I420 => "I420",
            PixelFormat::Nv12 => "NV12",
            PixelFormat::Rgba8 => "RGBA8",
        })
    }
}

/// The size of the chroma planes of a `width` × `height` YUV 4:2:0 frame.
pub fn chroma_size(width: u32, height: u32) -> (u32, u32) {
    (width.div_ceil(2), height.div_ceil(2))
}

/// A frame whose size and data have been checked against its format.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    width: u32,
    height: u32,
    format: PixelFormat,
    data: Vec<u8>,
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Frame({}x{} {}, {} bytes)",
            self.width,
            self.height,
            self.format,
            self.data.len()
        )
    }
}

/// A frame, size or operation that does not fit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadDimensions(pub String);

impl fmt::Display for BadDimensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadDimensions {}

/// Checks a width and height.
pub fn check_size(width: u32, height: u32) -> Result<(), BadDimensions> {
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(BadDimensions(format!(
            "a frame is 1 to {MAX_SIDE} pixels on each side, not {width}x{height}"
        )));
    }
    Ok(())
}

impl Frame {
    /// A frame, if `data` is exactly as long as the format and size call for.
    pub fn new(
        width: u32,
        height: u32,
        format: PixelFormat,
        data: Vec<u8>,
    ) -> Result<Self, BadDimensions> {
        check_size(width, height)?;
        let expected = format.frame_len(width, height);
        if data.len() != expected {
            return Err(BadDimensions(format!(
                "a {width}x{height} {format} frame is {expected} bytes, not {}",
                data.len()
            )));
        }
        Ok(Self {
            width,
            height,
            format,
            data,
        })
    }

    /// Its width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Its height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Its pixel format.
    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// Its bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Its bytes, owned.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// Its planes, in order.
    pub fn planes(&self) -> Vec<&[u8]> {
        let mut rest = self.data.as_slice();
        let mut planes = Vec::new();
        for len in self.format.plane_lengths(self.width, self.height) {
            let (plane, tail) = rest.split_at(len);
            planes.push(plane);
            rest = tail;
        }
        planes
    }

    /// The luma of pixel `i` (in raster order): the Y sample of a YUV
    /// frame, `(77 R + 150 G + 29 B + 128) >> 8` of an RGBA8 one.
    pub fn luma(&self, i: usize) -> u8 {
        match self.format {
            PixelFormat::Rgba8 => {
                let p = &self.data[4 * i..4 * i + 4];
                rgba_luma(p[0], p[1], p[2])
            }
            PixelFormat::I420 | PixelFormat::Nv12 => self.data[i],
        }
    }

    pub(crate) fn from_parts(width: u32, height: u32, format: PixelFormat, data: Vec<u8>) -> Self {
        debug_assert_eq!(data.len(), format.frame_len(width, height));
        Self {
            width,
            height,
            format,
            data,
        }
    }
}

/// The integer luma of an RGB pixel used by difference scores.
pub fn rgba_luma(r: u8, g: u8, b: u8) -> u8 {
    ((77 * u32::from(r) + 150 * u32::from(g) + 29 * u32::from(b) + 128) >> 8) as u8
}

/// Rounds half up and clamps to a byte, as the kernels do
/// (`floor(x + 0.5)`).
pub fn to_byte(x: f32) -> u8 {
    (x + 0.5).floor().clamp(0.0, 255.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plane_lengths_round_chroma_up() {
        assert_eq!(PixelFormat::I420.plane_lengths(3, 5), vec![15, 6, 6]);
        assert_eq!(PixelFormat::Nv12.plane_lengths(3, 5), vec![15, 12]);
        assert_eq!(PixelFormat::Rgba8.plane_lengths(3, 5), vec![60]);
        assert_eq!(PixelFormat::I420.frame_len(1, 1), 3);
    }

    #[test]
    fn frames_check_their_length_and_size() {
        assert!(Frame::new(2, 2, PixelFormat::I420, vec![0; 6]).is_ok());
        assert!(Frame::new(2, 2, PixelFormat::I420, vec![0; 7]).is_err());
        assert!(Frame::new(0, 2, PixelFormat::Rgba8, vec![]).is_err());
        assert!(Frame::new(MAX_SIDE + 1, 1, PixelFormat::Rgba8, vec![0; 4 * 16_385]).is_err());
    }
}

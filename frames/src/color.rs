//! YUV ↔ RGB: the matrices, the ranges, and the constants both the CPU
//! reference and the GPU kernels compute with.

/// The YUV ↔ RGB matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Matrix {
    /// ITU-R BT.601.
    Bt601,
    /// ITU-R BT.709.
    Bt709,
}

/// The range of YUV samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Range {
    /// Y in 16..=235, U and V in 16..=240.
    Limited,
    /// 0..=255.
    Full,
}

/// The color space of the YUV side of a conversion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Color {
    /// The matrix.
    pub matrix: Matrix,
    /// The range.
    pub range: Range,
}

/// Every constant a conversion needs, in the order the kernels take them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coefficients {
    /// Red's weight in luma.
    pub kr: f32,
    /// Green's weight in luma.
    pub kg: f32,
    /// Blue's weight in luma.
    pub kb: f32,
    /// What is taken off Y before scaling (16 or 0).
    pub y_offset: f32,
    /// Y's scale to full range (255/219 or 1).
    pub y_scale: f32,
    /// U and V's scale to full range (255/224 or 1).
    pub c_scale: f32,
    /// R = Y + `cr_r` · V.
    pub cr_r: f32,
    /// G = Y − `cb_g` · U − `cr_g` · V.
    pub cb_g: f32,
    /// See `cb_g`.
    pub cr_g: f32,
    /// B = Y + `cb_b` · U.
    pub cb_b: f32,
}

impl Color {
    /// The constants of this color space.
    pub fn coefficients(self) -> Coefficients {
        let (kr, kb) = match self.matrix {
            Matrix::Bt601 => (0.299_f32, 0.114_f32),
            Matrix::Bt709 => (0.2126_f32, 0.0722_f32),
        };
        let kg = 1.0 - kr - kb;
        let (y_offset, y_scale, c_scale) = match self.range {
            Range::Limited => (16.0, 255.0 / 219.0, 255.0 / 224.0),
            Range::Full => (0.0, 1.0, 1.0),
        };
        Coefficients {
            kr,
            kg,
            kb,
            y_offset,
            y_scale,
            c_scale,
            cr_r: 2.0 * (1.0 - kr),
            cb_g: 2.0 * kb * (1.0 - kb) / kg,
            cr_g: 2.0 * kr * (1.0 - kr) / kg,
            cb_b: 2.0 * (1.0 - kb),
        }
    }
}

impl Coefficients {
    /// R, G, B (0.0..=255.0 before rounding) of one YUV sample triple.
    pub fn rgb(&self, y: u8, u: u8, v: u8) -> [f32; 3] {
        let y = (f32::from(y) - self.y_offset) * self.y_scale;
        let cb = (f32::from(u) - 128.0) * self.c_scale;
        let cr = (f32::from(v) - 128.0) * self.c_scale;
        [
            y + self.cr_r * cr,
            y - self.cb_g * cb - self.cr_g * cr,
            y + self.cb_b * cb,
        ]
    }

    /// The Y sample (before rounding) of an RGB pixel.
    pub fn y(&self, rgb: [f32; 3]) -> f32 {
        let y = self.kr * rgb[0] + self.kg * rgb[1] + self.kb * rgb[2];
        self.y_offset + y / self.y_scale
    }

    /// The U and V samples (before rounding) of an RGB pixel (for chroma,
    /// the mean of the pixels a sample covers).
    pub fn uv(&self, rgb: [f32; 3]) -> [f32; 2] {
        let y = self.kr * rgb[0] + self.kg * rgb[1] + self.kb * rgb[2];
        [
            128.0 + (rgb[2] - y) / self.cb_b / self.c_scale,
            128.0 + (rgb[0] - y) / self.cr_r / self.c_scale,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::to_byte;

    #[test]
    fn limited_range_black_and_white_map_to_the_ends() {
        for matrix in [Matrix::Bt601, Matrix::Bt709] {
            let c = Color {
                matrix,
                range: Range::Limited,
            }
            .coefficients();
            assert_eq!(c.rgb(16, 128, 128).map(to_byte), [0, 0, 0]);
            assert_eq!(c.rgb(235, 128, 128).map(to_byte), [255, 255, 255]);
            assert_eq!(to_byte(c.y([255.0; 3])), 235);
            assert_eq!(c.uv([255.0; 3]).map(to_byte), [128, 128]);
        }
    }

    #[test]
    fn conversions_round_trip_within_one_step() {
        let c = Color {
            matrix: Matrix::Bt709,
            range: Range::Full,
        }
        .coefficients();
        for rgb in [[255.0, 0.0, 0.0], [10.0, 200.0, 30.0], [0.0, 0.0, 255.0]] {
            let y = to_byte(c.y(rgb));
            let [u, v] = c.uv(rgb).map(to_byte);
            let back = c.rgb(y, u, v).map(to_byte);
            for (a, b) in back.iter().zip(rgb) {
                assert!((f32::from(*a) - b).abs() <= 2.0, "{rgb:?} -> {back:?}");
            }
        }
    }
}

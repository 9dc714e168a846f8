// I420 or NV12 to RGBA8, one invocation per pixel. The math is floe-frames'
// `Coefficients::rgb`, step for step.

struct Params {
    width: u32,
    height: u32,
    chroma_width: u32,
    nv12: u32,
    y_offset: f32,
    y_scale: f32,
    c_scale: f32,
    cr_r: f32,
    cb_g: f32,
    cr_g: f32,
    cb_b: f32,
    pad: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> y_plane: array<u32>;
// U (I420) or interleaved UV (NV12).
@group(0) @binding(2) var<storage, read> u_plane: array<u32>;
// V (I420); unused for NV12.
@group(0) @binding(3) var<storage, read> v_plane: array<u32>;
@group(0) @binding(4) var<storage, read_write> rgba: array<u32>;

fn y_at(i: u32) -> u32 { return (y_plane[i >> 2u] >> ((i & 3u) * 8u)) & 255u; }
fn u_at(i: u32) -> u32 { return (u_plane[i >> 2u] >> ((i & 3u) * 8u)) & 255u; }
fn v_at(i: u32) -> u32 { return (v_plane[i >> 2u] >> ((i & 3u) * 8u)) & 255u; }

fn to_byte(x: f32) -> u32 {
    return u32(clamp(floor(x + 0.5), 0.0, 255.0));
}

@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.width || id.y >= p.height) {
        return;
    }
    let c = (id.y / 2u) * p.chroma_width + id.x / 2u;
    var u: u32;
    var v: u32;
    if (p.nv12 == 1u) {
        u = u_at(2u * c);
        v = u_at(2u * c + 1u);
    } else {
        u = u_at(c);
        v = v_at(c);
    }
    let y = (f32(y_at(id.y * p.width + id.x)) - p.y_offset) * p.y_scale;
    let cb = (f32(u) - 128.0) * p.c_scale;
    let cr = (f32(v) - 128.0) * p.c_scale;
    let r = to_byte(y + p.cr_r * cr);
    let g = to_byte(y - p.cb_g * cb - p.cr_g * cr);
    let b = to_byte(y + p.cb_b * cb);
    rgba[id.y * p.width + id.x] = r | (g << 8u) | (b << 16u) | (255u << 24u);
}

// I420 or NV12 to RGBA8. `main`: one invocation per pixel. `thumbnail`:
// one per output pixel of an area downscale, converting the source pixels
// it covers on the fly and averaging them (within one of converting, then
// resizing, without the full-size intermediate).
// The math is floe-frames' `Coefficients::rgb`, step for step.

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
    // The output of `thumbnail`; unused by `main`.
    dst_width: u32,
    dst_height: u32,
    // 1 when both scale factors are even integers, so every output pixel
    // covers whole 2×2 blocks that share one chroma sample.
    blocks: u32,
    pad1: u32,
    pad2: u32,
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

// The U and V of chroma sample `c`.
fn uv_at(c: u32) -> vec2<u32> {
    if (p.nv12 == 1u) {
        return vec2<u32>(u_at(2u * c), u_at(2u * c + 1u));
    }
    return vec2<u32>(u_at(c), v_at(c));
}

fn rgb(x: u32, y: u32) -> vec3<u32> {
    let uv = uv_at((y / 2u) * p.chroma_width + x / 2u);
    let u = uv.x;
    let v = uv.y;
    let luma = (f32(y_at(y * p.width + x)) - p.y_offset) * p.y_scale;
    let cb = (f32(u) - 128.0) * p.c_scale;
    let cr = (f32(v) - 128.0) * p.c_scale;
    return vec3<u32>(
        to_byte(luma + p.cr_r * cr),
        to_byte(luma - p.cb_g * cb - p.cr_g * cr),
        to_byte(luma + p.cb_b * cb),
    );
}

// What a chroma sample adds to R, G and B.
fn chroma_terms(uv: vec2<u32>) -> vec3<f32> {
    let cb = (f32(uv.x) - 128.0) * p.c_scale;
    let cr = (f32(uv.y) - 128.0) * p.c_scale;
    return vec3<f32>(p.cr_r * cr, -p.cb_g * cb - p.cr_g * cr, p.cb_b * cb);
}

// The converted pixel of luma byte `luma` with chroma terms `terms`.
fn converted(luma: u32, terms: vec3<f32>) -> vec3<f32> {
    let l = (f32(luma) - p.y_offset) * p.y_scale;
    return clamp(vec3<f32>(l) + terms, vec3<f32>(0.0), vec3<f32>(255.0));
}

// The sum of the converted pixels in `xs` × `ys`, both even-aligned and of
// even length: per 2×2 block one chroma load and one luma word per row
// (the two pixels of a row share a word, as x is even).
fn block_sum(xs: vec2<u32>, ys: vec2<u32>) -> vec3<f32> {
    var sum = vec3<f32>(0.0, 0.0, 0.0);
    for (var y = ys.x; y < ys.y; y += 2u) {
        let chroma_row = (y / 2u) * p.chroma_width;
        let row = y * p.width;
        for (var x = xs.x; x < xs.y; x += 2u) {
            let terms = chroma_terms(uv_at(chroma_row + x / 2u));
            let shift = ((row + x) & 3u) * 8u;
            let top = y_plane[(row + x) >> 2u] >> shift;
            let bottom = y_plane[(row + p.width + x) >> 2u] >> (((row + p.width + x) & 3u) * 8u);
            sum += converted(top & 255u, terms) + converted((top >> 8u) & 255u, terms)
                + converted(bottom & 255u, terms) + converted((bottom >> 8u) & 255u, terms);
        }
    }
    return sum;
}

// The sum of the converted pixels in `xs` × `ys`, any spans.
fn span_sum(xs: vec2<u32>, ys: vec2<u32>) -> vec3<f32> {
    var sum = vec3<f32>(0.0, 0.0, 0.0);
    for (var y = ys.x; y < ys.y; y++) {
        // Along a row, each chroma sample serves two pixels: load and scale
        // it once.
        var chroma = 0xffffffffu;
        var terms = vec3<f32>(0.0);
        let row = y * p.width;
        let chroma_row = (y / 2u) * p.chroma_width;
        for (var x = xs.x; x < xs.y; x++) {
            let c = chroma_row + x / 2u;
            if (c != chroma) {
                chroma = c;
                terms = chroma_terms(uv_at(c));
            }
            sum += converted(y_at(row + x), terms);
        }
    }
    return sum;
}

@compute @workgroup_size(8, 8)
fn thumbnail(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.dst_width || id.y >= p.dst_height) {
        return;
    }
    let xs = span(id.x, p.width, p.dst_width);
    let ys = span(id.y, p.height, p.dst_height);
    // `blocks` is the same for every invocation: no divergence.
    var sum: vec3<f32>;
    if (p.blocks == 1u) {
        sum = block_sum(xs, ys);
    } else {
        sum = span_sum(xs, ys);
    }
    // The mean of the unrounded values: within one of the reference's
    // rounded-then-averaged bytes.
    let n = f32((xs.y - xs.x) * (ys.y - ys.x));
    let mean = vec3<u32>(floor(sum / n + 0.5));
    // Alpha is 255 everywhere, so its mean is too.
    rgba[id.y * p.dst_width + id.x] = pack(mean, 255u);
}

@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.width || id.y >= p.height) {
        return;
    }
    let c = rgb(id.x, id.y);
    rgba[id.y * p.width + id.x] = pack(c, 255u);
}

// RGBA8 resize, one invocation per output pixel: `area` (the rounded mean
// of the source pixels covered, in integers) and `bilinear` (floe-frames'
// `bilinear_tap`, step for step; the scales come from the CPU).

struct Params {
    src_width: u32,
    src_height: u32,
    width: u32,
    height: u32,
    scale_x: f32,
    scale_y: f32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

@compute @workgroup_size(16, 16)
fn area(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.width || id.y >= p.height) {
        return;
    }
    let xs = span(id.x, p.src_width, p.width);
    let ys = span(id.y, p.src_height, p.height);
    var sum = vec4<u32>(0u, 0u, 0u, 0u);
    for (var y = ys.x; y < ys.y; y++) {
        for (var x = xs.x; x < xs.y; x++) {
            let w = src[y * p.src_width + x];
            sum += vec4<u32>(w & 255u, (w >> 8u) & 255u, (w >> 16u) & 255u, w >> 24u);
        }
    }
    let n = (xs.y - xs.x) * (ys.y - ys.x);
    let mean = (sum + vec4<u32>(n / 2u)) / vec4<u32>(n);
    dst[id.y * p.width + id.x] = mean.x | (mean.y << 8u) | (mean.z << 16u) | (mean.w << 24u);
}

struct Tap {
    i0: u32,
    i1: u32,
    f: f32,
}

fn tap(i: u32, from_len: u32, scale: f32) -> Tap {
    let s = clamp((f32(i) + 0.5) * scale - 0.5, 0.0, f32(from_len - 1u));
    let s0 = floor(s);
    let i0 = u32(s0);
    return Tap(i0, min(i0 + 1u, from_len - 1u), s - s0);
}

fn channels(w: u32) -> vec4<f32> {
    return vec4<f32>(f32(w & 255u), f32((w >> 8u) & 255u), f32((w >> 16u) & 255u), f32(w >> 24u));
}

@compute @workgroup_size(16, 16)
fn bilinear(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.width || id.y >= p.height) {
        return;
    }
    let tx = tap(id.x, p.src_width, p.scale_x);
    let ty = tap(id.y, p.src_height, p.scale_y);
    let p00 = channels(src[ty.i0 * p.src_width + tx.i0]);
    let p10 = channels(src[ty.i0 * p.src_width + tx.i1]);
    let p01 = channels(src[ty.i1 * p.src_width + tx.i0]);
    let p11 = channels(src[ty.i1 * p.src_width + tx.i1]);
    let top = p00 * (1.0 - tx.f) + p10 * tx.f;
    let bottom = p01 * (1.0 - tx.f) + p11 * tx.f;
    let v = vec4<u32>(clamp(floor(top * (1.0 - ty.f) + bottom * ty.f + 0.5), vec4<f32>(0.0), vec4<f32>(255.0)));
    dst[id.y * p.width + id.x] = v.x | (v.y << 8u) | (v.z << 16u) | (v.w << 24u);
}

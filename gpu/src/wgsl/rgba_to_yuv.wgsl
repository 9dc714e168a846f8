// RGBA8 to I420 or NV12. `luma` writes one word (four Y samples) per
// invocation; `chroma` one word of each chroma plane: four U and four V
// samples (I420), or two U,V pairs (NV12), each from the mean RGB of the
// (up to) 2x2 pixels it covers, summed in raster order as the CPU reference
// does. The math is floe-frames' `Coefficients::y` and `Coefficients::uv`,
// step for step.

struct Params {
    width: u32,
    height: u32,
    chroma_width: u32,
    chroma_height: u32,
    nv12: u32,
    y_offset: f32,
    y_scale: f32,
    c_scale: f32,
    kr: f32,
    kg: f32,
    kb: f32,
    cb_b: f32,
    cr_r: f32,
    pad0: f32,
    pad1: f32,
    pad2: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> rgba: array<u32>;
@group(0) @binding(2) var<storage, read_write> y_out: array<u32>;

fn pixel(x: u32, y: u32) -> vec3<f32> {
    let w = rgba[y * p.width + x];
    return vec3<f32>(f32(w & 255u), f32((w >> 8u) & 255u), f32((w >> 16u) & 255u));
}

@compute @workgroup_size(64)
fn luma(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let word = index(id, groups);
    let n = p.width * p.height;
    let first = word * 4u;
    if (first >= n) {
        return;
    }
    var packed = 0u;
    for (var k = 0u; k < 4u; k++) {
        let i = first + k;
        if (i < n) {
            let rgb = pixel(i % p.width, i / p.width);
            let y = p.kr * rgb.x + p.kg * rgb.y + p.kb * rgb.z;
            packed |= to_byte(p.y_offset + y / p.y_scale) << (8u * k);
        }
    }
    y_out[word] = packed;
}

// U (I420) or interleaved UV (NV12).
@group(0) @binding(3) var<storage, read_write> u_out: array<u32>;
// V (I420); not written for NV12.
@group(0) @binding(4) var<storage, read_write> v_out: array<u32>;

fn sample(c: u32) -> vec2<u32> {
    let cx = c % p.chroma_width;
    let cy = c / p.chroma_width;
    var sum = vec3<f32>(0.0, 0.0, 0.0);
    var n = 0.0;
    for (var y = 2u * cy; y < min(2u * cy + 2u, p.height); y++) {
        for (var x = 2u * cx; x < min(2u * cx + 2u, p.width); x++) {
            sum += pixel(x, y);
            n += 1.0;
        }
    }
    let rgb = sum / n;
    let luma = p.kr * rgb.x + p.kg * rgb.y + p.kb * rgb.z;
    let u = 128.0 + (rgb.z - luma) / p.cb_b / p.c_scale;
    let v = 128.0 + (rgb.x - luma) / p.cr_r / p.c_scale;
    return vec2<u32>(to_byte(u), to_byte(v));
}

@compute @workgroup_size(64)
fn chroma(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let word = index(id, groups);
    let n = p.chroma_width * p.chroma_height;
    if (p.nv12 == 1u) {
        let first = word * 2u;
        if (first >= n) {
            return;
        }
        var packed = 0u;
        for (var k = 0u; k < 2u; k++) {
            if (first + k < n) {
                let uv = sample(first + k);
                packed |= (uv.x << (16u * k)) | (uv.y << (16u * k + 8u));
            }
        }
        u_out[word] = packed;
    } else {
        let first = word * 4u;
        if (first >= n) {
            return;
        }
        var us = 0u;
        var vs = 0u;
        for (var k = 0u; k < 4u; k++) {
            if (first + k < n) {
                let uv = sample(first + k);
                us |= uv.x << (8u * k);
                vs |= uv.y << (8u * k);
            }
        }
        u_out[word] = us;
        v_out[word] = vs;
    }
}

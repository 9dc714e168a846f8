// RGBA8 to I420 or NV12. `luma` writes one word (four Y samples) per
// invocation; `chroma` one word of each chroma plane: four U and four V
// samples (I420), or two U,V pairs (NV12). The math is floe-frames'
// `Coefficients::y` and `Coefficients::uv`, step for step.

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

fn to_byte(x: f32) -> u32 {
    return u32(clamp(floor(x + 0.5), 0.0, 255.0));
}

fn pixel(x: u32, y: u32) -> vec3<f32> {
    let w = rgba[y * p.width + x];
    return vec3<f32>(f32(w & 255u), f32((w >> 8u) & 255u), f32((w >> 16u) & 255u));
}

fn index(id: vec3<u32>, groups: vec3<u32>) -> u32 {
    return id.y * groups.x * 64u + id.x;
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

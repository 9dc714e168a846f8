// The sum of absolute luma differences of two frames, per workgroup: each
// invocation strides over the pixels, then the workgroup adds its sums.

struct Params {
    pixels: u32,
    rgba: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// The Y planes (YUV) or the RGBA8 frames.
@group(0) @binding(1) var<storage, read> a: array<u32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read_write> partial: array<u32>;

var<workgroup> sums: array<u32, 256>;

fn rgba_luma(w: u32) -> u32 {
    return (77u * (w & 255u) + 150u * ((w >> 8u) & 255u) + 29u * ((w >> 16u) & 255u) + 128u) >> 8u;
}

fn luma_a(i: u32) -> u32 {
    if (p.rgba == 1u) {
        return rgba_luma(a[i]);
    }
    return (a[i >> 2u] >> ((i & 3u) * 8u)) & 255u;
}

fn luma_b(i: u32) -> u32 {
    if (p.rgba == 1u) {
        return rgba_luma(b[i]);
    }
    return (b[i >> 2u] >> ((i & 3u) * 8u)) & 255u;
}

@compute @workgroup_size(256)
fn main(
    @builtin(global_invocation_id) id: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    var sum = 0u;
    let stride = groups.x * 256u;
    for (var i = id.x; i < p.pixels; i += stride) {
        let x = luma_a(i);
        let y = luma_b(i);
        sum += max(x, y) - min(x, y);
    }
    sums[local] = sum;
    workgroupBarrier();
    for (var half = 128u; half > 0u; half >>= 1u) {
        if (local < half) {
            sums[local] += sums[local + half];
        }
        workgroupBarrier();
    }
    if (local == 0u) {
        partial[group.x] = sums[0];
    }
}

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

var<workgroup> total: atomic<u32>;

fn rgba_luma(w: u32) -> u32 {
    return (77u * (w & 255u) + 150u * ((w >> 8u) & 255u) + 29u * ((w >> 16u) & 255u) + 128u) >> 8u;
}

fn absdiff(x: u32, y: u32) -> u32 {
    return max(x, y) - min(x, y);
}

// The differences of word `i`: one RGBA pixel, or four Y samples (the
// padding bytes past the last pixel are zero in both frames).
fn word(i: u32) -> u32 {
    let x = a[i];
    let y = b[i];
    if (p.rgba == 1u) {
        return absdiff(rgba_luma(x), rgba_luma(y));
    }
    var sum = 0u;
    for (var k = 0u; k < 32u; k += 8u) {
        sum += absdiff((x >> k) & 255u, (y >> k) & 255u);
    }
    return sum;
}

@compute @workgroup_size(256)
fn main(
    @builtin(global_invocation_id) id: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    if (local == 0u) {
        atomicStore(&total, 0u);
    }
    workgroupBarrier();
    var words = p.pixels;
    if (p.rgba == 0u) {
        words = (p.pixels + 3u) / 4u;
    }
    var sum = 0u;
    let stride = groups.x * 256u;
    for (var i = id.x; i < words; i += stride) {
        sum += word(i);
    }
    atomicAdd(&total, sum);
    workgroupBarrier();
    if (local == 0u) {
        partial[group.x] = atomicLoad(&total);
    }
}

// Chroma between I420 (separate U and V planes) and NV12 (interleaved UV),
// one output word per invocation; the Y plane is copied as it is.

struct Params {
    samples: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// I420 -> NV12: U and V in, UV out. NV12 -> I420: UV in (as `a`), U and V out.
@group(0) @binding(1) var<storage, read> a: array<u32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read_write> out0: array<u32>;
@group(0) @binding(4) var<storage, read_write> out1: array<u32>;

fn a_at(i: u32) -> u32 { return (a[i >> 2u] >> ((i & 3u) * 8u)) & 255u; }
fn b_at(i: u32) -> u32 { return (b[i >> 2u] >> ((i & 3u) * 8u)) & 255u; }

@compute @workgroup_size(64)
fn to_nv12(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let word = index(id, groups);
    let first = word * 2u;
    if (first >= p.samples) {
        return;
    }
    var packed = 0u;
    for (var k = 0u; k < 2u; k++) {
        if (first + k < p.samples) {
            packed |= (a_at(first + k) << (16u * k)) | (b_at(first + k) << (16u * k + 8u));
        }
    }
    out0[word] = packed;
}

@compute @workgroup_size(64)
fn to_i420(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let word = index(id, groups);
    let first = word * 4u;
    if (first >= p.samples) {
        return;
    }
    var us = 0u;
    var vs = 0u;
    for (var k = 0u; k < 4u; k++) {
        if (first + k < p.samples) {
            us |= a_at(2u * (first + k)) << (8u * k);
            vs |= a_at(2u * (first + k) + 1u) << (8u * k);
        }
    }
    out0[word] = us;
    out1[word] = vs;
}

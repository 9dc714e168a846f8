// RGBA8 crop, one invocation per output pixel.

struct Params {
    src_width: u32,
    x: u32,
    y: u32,
    width: u32,
    height: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.width || id.y >= p.height) {
        return;
    }
    dst[id.y * p.width + id.x] = src[(p.y + id.y) * p.src_width + p.x + id.x];
}

// Helpers every kernel module starts with (prepended when it is compiled).

// Rounds half up and clamps to a byte, as floe-frames' `to_byte` does.
fn to_byte(x: f32) -> u32 {
    return u32(clamp(floor(x + 0.5), 0.0, 255.0));
}

// The source pixels [start, end) an area filter averages for output pixel
// `i` (floe-frames' `area_span`).
fn span(i: u32, from_len: u32, to_len: u32) -> vec2<u32> {
    let start = i * from_len / to_len;
    let end = ((i + 1u) * from_len + to_len - 1u) / to_len;
    return vec2<u32>(start, min(max(end, start + 1u), from_len));
}

// The item of a 64-wide dispatch folded into two dimensions.
fn index(id: vec3<u32>, groups: vec3<u32>) -> u32 {
    return id.y * groups.x * 64u + id.x;
}

// One RGBA8 pixel as a word.
fn pack(c: vec3<u32>, alpha: u32) -> u32 {
    return c.x | (c.y << 8u) | (c.z << 16u) | (alpha << 24u);
}

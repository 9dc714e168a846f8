//! Reading a Y4M clip: a text header, then raw 4:2:0 frames.

/// A parsed clip: its size and its frames (I420 bytes each).
pub struct Clip<'a> {
    pub width: u32,
    pub height: u32,
    pub frames: Vec<&'a [u8]>,
}

/// Parses `data`, or says what is wrong with it.
pub fn parse(data: &[u8]) -> Result<Clip<'_>, String> {
    const MAGIC: &[u8] = b"YUV4MPEG2 ";
    if !data.starts_with(MAGIC) {
        return Err("the body is not a Y4M clip (it must start with YUV4MPEG2)".into());
    }
    let end = data
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("the Y4M header does not end")?;
    let header =
        std::str::from_utf8(&data[MAGIC.len()..end]).map_err(|_| "the Y4M header is not text")?;
    let (mut width, mut height) = (0_u32, 0_u32);
    for token in header.split_ascii_whitespace() {
        let (tag, value) = token.split_at(1);
        match tag {
            "W" => width = value.parse().map_err(|_| format!("bad width {value:?}"))?,
            "H" => height = value.parse().map_err(|_| format!("bad height {value:?}"))?,
            "C" if !value.starts_with("420") => {
                return Err(format!("colorspace C{value} is not supported: only 4:2:0"));
            }
            _ => {}
        }
    }
    if width == 0 || height == 0 {
        return Err("the Y4M header has no width or height".into());
    }
    let frame_len = floe_frames::PixelFormat::I420.frame_len(width, height);
    let mut frames = Vec::new();
    let mut rest = &data[end + 1..];
    while !rest.is_empty() {
        if !rest.starts_with(b"FRAME") {
            return Err(format!("frame {} does not start with FRAME", frames.len()));
        }
        let line = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("a FRAME line does not end")?;
        rest = &rest[line + 1..];
        if rest.len() < frame_len {
            return Err(format!("frame {} is cut short", frames.len()));
        }
        frames.push(&rest[..frame_len]);
        rest = &rest[frame_len..];
    }
    Ok(Clip {
        width,
        height,
        frames,
    })
}

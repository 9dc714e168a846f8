// Scene thumbnails of a video clip, made on the server's GPU, in
// JavaScript: POST a Y4M clip (4:2:0). Each frame is scored against the one
// before (floe:function/gpu's difference score); a score over `threshold`
// (default 30) starts a scene. The first frame of each scene becomes a
// thumbnail fitting `fit` (default 320x180), answered as PNG in JSON.

import { Pipeline, difference, I420 } from 'floe-sdk/gpu';
import { json } from 'floe-sdk';

function parseY4m(bytes) {
  const decoder = new TextDecoder();
  const end = bytes.indexOf(0x0a);
  const header = decoder.decode(bytes.subarray(0, end));
  if (!header.startsWith('YUV4MPEG2 ')) {
    throw new Error('the body is not a Y4M clip');
  }
  let width = 0;
  let height = 0;
  for (const token of header.split(' ').slice(1)) {
    if (token[0] === 'W') width = Number(token.slice(1));
    if (token[0] === 'H') height = Number(token.slice(1));
    if (token[0] === 'C' && !token.startsWith('C420')) {
      throw new Error(`colorspace ${token} is not supported: only 4:2:0`);
    }
  }
  if (!(width > 0 && height > 0)) {
    throw new Error('the Y4M header has no width or height');
  }
  const frameLength = width * height + 2 * Math.ceil(width / 2) * Math.ceil(height / 2);
  const frames = [];
  let at = end + 1;
  while (at < bytes.length) {
    const line = bytes.indexOf(0x0a, at);
    if (line < 0 || decoder.decode(bytes.subarray(at, at + 5)) !== 'FRAME') {
      throw new Error(`frame ${frames.length} does not start with FRAME`);
    }
    at = line + 1;
    if (at + frameLength > bytes.length) {
      throw new Error(`frame ${frames.length} is cut short`);
    }
    frames.push(bytes.subarray(at, at + frameLength));
    at += frameLength;
  }
  return { width, height, frames };
}

// PNG, with the pixels in stored (uncompressed) deflate blocks.
const CRC_TABLE = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

function png(width, height, rgba) {
  const rows = new Uint8Array(height * (1 + 4 * width));
  for (let y = 0; y < height; y++) {
    rows.set(rgba.subarray(4 * width * y, 4 * width * (y + 1)), y * (1 + 4 * width) + 1);
  }
  const blocks = Math.max(1, Math.ceil(rows.length / 65535));
  const zlib = new Uint8Array(2 + rows.length + 5 * blocks + 4);
  zlib.set([0x78, 0x01]);
  let at = 2;
  for (let i = 0; i < blocks; i++) {
    const part = rows.subarray(i * 65535, (i + 1) * 65535);
    zlib.set([i === blocks - 1 ? 1 : 0, part.length & 0xff, part.length >> 8, ~part.length & 0xff, (~part.length >> 8) & 0xff], at);
    zlib.set(part, at + 5);
    at += 5 + part.length;
  }
  let a = 1;
  let b = 0;
  for (const byte of rows) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  new DataView(zlib.buffer).setUint32(at, ((b << 16) | a) >>> 0);
  const header = new Uint8Array(13);
  new DataView(header.buffer).setUint32(0, width);
  new DataView(header.buffer).setUint32(4, height);
  header.set([8, 6, 0, 0, 0], 8);
  const parts = [
    Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', zlib),
    chunk('IEND', new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

function base64(bytes) {
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

export async function fetch(request) {
  const url = new URL(request.url);
  const threshold = Number(url.searchParams.get('threshold') ?? 30);
  const [fitWidth, fitHeight] = (url.searchParams.get('fit') ?? '320x180').split('x').map(Number);
  let clip;
  try {
    clip = parseY4m(new Uint8Array(await request.arrayBuffer()));
  } catch (error) {
    return json({ error: error.message }, { status: 400 });
  }
  const frame = (data) => ({ width: clip.width, height: clip.height, format: I420, data });
  const scores = [];
  const thumbnails = [];
  let previous = null;
  try {
    const thumbs = new Pipeline([{ thumbnail: { width: fitWidth, height: fitHeight } }]);
    clip.frames.forEach((data, i) => {
      const score = previous ? difference(frame(previous), frame(data)) : 255;
      if (previous) scores.push(score);
      if (i === 0 || score > threshold) {
        const t = thumbs.run(frame(data));
        thumbnails.push({ frame: i, width: t.width, height: t.height, png: base64(png(t.width, t.height, t.data)) });
      }
      previous = data;
    });
  } catch (error) {
    const status = { 'bad-dimensions': 400, 'budget-exceeded': 413 }[error.kind] ?? 503;
    return json({ error: error.message }, { status });
  }
  return json({
    frames: clip.frames.length,
    scenes: thumbnails.map((t) => t.frame),
    scores,
    thumbnails,
  });
}

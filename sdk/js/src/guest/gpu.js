// `floe-sdk/gpu`: GPU frame work on the server's device (floe:function/gpu).
// A module that imports this is built for the `-gpu` worlds, so its
// component imports the interface; one that does not, does not.
//
//   import { Pipeline, difference, I420 } from 'floe-sdk/gpu';
//   const thumbs = new Pipeline([{ thumbnail: { width: 320, height: 180 } }]);
//   const small = thumbs.run({ width, height, format: I420, data }); // RGBA8
//   const score = difference(previousFrame, frame);                  // 0..255
//
// Frames are `{ width, height, format, data: Uint8Array }` with packed
// planes (I420: Y, U, V; NV12: Y, interleaved UV; RGBA8: 4 bytes a pixel).
// Errors are thrown as `GpuError` with a `kind`: 'bad-dimensions',
// 'budget-exceeded', 'device-lost' or 'unavailable'.

import * as wit from 'floe:function/gpu@0.1.0';

export const I420 = 'i420';
export const NV12 = 'nv12';
export const RGBA8 = 'rgba8';

/** The color space of YUV frames: BT.709, limited range, unless given. */
export const BT709_LIMITED = Object.freeze({ matrix: 'bt709', range: 'limited' });
export const BT601_LIMITED = Object.freeze({ matrix: 'bt601', range: 'limited' });

/** Why GPU work was not done. */
export class GpuError extends Error {
  constructor(kind, message) {
    super(`${kind}: ${message}`);
    this.name = 'GpuError';
    this.kind = kind;
  }
}

function call(work) {
  try {
    return work();
  } catch (error) {
    const payload = error?.payload;
    if (payload?.tag) {
      throw new GpuError(payload.tag, payload.val);
    }
    throw error;
  }
}

// `{ convert: { to, color } }`, `{ resize: { width, height, filter } }`,
// `{ crop: { x, y, width, height } }`, `{ thumbnail: { width, height, color } }`.
function operation(op) {
  if (op.convert) {
    return { tag: 'convert', val: { to: op.convert.to, color: op.convert.color ?? BT709_LIMITED } };
  }
  if (op.resize) {
    const { width, height, filter = 'area' } = op.resize;
    return { tag: 'resize', val: [{ width, height }, filter] };
  }
  if (op.crop) {
    return { tag: 'crop', val: op.crop };
  }
  if (op.thumbnail) {
    const { width, height, color = BT709_LIMITED } = op.thumbnail;
    return { tag: 'thumbnail', val: { fit: { width, height }, color } };
  }
  throw new TypeError(`not an operation: ${JSON.stringify(op)}`);
}

/** Operations checked once, run over many frames on the device. */
export class Pipeline {
  #inner;

  constructor(operations) {
    this.#inner = new wit.Pipeline(operations.map(operation));
    call(() => this.#inner.check());
  }

  /** The last operation's output for `frame`. */
  run(frame) {
    return call(() => this.#inner.run(frame));
  }
}

/** The mean absolute luma difference of two frames, 0 to 255. */
export function difference(a, b) {
  return call(() => wit.difference(a, b));
}

/** The device: `{ name, backend, deviceType, driver }`. */
export function adapter() {
  return call(() => wit.adapter());
}

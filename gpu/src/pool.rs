//! Storage buffers kept between calls: frames of one size come back call
//! after call (every frame of a clip), so their buffers are reused rather
//! than allocated each time.

use parking_lot::Mutex;
use std::collections::HashMap;

/// The usages every pooled buffer has.
pub(crate) const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Buffers by size, up to a number of bytes in all.
pub(crate) struct BufferPool {
    free: Mutex<(HashMap<u64, Vec<wgpu::Buffer>>, u64)>,
    max_bytes: u64,
}

impl BufferPool {
    pub(crate) fn new(max_bytes: u64) -> Self {
        Self {
            free: Mutex::new((HashMap::new(), 0)),
            max_bytes,
        }
    }

    /// A storage buffer of `size` bytes (a multiple of 4), reused if one is
    /// free.
    pub(crate) fn take(&self, device: &wgpu::Device, size: u64) -> wgpu::Buffer {
        let size = size.max(4);
        {
            let mut free = self.free.lock();
            if let Some(buffer) = free.0.get_mut(&size).and_then(Vec::pop) {
                free.1 -= size;
                return buffer;
            }
        }
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("floe-gpu frame"),
            size,
            usage: USAGE,
            mapped_at_creation: false,
        })
    }

    /// Gives buffers back (dropping them if the pool is full).
    pub(crate) fn give(&self, buffers: impl IntoIterator<Item = wgpu::Buffer>) {
        let mut free = self.free.lock();
        for buffer in buffers {
            let size = buffer.size();
            if free.1 + size > self.max_bytes {
                continue;
            }
            free.1 += size;
            free.0.entry(size).or_default().push(buffer);
        }
    }
}

//! Per-instance resource limits, enforced by wasmtime through
//! [`wasmtime::ResourceLimiter`].

use wasmtime::ResourceLimiter;

/// What every instance's host state is bounded by, beside its memory limit:
/// from `[engine]`.
#[derive(Debug, Clone, Copy)]
pub struct HostLimits {
    /// Elements per table.
    pub table_elements: usize,
    /// Entries in the resource table.
    pub max_resources: usize,
    /// Resources an instance may keep between calls beyond what it held
    /// after its first; more and it is retired.
    pub max_kept_resources: usize,
    /// In-memory size of one wasi-http `fields`.
    pub max_field_bytes: usize,
    /// One write to an outgoing body.
    pub outgoing_body_chunk: usize,
    /// Guest log lines per second, and the burst.
    pub log_rate: (u32, u32),
}

/// Caps the linear memory of one instance (all of its memories together) and
/// the size of its tables, and remembers whether the cap was hit so that the
/// trap that usually follows can be reported as `memory_limit`.
#[derive(Debug)]
pub struct InstanceLimiter {
    memory_limit: usize,
    memory_used: usize,
    table_elements: usize,
    hit: bool,
}

impl InstanceLimiter {
    /// A limiter allowing `memory_limit` bytes of linear memory and
    /// `table_elements` elements per table.
    pub fn new(memory_limit: usize, table_elements: usize) -> Self {
        Self {
            memory_limit,
            memory_used: 0,
            table_elements,
            hit: false,
        }
    }

    /// Whether the instance was refused memory or table growth.
    pub fn limit_hit(&self) -> bool {
        self.hit
    }

    /// Linear memory in use, all memories together.
    pub fn memory_used(&self) -> usize {
        self.memory_used
    }
}

impl ResourceLimiter for InstanceLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let grown = self.memory_used - current.min(self.memory_used) + desired;
        if grown > self.memory_limit {
            self.hit = true;
            return Ok(false);
        }
        self.memory_used = grown;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_counted_across_memories_and_capped() {
        let mut l = InstanceLimiter::new(100, 10);
        assert!(l.memory_growing(0, 60, None).unwrap());
        assert!(l.memory_growing(0, 30, None).unwrap());
        assert_eq!(l.memory_used(), 90);
        assert!(!l.memory_growing(30, 50, None).unwrap());
        assert!(l.limit_hit());
        assert_eq!(l.memory_used(), 90);
        assert!(l.memory_growing(60, 70, None).unwrap());
        assert_eq!(l.memory_used(), 100);
    }
}

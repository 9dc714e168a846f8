//! `[engine]`: the wasmtime engine and its pooling allocator.

use super::{ByteSize, HumanDuration, defaults};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How instance memory is allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Allocator {
    /// wasmtime's pooling allocator: slots reserved up front, copy-on-write
    /// memory images, microsecond instantiation. Falls back to `on-demand`
    /// (with a warning) where the address space cannot be reserved.
    Pooling,
    /// Allocate each instance's memory with mmap when it is created.
    OnDemand,
}

/// `[engine]`: the wasmtime engine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Interval of the epoch ticker that interrupts guest code; timeouts are
    /// exact to within one tick, and long-running guests yield once a tick.
    pub epoch_tick: HumanDuration,
    /// Instance allocation strategy.
    pub allocator: Allocator,
    /// Directory of wasmtime's compile cache (by content hash), shared across
    /// data directories; empty disables it. floe keeps each deployed
    /// function's compiled artifact in its data directory regardless.
    pub compile_cache: PathBuf,
    /// Pool sizing: core instances per component instance.
    pub core_instances_per_instance: u32,
    /// Pool sizing: linear memories per component instance.
    pub memories_per_instance: u32,
    /// Pool sizing: tables per component instance.
    pub tables_per_instance: u32,
    /// Pool sizing: elements per table.
    pub table_elements: u32,
    /// Pool sizing: runtime state of one core or component instance.
    pub instance_state_size: ByteSize,
    /// When an instance's memory slot is freed, this much of each linear
    /// memory is reset with `memset` and stays resident instead of being
    /// returned to the OS with `madvise`: fewer page faults and TLB
    /// shootdowns when instances come and go, more resident memory.
    pub memory_keep_resident: ByteSize,
    /// The same for tables.
    pub table_keep_resident: ByteSize,
    /// Freed slots are returned to the OS in batches of this many, which
    /// amortizes the cost of each `madvise` across threads (1: no batching).
    pub decommit_batch_size: u32,
    /// Host resources (requests, fields, streams, pollables, …) one instance
    /// may hold at once; creating one more traps with `resource_limit`.
    /// With `max_field_bytes` it bounds the host memory a guest can make the
    /// server hold.
    pub max_resources: u32,
    /// Host resources an instance may keep from one call to the next beyond
    /// what it held after its first call; an instance past it is retired
    /// after its call instead of reused.
    pub max_kept_resources: u32,
    /// Largest in-memory size of one wasi-http `fields` (header map).
    pub max_field_bytes: ByteSize,
    /// Largest write to an outgoing HTTP body stream (one chunk is
    /// buffered).
    pub outgoing_body_chunk: ByteSize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            epoch_tick: HumanDuration(defaults::EPOCH_TICK),
            allocator: Allocator::Pooling,
            compile_cache: PathBuf::new(),
            core_instances_per_instance: defaults::CORE_INSTANCES_PER_INSTANCE,
            memories_per_instance: defaults::MEMORIES_PER_INSTANCE,
            tables_per_instance: defaults::TABLES_PER_INSTANCE,
            table_elements: defaults::TABLE_ELEMENTS,
            instance_state_size: defaults::INSTANCE_STATE_SIZE,
            memory_keep_resident: defaults::MEMORY_KEEP_RESIDENT,
            table_keep_resident: defaults::TABLE_KEEP_RESIDENT,
            decommit_batch_size: defaults::DECOMMIT_BATCH_SIZE,
            max_resources: 1024,
            max_kept_resources: 128,
            max_field_bytes: ByteSize::kib(16),
            outgoing_body_chunk: ByteSize::kib(64),
        }
    }
}

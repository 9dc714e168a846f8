//! Noticing that a guest took random bytes.
//!
//! A snapshot copies an instance's memory into every instance started from
//! it. Random bytes taken while the snapshot is made would then be the same
//! in all of them (session keys, PRNG seeds, UUID state), so the run of
//! `init` that is snapshotted gets its `wasi:random` sources through an
//! [`EntropyProbe`], and floe does not snapshot an `init` that used them.

use rand_core::{Infallible, TryCryptoRng, TryRng};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A source of real random bytes that records whether it was used.
#[derive(Clone, Debug, Default)]
pub struct EntropyProbe {
    taken: Arc<AtomicBool>,
}

impl EntropyProbe {
    /// A probe that has not been used.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether any random bytes were taken through this probe (or a clone).
    pub fn taken(&self) -> bool {
        self.taken.load(Ordering::Relaxed)
    }

    fn fill(&mut self, dst: &mut [u8]) {
        self.taken.store(true, Ordering::Relaxed);
        if getrandom::fill(dst).is_err() {
            // No OS entropy: what was taken is refused for snapshots anyway;
            // give the guest something that is at least not constant.
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            for (i, b) in dst.iter_mut().enumerate() {
                *b = (seed >> ((i % 16) * 8)) as u8 ^ i as u8;
            }
        }
    }
}

impl TryRng for EntropyProbe {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.fill(dst);
        Ok(())
    }
}

impl TryCryptoRng for EntropyProbe {}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::Rng;

    #[test]
    fn the_probe_tells_when_it_was_used() {
        let mut probe = EntropyProbe::new();
        let other = probe.clone();
        assert!(!other.taken());
        let a = probe.next_u64();
        let b = probe.next_u64();
        assert_ne!(a, b);
        assert!(other.taken());
    }
}

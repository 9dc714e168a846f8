//! End-to-end tests for floe live in `all/`; this crate only carries the
//! `floe-under-test` binary and the fixture paths built by `build.rs`.

/// Paths of the example components, built for wasm32-wasip2 by `build.rs`.
pub mod fixtures {
    include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));
}

//! Running guest code: an instance's store with its limits and deadline,
//! and the errors a call can end in.
//!
//! Below the pool (which keeps instances to serve requests) and preinit
//! (which runs `init` once at deploy), above the engine and the host.

mod error;
mod store;

pub use error::InvokeError;
pub use store::{Phase, after, classify, classify_with, new_store, next_instance_id, until};

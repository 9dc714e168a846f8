//! The function's variables and secrets (feature `config`), read through
//! `wasi:config/store`.
//!
//! Variables are set with `floe config NAME --var KEY=VALUE`, secrets with
//! `--secret KEY=@FILE` (sealed at rest, never shown by the API); both are
//! read the same way. Changing them stops the function's instances (after
//! `pre-stop`): a value read once, in `init` or a static, stays right.
//!
//! ```ignore
//! let threshold: f64 = floe_sdk::config::get("threshold")
//!     .and_then(|v| v.parse().ok())
//!     .unwrap_or(40.0);
//! let token = floe_sdk::config::get("api_token").ok_or("no api_token secret")?;
//! ```
//!
//! During the deploy-time `init` snapshot the store is empty, and reading
//! it there makes floe run `init` in every instance instead, where the
//! values are: no value, and no secret, is ever baked into a snapshot.

#[allow(missing_docs, reason = "generated; the WIT documents the interface")]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "floe:function/config-imports",
        generate_all,
    });
}

use bindings::wasi::config::store;

/// The variable or secret `key`; `None` when there is none by that name.
pub fn get(key: &str) -> Option<String> {
    store::get(key).ok().flatten()
}

/// Every variable and secret, as `(key, value)` pairs.
pub fn all() -> Vec<(String, String)> {
    store::get_all().unwrap_or_default()
}

//! Request ids: the client's `x-request-id`, or one made up the first time
//! it is needed (for an error or a log line), not for every request.

use http::Request;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The request id header, read from clients and set on error responses.
pub const REQUEST_ID: &str = "x-request-id";

/// Longest client-given request id kept; a longer one is replaced.
const MAX_GIVEN_LEN: usize = 64;

/// One request's id.
#[derive(Debug)]
pub struct RequestId<'a> {
    given: Option<String>,
    made: OnceLock<String>,
    ids: Option<&'a RequestIds>,
}

impl RequestId<'static> {
    /// An id known already (an async invocation's).
    pub fn known(id: &str) -> Self {
        Self {
            given: Some(id.to_owned()),
            made: OnceLock::new(),
            ids: None,
        }
    }
}

impl RequestId<'_> {
    /// The id, made up now if the client sent none.
    pub fn get(&self) -> &str {
        match (&self.given, self.ids) {
            (Some(id), _) => id,
            (None, Some(ids)) => self.made.get_or_init(|| ids.next()),
            (None, None) => "",
        }
    }
}

/// Makes request ids: a random per-process prefix and a counter, so ids are
/// unique across restarts without a system call per request.
#[derive(Debug)]
pub struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        let mut raw = [0u8; 4];
        let _ = getrandom::fill(&mut raw);
        Self {
            prefix: u32::from_le_bytes(raw),
            next: AtomicU64::new(1),
        }
    }
}

impl RequestIds {
    /// The id of `request`.
    pub fn of<B>(&self, request: &Request<B>) -> RequestId<'_> {
        RequestId {
            given: request
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty() && v.len() <= MAX_GIVEN_LEN)
                .map(str::to_owned),
            made: OnceLock::new(),
            ids: Some(self),
        }
    }

    fn next(&self) -> String {
        format!(
            "{:08x}{:08x}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_clients_or_made_once_and_unique() {
        let ids = RequestIds::default();
        let given = Request::get("/")
            .header(REQUEST_ID, "abc-123")
            .body(())
            .unwrap();
        assert_eq!(ids.of(&given).get(), "abc-123");

        let too_long = Request::get("/")
            .header(REQUEST_ID, "x".repeat(MAX_GIVEN_LEN + 1))
            .body(())
            .unwrap();
        let made = ids.of(&too_long);
        assert_eq!(made.get().len(), 16);
        assert_eq!(made.get(), made.get(), "made once per request");

        let plain = Request::get("/").body(()).unwrap();
        assert_ne!(ids.of(&plain).get(), made.get());
        assert_eq!(RequestId::known("inv-1").get(), "inv-1");
    }
}

//! Function names: DNS labels, because they also appear in host names
//! (`{name}.{domain}`) and file names.

use std::fmt;
use std::sync::Arc;

/// Longest name: one DNS label.
pub const MAX_NAME_LEN: usize = 63;

/// A validated function name: 1–63 of `a-z`, `0-9` and `-`, starting and
/// ending with a letter or digit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct FunctionName(Arc<str>);

/// A name that is not a valid function name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid function name {0:?}: use 1-63 lower-case letters, digits and '-', \
     starting and ending with a letter or digit"
)]
pub struct InvalidName(pub String);

impl FunctionName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Self, InvalidName> {
        let b = name.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= MAX_NAME_LEN
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-';
        if ok {
            Ok(Self(name.into()))
        } else {
            Err(InvalidName(name.chars().take(100).collect()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a shared string.
    pub fn as_arc(&self) -> &Arc<str> {
        &self.0
    }
}

impl TryFrom<String> for FunctionName {
    type Error = InvalidName;

    fn try_from(name: String) -> Result<Self, InvalidName> {
        Self::new(&name)
    }
}

impl std::str::FromStr for FunctionName {
    type Err = InvalidName;

    fn from_str(name: &str) -> Result<Self, InvalidName> {
        Self::new(name)
    }
}

impl AsRef<str> for FunctionName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FunctionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels() {
        for ok in ["hello", "a", "img-resize-2", "0abc"] {
            assert!(FunctionName::new(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "Hello",
            "-a",
            "a-",
            "a_b",
            "a.b",
            "../x",
            "a b",
            long.as_str(),
        ] {
            assert!(FunctionName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_deserialize_only_when_valid() {
        let name: FunctionName = serde_json::from_str("\"img-resize\"").unwrap();
        assert_eq!(name.as_str(), "img-resize");
        let err = serde_json::from_str::<FunctionName>("\"Bad_Name\"").unwrap_err();
        assert!(err.to_string().contains("invalid function name"), "{err}");
    }
}

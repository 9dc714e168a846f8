//! What the store keeps about control-plane tokens created over the API:
//! their scope, and their secret only as a SHA-256 hash. One JSON file,
//! `tokens.json`, for all of them. The bootstrap token (`token`) is not
//! among them.

use serde::{Deserialize, Serialize};

/// What a control-plane token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    /// Everything, tokens included.
    Admin,
    /// Deploy, configure, roll back, delete and invoke the functions whose
    /// names start with the token's prefix, and read their views.
    Deploy,
    /// Every `GET`: lists, function views, instances, invocations, metrics.
    Read,
}

impl TokenScope {
    /// The scope as written in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Deploy => "deploy",
            Self::Read => "read",
        }
    }
}

impl std::fmt::Display for TokenScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One token created over the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    /// The lookup key: the `<id>` of `floe_<id>_<secret>`, lowercase hex.
    pub id: String,
    /// SHA-256 of the `<secret>` text, lowercase hex.
    pub secret_sha256: String,
    /// What the token may do.
    pub scope: TokenScope,
    /// For deploy tokens, the start of the names of the functions it may
    /// manage (empty: all); `None` for other scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// A label for people (`ci`); may be empty.
    #[serde(default)]
    pub name: String,
    /// When it was created (milliseconds since the Unix epoch).
    pub created_ms: u64,
}

/// The layout of `tokens.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokensFile {
    /// Every created token that is not revoked.
    pub(super) tokens: Vec<TokenRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_without_a_prefix_for_other_scopes() {
        let record = TokenRecord {
            id: "0a1b2c3d".into(),
            secret_sha256: "00".repeat(32),
            scope: TokenScope::Read,
            prefix: None,
            name: "dashboards".into(),
            created_ms: 1,
        };
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["scope"], "read");
        assert!(json.get("prefix").is_none());
        let back: TokenRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);
    }
}

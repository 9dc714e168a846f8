//! Control-plane tokens: the bootstrap token and the scoped tokens created
//! over `/v1/tokens`, and those endpoints.
//!
//! A created token reads `floe_<id>_<secret>`: `<id>` is 8 random hex digits,
//! the key it is looked up by, and `<secret>` 32 random bytes in hex. Only the
//! SHA-256 of the secret text is kept (`tokens.json` in the data directory,
//! through [`FunctionStore::write_tokens`]), and it is compared in constant
//! time; the token itself is in the create answer and nowhere else.
//!
//! The bootstrap token (`<data_dir>/token`) is an admin token that is not
//! listed and cannot be revoked over the API: to replace it, stop the
//! server, delete the file and start again. Invariant: the in-memory table
//! changes only after the file that backs it has been written, so an
//! answered create or revoke survives a crash, and a revoked token fails
//! from the next request on.

use super::auth::{Caller, constant_time_eq};
use super::{ApiError, ApiState};
use crate::clock::unix_ms;
use crate::status::ErrorCode;
use crate::store::{FunctionStore, StoreError, TokenRecord, TokenScope};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// What starts every created token.
const TOKEN_PREFIX: &str = "floe_";
/// Random bytes of a token's id (hex: twice as many digits).
const ID_BYTES: usize = 4;
/// Random bytes of a token's secret.
const SECRET_BYTES: usize = 32;
/// Longest deploy prefix: a function name's length.
const MAX_PREFIX: usize = 63;
/// Longest token name.
const MAX_NAME: usize = 64;

/// Why a token could not be created or revoked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token file could not be written.
    #[error("storing tokens: {0}")]
    Store(#[from] StoreError),
    /// The system's random source failed.
    #[error("generating a token: {0}")]
    Random(String),
    /// The blocking task that writes the file failed.
    #[error("the token-writing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        tracing::error!(error = &e as &dyn std::error::Error, "token request failed");
        ApiError::new(ErrorCode::Internal, "internal error")
    }
}

/// A created token, as kept in memory: its record and its hash as bytes.
#[derive(Debug)]
struct Entry {
    record: TokenRecord,
    hash: [u8; 32],
}

/// Every token the control plane accepts.
pub struct Tokens {
    bootstrap: Arc<str>,
    created: RwLock<HashMap<String, Arc<Entry>>>,
    store: Arc<FunctionStore>,
    /// Serializes creates and revokes, so that each writes the whole table
    /// as the one before it left it.
    writes: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("created", &self.created.read().len())
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// The tokens of the data directory behind `store`: `bootstrap` (its
    /// `token` file) and those created over the API. A stored entry whose
    /// hash is not 64 hex digits is left out (and logged): it could never
    /// match.
    pub fn open(bootstrap: &str, store: Arc<FunctionStore>) -> Result<Self, StoreError> {
        let mut created = HashMap::new();
        for record in store.load_tokens()? {
            let mut hash = [0u8; 32];
            if hex::decode_to_slice(&record.secret_sha256, &mut hash).is_err() {
                tracing::warn!(id = %record.id, "a stored token's hash is damaged; the token is dropped");
                continue;
            }
            created.insert(record.id.clone(), Arc::new(Entry { record, hash }));
        }
        Ok(Self {
            bootstrap: bootstrap.into(),
            created: RwLock::new(created),
            store,
            writes: tokio::sync::Mutex::new(()),
        })
    }

    /// The bootstrap (admin) token.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Who presents `token`, or `None` when it is no token of this server.
    pub fn authenticate(&self, token: &str) -> Option<Caller> {
        if constant_time_eq(token.as_bytes(), self.bootstrap.as_bytes()) {
            return Some(Caller::bootstrap());
        }
        let (id, secret) = parse(token)?;
        let entry = self.created.read().get(id).cloned()?;
        let hash = Sha256::digest(secret.as_bytes());
        constant_time_eq(&hash, &entry.hash).then(|| Caller::of(&entry.record))
    }

    /// The created tokens, oldest first.
    pub fn list(&self) -> Vec<TokenRecord> {
        let mut list: Vec<TokenRecord> = self
            .created
            .read()
            .values()
            .map(|e| e.record.clone())
            .collect();
        list.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        list
    }

    /// Creates a token, stores its hash, and returns its record and its
    /// text (which is kept nowhere).
    pub async fn create(
        &self,
        scope: TokenScope,
        prefix: Option<String>,
        name: String,
    ) -> Result<(TokenRecord, String), TokenError> {
        let _write = self.writes.lock().await;
        let id = loop {
            let id = hex::encode(random::<ID_BYTES>()?);
            if !self.created.read().contains_key(&id) {
                break id;
            }
        };
        let secret = hex::encode(random::<SECRET_BYTES>()?);
        let hash: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let record = TokenRecord {
            id: id.clone(),
            secret_sha256: hex::encode(hash),
            scope,
            prefix,
            name,
            created_ms: unix_ms(),
        };
        let mut all = self.list();
        all.push(record.clone());
        self.persist(all).await?;
        let entry = Arc::new(Entry {
            record: record.clone(),
            hash,
        });
        self.created.write().insert(id.clone(), entry);
        Ok((record, format!("{TOKEN_PREFIX}{id}_{secret}")))
    }

    /// Revokes token `id`; `false` when there is no such token.
    pub async fn revoke(&self, id: &str) -> Result<bool, TokenError> {
        let _write = self.writes.lock().await;
        if !self.created.read().contains_key(id) {
            return Ok(false);
        }
        let rest: Vec<TokenRecord> = self.list().into_iter().filter(|r| r.id != id).collect();
        self.persist(rest).await?;
        self.created.write().remove(id);
        Ok(true)
    }

    async fn persist(&self, records: Vec<TokenRecord>) -> Result<(), TokenError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.write_tokens(&records)).await??;
        Ok(())
    }
}

/// Splits `floe_<id>_<secret>` into its id and secret, when it has that
/// shape.
fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.strip_prefix(TOKEN_PREFIX)?.split_once('_')?;
    let lower_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let well_formed = id.len() == 2 * ID_BYTES
        && secret.len() == 2 * SECRET_BYTES
        && lower_hex(id)
        && lower_hex(secret);
    well_formed.then_some((id, secret))
}

fn random<const N: usize>() -> Result<[u8; N], TokenError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(bytes)
}

/// The body of `POST /v1/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    scope: TokenScope,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

impl CreateRequest {
    /// Checks the request; returns the prefix and name to store.
    fn check(self) -> Result<(TokenScope, Option<String>, String), String> {
        let prefix = match (self.scope, self.prefix) {
            (TokenScope::Deploy, None) => {
                return Err(
                    "a deploy token needs a prefix: the start of the names of the functions it \
                     may manage (\"\" for every function)"
                        .into(),
                );
            }
            (TokenScope::Deploy, Some(p)) => {
                let valid = p.len() <= MAX_PREFIX
                    && p.bytes()
                        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'));
                if !valid {
                    return Err(format!(
                        "prefix {p:?} cannot start a function name: use up to {MAX_PREFIX} of a-z, 0-9, -"
                    ));
                }
                Some(p)
            }
            (scope, Some(_)) => {
                return Err(format!(
                    "only deploy tokens take a prefix; a {scope} token reaches every function"
                ));
            }
            (_, None) => None,
        };
        let name = self.name.unwrap_or_default();
        if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
            return Err(format!(
                "a token's name is up to {MAX_NAME} printable characters"
            ));
        }
        Ok((self.scope, prefix, name))
    }
}

/// A token as listed: everything but its hash.
#[derive(Serialize)]
struct TokenView<'a> {
    id: &'a str,
    scope: TokenScope,
    prefix: Option<&'a str>,
    name: &'a str,
    created_ms: u64,
}

impl<'a> From<&'a TokenRecord> for TokenView<'a> {
    fn from(r: &'a TokenRecord) -> Self {
        Self {
            id: &r.id,
            scope: r.scope,
            prefix: r.prefix.as_deref(),
            name: &r.name,
            created_ms: r.created_ms,
        }
    }
}

/// `POST /v1/tokens`: `201` with the token, shown this once.
pub(super) async fn create(
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: CreateRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!(
                "the body must be a JSON object {{\"scope\": \"admin\"|\"deploy\"|\"read\", \"prefix\": ..., \"name\": ...}}: {e}"
            ),
        )
    })?;
    let (scope, prefix, name) = request
        .check()
        .map_err(|m| ApiError::new(ErrorCode::BadRequest, m))?;
    let (record, token) = state.tokens.create(scope, prefix, name).await?;
    tracing::info!(id = %record.id, scope = %record.scope, prefix = ?record.prefix, name = %record.name, "token created");
    let view = TokenView::from(&record);
    let body = json!({
        "id": view.id,
        "token": token,
        "scope": view.scope,
        "prefix": view.prefix,
        "name": view.name,
        "created_ms": view.created_ms,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /v1/tokens`: the created tokens, without secrets or hashes.
pub(super) async fn list(State(state): State<ApiState>) -> Json<serde_json::Value> {
    let records = state.tokens.list();
    let views: Vec<TokenView<'_>> = records.iter().map(TokenView::from).collect();
    Json(json!({ "tokens": views }))
}

/// `DELETE /v1/tokens/{id}`: `204`, or `404` for an unknown id.
pub(super) async fn revoke(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.tokens.revoke(&id).await? {
        tracing::info!(%id, "token revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(ErrorCode::NotFound, "no such token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(tag: &str) -> (std::path::PathBuf, Arc<FunctionStore>) {
        let dir = std::env::temp_dir().join(format!("floe-tokens-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Arc::new(FunctionStore::open(&dir).unwrap());
        (dir, store)
    }

    #[test]
    fn only_well_formed_tokens_parse() {
        let secret = "0f".repeat(32);
        let token = format!("floe_0a1b2c3d_{secret}");
        assert_eq!(parse(&token), Some(("0a1b2c3d", secret.as_str())));
        assert_eq!(parse(&format!("floe_0a1b2c3_{secret}")), None, "short id");
        assert_eq!(parse(&format!("floe_0A1B2C3D_{secret}")), None, "uppercase");
        assert_eq!(
            parse(&format!("floe_0a1b2c3d_{secret}0")),
            None,
            "long secret"
        );
        assert_eq!(parse(&format!("flow_0a1b2c3d_{secret}")), None);
        assert_eq!(parse("floe_0a1b2c3d"), None);
        assert_eq!(parse(&"a".repeat(64)), None, "a bootstrap-like token");
    }

    #[tokio::test]
    async fn created_tokens_authenticate_until_revoked_and_survive_a_reopen() {
        let (dir, store) = store("lifecycle");
        let tokens = Tokens::open("boot", store.clone()).unwrap();
        assert_eq!(
            tokens.authenticate("boot").map(|c| c.scope),
            Some(TokenScope::Admin)
        );
        assert!(tokens.authenticate("boot2").is_none());

        let (record, text) = tokens
            .create(TokenScope::Deploy, Some("team-a-".into()), "ci".into())
            .await
            .unwrap();
        assert!(text.starts_with(&format!("floe_{}_", record.id)), "{text}");
        assert_eq!(record.id.len(), 8);
        assert_eq!(text.len(), "floe_".len() + 8 + 1 + 64);
        // The secret is stored only as its hash.
        let (_, secret) = parse(&text).unwrap();
        assert_eq!(record.secret_sha256, hex::encode(Sha256::digest(secret)));
        let stored = std::fs::read_to_string(dir.join("tokens.json")).unwrap();
        assert!(!stored.contains(secret));

        let caller = tokens.authenticate(&text).unwrap();
        assert_eq!(caller.scope, TokenScope::Deploy);
        assert!(caller.may_reach("team-a-x"));
        assert!(!caller.may_reach("other"));
        // Another secret under the same id is refused.
        let forged = format!("floe_{}_{}", record.id, "0".repeat(64));
        assert!(tokens.authenticate(&forged).is_none());

        let reopened = Tokens::open("boot", store.clone()).unwrap();
        assert!(reopened.authenticate(&text).is_some());
        assert_eq!(reopened.list(), std::slice::from_ref(&record));

        assert!(reopened.revoke(&record.id).await.unwrap());
        assert!(!reopened.revoke(&record.id).await.unwrap());
        assert!(reopened.authenticate(&text).is_none());
        let again = Tokens::open("boot", store).unwrap();
        assert!(again.list().is_empty());
        drop(again);
        drop(reopened);
        drop(tokens);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn create_requests_are_checked() {
        let check = |body: &str| {
            serde_json::from_str::<CreateRequest>(body)
                .map_err(|e| e.to_string())
                .and_then(CreateRequest::check)
        };
        assert_eq!(
            check(r#"{"scope": "deploy", "prefix": "team-a-", "name": "ci"}"#),
            Ok((TokenScope::Deploy, Some("team-a-".into()), "ci".into()))
        );
        assert_eq!(
            check(r#"{"scope": "deploy", "prefix": ""}"#),
            Ok((TokenScope::Deploy, Some(String::new()), String::new()))
        );
        assert_eq!(
            check(r#"{"scope": "read"}"#),
            Ok((TokenScope::Read, None, String::new()))
        );
        assert!(check(r#"{"scope": "deploy"}"#).is_err(), "no prefix");
        assert!(check(r#"{"scope": "deploy", "prefix": "Team"}"#).is_err());
        assert!(check(r#"{"scope": "read", "prefix": "a"}"#).is_err());
        assert!(check(r#"{"scope": "root"}"#).is_err());
        assert!(check(r#"{"scope": "read", "extra": 1}"#).is_err());
        assert!(check(r#"{"scope": "read", "name": "a\nb"}"#).is_err());
    }
}

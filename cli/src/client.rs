//! A client for floe's control plane, as used by the `floe` command line.
//!
//! It finds the server the way the CLI does: `FLOE_URL` and `FLOE_TOKEN`, or
//! the `control.url` and `token` files a running server keeps in its data
//! directory. Over HTTPS it trusts what [`Trust`] says: the public roots,
//! `--ca`/`FLOE_CA`, and the certificate the server records in its data
//! directory (see [`crate::tls`]).

use crate::tls::Connector;
pub use crate::tls::Trust;
use bytes::Bytes;
use floe::config::env;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::path::Path;

/// A control-plane request that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No server address or token was found.
    #[error(
        "cannot find the server: set {url} and {token}, or run from where `floe serve` keeps its data directory ({dir}): {source}",
        url = env::URL,
        token = env::TOKEN
    )]
    Credentials {
        /// The data directory that was looked in.
        dir: String,
        /// Why reading it failed.
        #[source]
        source: std::io::Error,
    },
    /// A certificate file to trust could not be read.
    #[error("reading certificates from {path}: {reason}")]
    Trust {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The server could not be reached.
    #[error("talking to {url}: {source}")]
    Transport {
        /// The server.
        url: String,
        /// What failed.
        #[source]
        source: anyhow::Error,
    },
    /// The server answered with an error.
    #[error("{status}: {message} ({code})")]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The stable error code.
        code: String,
        /// The server's message.
        message: String,
        /// Extra detail (e.g. the missing imports of a component).
        details: Option<Value>,
    },
}

/// A control-plane client.
#[derive(Clone, Debug)]
pub struct ControlClient {
    base: String,
    token: String,
    http: Client<Connector, Full<Bytes>>,
}

/// Percent-encodes a query component.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn settings_query(settings: &[(String, String)]) -> String {
    settings
        .iter()
        .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl ControlClient {
    /// A client for the server at `base` (`http://host:port` or
    /// `https://host:port`, trusting the public roots) using `token`.
    pub fn new(base: &str, token: &str) -> Self {
        Self::with_trust(base, token, &Trust::default())
    }

    /// A client for the server at `base` using `token`, trusting `trust`
    /// over HTTPS.
    pub fn with_trust(base: &str, token: &str, trust: &Trust) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http: Client::builder(TokioExecutor::new()).build(Connector::new(trust)),
        }
    }

    /// A client configured from `FLOE_URL`/`FLOE_TOKEN`, falling back to the
    /// files in `data_dir`, trusting the certificates in `ca` (a PEM file)
    /// and, for the URL found in `data_dir`, the certificate recorded there.
    pub fn discover(data_dir: &Path, ca: Option<&Path>) -> Result<Self, ClientError> {
        let (mut url, mut token) = (std::env::var(env::URL).ok(), std::env::var(env::TOKEN).ok());
        let mut trust = Trust::default();
        if let Some(ca) = ca {
            trust.add_ca_file(ca)?;
        }
        if url.is_none() || token.is_none() {
            let (file_url, file_token) =
                floe::store::read_client_credentials(data_dir).map_err(|source| {
                    ClientError::Credentials {
                        dir: data_dir.display().to_string(),
                        source,
                    }
                })?;
            let pinned = floe::store::control_cert_file(data_dir);
            if url.is_none() && file_url.starts_with("https:") && pinned.exists() {
                trust.pin_file(&pinned)?;
            }
            url.get_or_insert(file_url);
            token.get_or_insert(file_token);
        }
        Ok(Self::with_trust(
            url.as_deref().unwrap_or_default(),
            token.as_deref().unwrap_or_default(),
            &trust,
        ))
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request; returns the status and JSON body (`Null` when empty).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Value), ClientError> {
        let transport = |source: anyhow::Error| ClientError::Transport {
            url: self.base.clone(),
            source,
        };
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .body(Full::new(body))
            .map_err(|e| transport(e.into()))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| transport(e.into()))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| transport(e.into()))?
            .to_bytes();
        let json: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if status.is_success() {
            return Ok((status, json));
        }
        Err(ClientError::Api {
            status,
            code: json["code"].as_str().unwrap_or("unknown").to_owned(),
            message: json["message"].as_str().unwrap_or("").to_owned(),
            details: json.get("details").cloned(),
        })
    }

    /// Deploys `component` as `name` with `settings`. The status is 201 when
    /// a version was created, 200 when the bytes were already active.
    pub async fn deploy(
        &self,
        name: &str,
        component: Bytes,
        settings: &[(String, String)],
    ) -> Result<(StatusCode, Value), ClientError> {
        let query = settings_query(settings);
        let path = if query.is_empty() {
            format!("/v1/functions/{}", encode_component(name))
        } else {
            format!("/v1/functions/{}?{query}", encode_component(name))
        };
        self.send(Method::PUT, &path, component).await
    }

    /// Pushes `component` to the cluster's registry as an artifact of
    /// `name` (tagged `tag`), without deploying it.
    pub async fn push(
        &self,
        name: &str,
        component: Bytes,
        tag: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut path = format!("/v1/functions/{}/push", encode_component(name));
        if let Some(tag) = tag {
            path.push_str(&format!("?tag={}", encode_component(tag)));
        }
        Ok(self.send(Method::POST, &path, component).await?.1)
    }

    /// The cluster's live nodes.
    pub async fn nodes(&self) -> Result<Value, ClientError> {
        Ok(self.send(Method::GET, "/v1/nodes", Bytes::new()).await?.1)
    }

    /// Lists functions.
    pub async fn list(&self) -> Result<Value, ClientError> {
        Ok(self
            .send(Method::GET, "/v1/functions", Bytes::new())
            .await?
            .1)
    }

    /// Describes one function.
    pub async fn info(&self, name: &str) -> Result<Value, ClientError> {
        let path = format!("/v1/functions/{}", encode_component(name));
        Ok(self.send(Method::GET, &path, Bytes::new()).await?.1)
    }

    /// Lists a function's live instances.
    pub async fn instances(&self, name: &str) -> Result<Value, ClientError> {
        let path = format!("/v1/functions/{}/instances", encode_component(name));
        Ok(self.send(Method::GET, &path, Bytes::new()).await?.1)
    }

    /// Deletes a function.
    pub async fn delete(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("/v1/functions/{}", encode_component(name));
        self.send(Method::DELETE, &path, Bytes::new())
            .await
            .map(|_| ())
    }

    /// Rolls back to the previous version, or to `version`.
    pub async fn rollback(&self, name: &str, version: Option<u64>) -> Result<Value, ClientError> {
        let mut path = format!("/v1/functions/{}/rollback", encode_component(name));
        if let Some(v) = version {
            path.push_str(&format!("?version={v}"));
        }
        Ok(self.send(Method::POST, &path, Bytes::new()).await?.1)
    }

    /// Creates a token with `scope` (`admin`, `deploy`, `read`); `prefix`
    /// is required for deploy tokens. The answer holds the token itself,
    /// which the server does not show again.
    pub async fn create_token(
        &self,
        scope: &str,
        prefix: Option<&str>,
        name: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut body = serde_json::Map::new();
        body.insert("scope".into(), scope.into());
        if let Some(prefix) = prefix {
            body.insert("prefix".into(), prefix.into());
        }
        if let Some(name) = name {
            body.insert("name".into(), name.into());
        }
        let body = Bytes::from(Value::Object(body).to_string());
        Ok(self.send(Method::POST, "/v1/tokens", body).await?.1)
    }

    /// Lists the created tokens (without their secrets).
    pub async fn tokens(&self) -> Result<Value, ClientError> {
        Ok(self.send(Method::GET, "/v1/tokens", Bytes::new()).await?.1)
    }

    /// Revokes token `id`.
    pub async fn revoke_token(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/v1/tokens/{}", encode_component(id));
        self.send(Method::DELETE, &path, Bytes::new())
            .await
            .map(|_| ())
    }

    /// Changes settings of a function.
    pub async fn configure(
        &self,
        name: &str,
        settings: &[(String, String)],
    ) -> Result<Value, ClientError> {
        // In the body, never the URL: secrets (`secret.KEY`) are among them.
        let path = format!("/v1/functions/{}/config", encode_component(name));
        let object: serde_json::Map<String, Value> = settings
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let body = serde_json::to_vec(&object).map_err(|e| ClientError::Transport {
            url: self.base.clone(),
            source: e.into(),
        })?;
        Ok(self.send(Method::PATCH, &path, Bytes::from(body)).await?.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_components_are_encoded() {
        assert_eq!(encode_component("64MiB"), "64MiB");
        assert_eq!(encode_component("a b&c=d"), "a%20b%26c%3Dd");
        let q = settings_query(&[
            ("memory".into(), "64MiB".into()),
            ("reuse".into(), "false".into()),
        ]);
        assert_eq!(q, "memory=64MiB&reuse=false");
    }
}

//! Component bytes in an OCI registry, as Wasm OCI artifacts in the CNCF
//! layout: a manifest (`application/vnd.oci.image.manifest.v1+json`), a
//! config (`application/vnd.wasm.config.v0+json`) and one `application/wasm`
//! layer, so that other OCI tools read them. Compiled code travels the same
//! way under floe's own media types, keyed by the engine's compatibility key.
//!
//! Blobs are pushed only when the registry lacks them, and every pull is
//! checked against the digest the caller expects (the registry is not
//! trusted) and bounded in size.

use crate::config::RegistryLocation;
use crate::store::Digest;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The OCI image manifest media type.
pub(super) const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The config of a Wasm OCI artifact.
pub(super) const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// A Wasm component layer.
pub(super) const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The artifact type of compiled code.
pub(super) const COMPILED_ARTIFACT_TYPE: &str = "application/vnd.floe.compiled.v0";
/// The config of compiled code.
pub(super) const COMPILED_CONFIG_MEDIA_TYPE: &str = "application/vnd.floe.compiled.config.v0+json";
/// A compiled-code layer.
pub(super) const COMPILED_LAYER_MEDIA_TYPE: &str = "application/vnd.floe.compiled.v0";

/// A registry request that failed.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The registry could not be reached or refused the request.
    #[error("registry {reference}: {source}")]
    Registry {
        /// What was asked for.
        reference: String,
        /// Why it failed.
        #[source]
        source: oci_client::errors::OciDistributionError,
    },
    /// The registry did not answer in time.
    #[error("registry {0}: timed out")]
    Timeout(String),
    /// Pulled bytes do not match the digest they were asked for by.
    #[error("registry {reference}: the bytes pulled hash to {actual}, not the expected digest")]
    DigestMismatch {
        /// What was asked for.
        reference: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// A pulled blob is larger than allowed.
    #[error("registry {reference}: blob larger than {limit} bytes")]
    TooLarge {
        /// What was asked for.
        reference: String,
        /// The limit.
        limit: u64,
    },
    /// A manifest is not a Wasm component artifact.
    #[error("{reference} is not a Wasm component artifact: {reason}")]
    NotWasm {
        /// What was asked for.
        reference: String,
        /// Why.
        reason: String,
    },
    /// A reference does not parse.
    #[error("invalid OCI reference {0:?}")]
    BadReference(String),
    /// The registry has no such manifest or blob.
    #[error("the registry has no {0}")]
    NotFound(String),
}

/// Whether `error` is the registry saying it has no such thing.
fn is_not_found(error: &oci_client::errors::OciDistributionError) -> bool {
    use oci_client::errors::{OciDistributionError, OciErrorCode};
    match error {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown
                    | OciErrorCode::BlobUnknown
                    | OciErrorCode::NameUnknown
            )
        }),
        _ => false,
    }
}

/// What bytes hashed to, when `error` is the client finding that they do
/// not match the digest they were pulled by.
fn verification_failure(error: &oci_client::errors::OciDistributionError) -> Option<String> {
    use oci_client::errors::{DigestError, OciDistributionError};
    let digest_error = match error {
        OciDistributionError::DigestError(e) => Some(e),
        OciDistributionError::IoError(e) => e.get_ref().and_then(|e| e.downcast_ref()),
        _ => None,
    };
    match digest_error {
        Some(DigestError::VerificationError { actual, .. }) => Some(actual.clone()),
        _ => None,
    }
}

/// An OCI image manifest, written the way floe pushes it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

impl Descriptor {
    fn of(media_type: &str, bytes: &[u8]) -> Self {
        Self {
            media_type: media_type.to_owned(),
            digest: Digest::of(bytes).to_string(),
            size: bytes.len() as u64,
            annotations: BTreeMap::new(),
        }
    }
}

/// The config of a Wasm OCI artifact (the CNCF TAG Runtime layout).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct WasmConfig<'a> {
    created: String,
    architecture: &'static str,
    os: &'static str,
    layer_digests: Vec<String>,
    component: ComponentInfo<'a>,
}

#[derive(Debug, Serialize)]
struct ComponentInfo<'a> {
    exports: &'a [String],
    imports: &'a [String],
}

/// A pushed artifact: its manifest's digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The manifest digest (`sha256:…`).
    pub manifest: String,
}

/// What a component artifact says of itself.
#[derive(Debug, Default)]
pub struct ComponentMeta<'a> {
    /// The function (the layer's file name).
    pub name: &'a str,
    /// Exported interfaces.
    pub exports: &'a [String],
    /// Imported interfaces.
    pub imports: &'a [String],
}

/// A client of the cluster's registry (and of others named in a deploy).
#[derive(Clone)]
pub struct Oci {
    client: Client,
    location: RegistryLocation,
    auth: RegistryAuth,
    timeout: Duration,
}

impl std::fmt::Debug for Oci {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oci")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl Oci {
    /// A client for `location`, with basic credentials when `user` is set.
    pub fn new(
        location: RegistryLocation,
        user: &str,
        password: &str,
        timeout: Duration,
    ) -> Result<Self, OciError> {
        let protocol = if location.plain_http {
            ClientProtocol::HttpsExcept(vec![location.host.clone()])
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            connect_timeout: Some(timeout),
            read_timeout: Some(timeout),
            // One PUT per blob: what every registry supports.
            use_monolithic_push: true,
            ..ClientConfig::default()
        };
        let client = Client::try_from(config).map_err(|source| OciError::Registry {
            reference: location.host.clone(),
            source,
        })?;
        let auth = if user.is_empty() {
            RegistryAuth::Anonymous
        } else {
            RegistryAuth::Basic(user.to_owned(), password.to_owned())
        };
        Ok(Self {
            client,
            location,
            auth,
            timeout,
        })
    }

    /// Where this client pushes.
    pub fn location(&self) -> &RegistryLocation {
        &self.location
    }

    /// The repository of function `name`: `host:port/prefix/name`.
    pub fn repository(&self, name: &str) -> String {
        format!("{}/{}", self.location.host, self.location.repository(name))
    }

    fn reference(&self, repository: &str, digest: &str) -> Result<Reference, OciError> {
        let (registry, repo) = repository
            .split_once('/')
            .ok_or_else(|| OciError::BadReference(repository.to_owned()))?;
        Ok(Reference::with_digest(
            registry.to_owned(),
            repo.to_owned(),
            digest.to_owned(),
        ))
    }

    async fn timed<T>(
        &self,
        what: &Reference,
        op: impl Future<Output = Result<T, oci_client::errors::OciDistributionError>>,
    ) -> Result<T, OciError> {
        // Pushes and pulls of large blobs take longer than one request:
        // the limit is per byte-moving call, scaled up generously.
        match tokio::time::timeout(self.timeout * 12, op).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(OciError::Registry {
                reference: what.whole(),
                source,
            }),
            Err(_) => Err(OciError::Timeout(what.whole())),
        }
    }

    async fn ensure_blob(&self, reference: &Reference, bytes: &Bytes) -> Result<String, OciError> {
        let digest = Digest::of(bytes).to_string();
        self.client
            .store_auth_if_needed(reference.resolve_registry(), &self.auth)
            .await;
        let exists = self
            .timed(reference, self.client.blob_exists(reference, &digest))
            .await?;
        if !exists {
            self.timed(
                reference,
                self.client.push_blob(reference, bytes.clone(), &digest),
            )
            .await?;
        }
        Ok(digest)
    }

    async fn push_manifest(
        &self,
        repository: &str,
        manifest: &Manifest,
        tag: Option<&str>,
    ) -> Result<Pushed, OciError> {
        let body = Bytes::from(serde_json::to_vec(manifest).unwrap_or_default());
        let digest = Digest::of(&body).to_string();
        let reference = match tag {
            Some(tag) => {
                let base = self.reference(repository, &digest)?;
                Reference::with_tag(
                    base.registry().to_owned(),
                    base.repository().to_owned(),
                    tag.to_owned(),
                )
            }
            None => self.reference(repository, &digest)?,
        };
        let content_type = http::HeaderValue::from_static(MANIFEST_MEDIA_TYPE);
        self.timed(
            &reference,
            self.client
                .push_manifest_raw(&reference, body, content_type),
        )
        .await?;
        Ok(Pushed { manifest: digest })
    }

    /// Pushes `bytes` as a Wasm component artifact to `repository`
    /// (tagged `tag`, if given). Blobs already there are not sent again.
    pub async fn push_component(
        &self,
        repository: &str,
        bytes: &Bytes,
        meta: &ComponentMeta<'_>,
        tag: Option<&str>,
    ) -> Result<Pushed, OciError> {
        let probe = self.reference(repository, &Digest::of(bytes).to_string())?;
        let layer_digest = self.ensure_blob(&probe, bytes).await?;
        let config = WasmConfig {
            created: jiff::Timestamp::now().to_string(),
            architecture: "wasm",
            os: "wasip2",
            layer_digests: vec![layer_digest],
            component: ComponentInfo {
                exports: meta.exports,
                imports: meta.imports,
            },
        };
        let config = Bytes::from(serde_json::to_vec(&config).unwrap_or_default());
        self.ensure_blob(&probe, &config).await?;
        let mut layer = Descriptor::of(WASM_LAYER_MEDIA_TYPE, bytes);
        layer.annotations.insert(
            "org.opencontainers.image.title".into(),
            format!("{}.wasm", meta.name),
        );
        let manifest = Manifest {
            schema_version: 2,
            media_type: MANIFEST_MEDIA_TYPE.into(),
            artifact_type: None,
            config: Descriptor::of(WASM_CONFIG_MEDIA_TYPE, &config),
            layers: vec![layer],
            annotations: BTreeMap::new(),
        };
        self.push_manifest(repository, &manifest, tag).await
    }

    /// Pushes compiled code of component `component` for engine
    /// compatibility key `engine` to `repository`. Returns the digest of
    /// the code's blob.
    pub async fn push_compiled(
        &self,
        repository: &str,
        code: &Bytes,
        engine: &str,
        component: Digest,
    ) -> Result<Digest, OciError> {
        let digest = Digest::of(code);
        let probe = self.reference(repository, &digest.to_string())?;
        self.ensure_blob(&probe, code).await?;
        let config = serde_json::json!({ "engine": engine, "component": component.to_string() });
        let config = Bytes::from(serde_json::to_vec(&config).unwrap_or_default());
        self.ensure_blob(&probe, &config).await?;
        let mut annotations = BTreeMap::new();
        annotations.insert("dev.floe.engine".to_owned(), engine.to_owned());
        annotations.insert("dev.floe.component".to_owned(), component.to_string());
        let manifest = Manifest {
            schema_version: 2,
            media_type: MANIFEST_MEDIA_TYPE.into(),
            artifact_type: Some(COMPILED_ARTIFACT_TYPE.into()),
            config: Descriptor::of(COMPILED_CONFIG_MEDIA_TYPE, &config),
            layers: vec![Descriptor::of(COMPILED_LAYER_MEDIA_TYPE, code)],
            annotations,
        };
        self.push_manifest(repository, &manifest, None).await?;
        Ok(digest)
    }

    /// Pulls blob `digest` from `repository`: at most `limit` bytes, which
    /// must hash to `digest`.
    pub async fn pull_blob(
        &self,
        repository: &str,
        digest: Digest,
        limit: u64,
    ) -> Result<Bytes, OciError> {
        let reference = self.reference(repository, &digest.to_string())?;
        self.pull_verified(&reference, digest, limit).await
    }

    async fn pull_verified(
        &self,
        reference: &Reference,
        digest: Digest,
        limit: u64,
    ) -> Result<Bytes, OciError> {
        self.client
            .store_auth_if_needed(reference.resolve_registry(), &self.auth)
            .await;
        let descriptor = OciDescriptor {
            digest: digest.to_string(),
            ..OciDescriptor::default()
        };
        let pull = async {
            let mut stream = self.client.pull_blob_stream(reference, &descriptor).await?;
            if stream.content_length.is_some_and(|len| len > limit) {
                return Ok(None);
            }
            let mut out = BytesMut::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                if out.len() as u64 + chunk.len() as u64 > limit {
                    return Ok(None);
                }
                out.extend_from_slice(&chunk);
            }
            Ok(Some(out.freeze()))
        };
        let bytes = match self.timed(reference, pull).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                return Err(OciError::TooLarge {
                    reference: reference.whole(),
                    limit,
                });
            }
            Err(OciError::Registry { reference, source }) => {
                // The client checks the digest as the bytes arrive.
                return Err(match verification_failure(&source) {
                    Some(actual) => OciError::DigestMismatch { reference, actual },
                    None => OciError::Registry { reference, source },
                });
            }
            Err(e) => return Err(e),
        };
        // And so does floe, against the digest etcd recorded.
        let actual = Digest::of(&bytes);
        if actual != digest {
            return Err(OciError::DigestMismatch {
                reference: reference.whole(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }

    /// Pulls the component of the Wasm artifact `reference`
    /// (`host/repo@sha256:…` or `host/repo:tag`): at most `limit` bytes.
    pub async fn pull_component(&self, reference: &str, limit: u64) -> Result<Bytes, OciError> {
        let parsed: Reference = reference
            .parse()
            .map_err(|_| OciError::BadReference(reference.to_owned()))?;
        self.client
            .store_auth_if_needed(parsed.resolve_registry(), &self.auth)
            .await;
        let pulled = self
            .timed(
                &parsed,
                self.client
                    .pull_manifest_raw(&parsed, &self.auth, &[MANIFEST_MEDIA_TYPE]),
            )
            .await;
        let (body, _digest) = match pulled {
            Err(OciError::Registry { source, .. }) if is_not_found(&source) => {
                return Err(OciError::NotFound(reference.to_owned()));
            }
            other => other?,
        };
        if let Some(expected) = parsed.digest() {
            let actual = Digest::of(&body);
            if actual.to_string() != expected {
                return Err(OciError::DigestMismatch {
                    reference: reference.to_owned(),
                    actual: actual.to_string(),
                });
            }
        }
        let not_wasm = |reason: &str| OciError::NotWasm {
            reference: reference.to_owned(),
            reason: reason.to_owned(),
        };
        let manifest: Manifest =
            serde_json::from_slice(&body).map_err(|e| not_wasm(&e.to_string()))?;
        let layers: Vec<&Descriptor> = manifest
            .layers
            .iter()
            .filter(|l| l.media_type == WASM_LAYER_MEDIA_TYPE)
            .collect();
        let [layer] = layers.as_slice() else {
            return Err(not_wasm("it must have exactly one application/wasm layer"));
        };
        if layer.size > limit {
            return Err(OciError::TooLarge {
                reference: reference.to_owned(),
                limit,
            });
        }
        let digest: Digest = layer
            .digest
            .parse()
            .map_err(|_| not_wasm("its layer digest is not sha256"))?;
        self.pull_verified(&parsed, digest, limit).await
    }
}

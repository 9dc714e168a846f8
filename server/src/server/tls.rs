//! TLS on the listeners: certificate pairs loaded from PEM files, served by
//! rustls (ring) with ALPN `h2` and `http/1.1`, and reloaded when the files
//! change.
//!
//! Each pair is a [`ReloadingKey`]: a rustls certificate resolver holding the
//! current [`CertifiedKey`]. [`ReloadingKey::watch`] checks the files'
//! modification times (and sizes, inodes) every `tls_reload_interval` and loads a
//! changed pair; handshakes after that get the new certificate, connections
//! already open keep theirs. A pair that does not load (unreadable, not PEM,
//! key and certificate that do not match, as happens between two writes of a
//! non-atomic replacement) is logged and the pair in use is kept; it is tried
//! again when the files change again. At startup a pair that does not load
//! is an error naming the file.
//!
//! This module owns no sockets: the listener runs the handshake
//! ([`listener`](super::listener)), in the connection's own task.

use base64::Engine as _;
use parking_lot::RwLock;
use rustls::crypto::ring;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// A TLS certificate pair that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file holds no usable certificate or private key.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The private key is not the certificate's.
    #[error("the private key in {key} does not belong to the certificate in {cert}: {source}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's finding.
        #[source]
        source: rustls::Error,
    },
    /// rustls refused the configuration.
    #[error("building the TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// What identifies one version of a file: its modification time, size and
/// (on Unix) inode. The time alone can miss a rewrite within one clock tick;
/// a file replaced by a rename has a new inode.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some((meta.modified().ok()?, meta.len(), inode))
}

/// A certificate pair as loaded.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The chain and signing key rustls serves.
    pub(crate) key: Arc<CertifiedKey>,
    /// The chain, as PEM (certificates only).
    pub(crate) chain_pem: String,
}

/// Loads the pair in `cert` and `key`.
pub(crate) fn load(cert: &Path, key: &Path) -> Result<Loaded, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let bad = |path: &Path, reason: String| TlsError::Pem {
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(bad(cert, "no CERTIFICATE section".into()));
    }
    let der = match PrivateKeyDer::from_pem_slice(&read(key)?) {
        Ok(der) => der,
        Err(pem::Error::NoItemsFound) => return Err(bad(key, "no PRIVATE KEY section".into())),
        Err(e) => return Err(bad(key, format!("not a PEM private key: {e}"))),
    };
    let signing = ring::sign::any_supported_type(&der)
        .map_err(|e| bad(key, format!("unsupported private key: {e}")))?;
    let chain_pem = chain.iter().map(|c| to_pem(c)).collect();
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|source| TlsError::Mismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
            source,
        })?;
    Ok(Loaded {
        key: Arc::new(certified),
        chain_pem,
    })
}

fn to_pem(cert: &CertificateDer<'_>) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// One certificate pair, served to handshakes and reloaded when its files
/// change.
#[derive(Debug)]
pub(crate) struct ReloadingKey {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' stamps when they were last read.
    seen: RwLock<(Stamp, Stamp)>,
    /// The chain in use, as PEM.
    chain_pem: RwLock<String>,
}

impl ReloadingKey {
    /// Loads the pair; an error names the file at fault.
    pub(crate) fn open(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        let seen = (stamp(cert), stamp(key));
        let loaded = load(cert, key)?;
        Ok(Arc::new(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(loaded.key),
            seen: RwLock::new(seen),
            chain_pem: RwLock::new(loaded.chain_pem),
        }))
    }

    /// The certificate chain in use, as PEM.
    pub(crate) fn chain_pem(&self) -> String {
        self.chain_pem.read().clone()
    }

    /// A rustls acceptor serving this pair, HTTP/2 or HTTP/1.1 by ALPN.
    pub(crate) fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, TlsError> {
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(TlsError::Config)?
                .with_no_client_auth()
                .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Loads the pair again when either file changed since it was last read;
    /// whether a new pair is in use. A pair that does not load is logged and
    /// the one in use kept.
    pub(crate) fn reload_if_changed(&self) -> bool {
        let now = (stamp(&self.cert), stamp(&self.key));
        if *self.seen.read() == now {
            return false;
        }
        // Stamped before reading: a change during the read is seen next time.
        *self.seen.write() = now;
        match load(&self.cert, &self.key) {
            Ok(loaded) => {
                *self.current.write() = loaded.key;
                *self.chain_pem.write() = loaded.chain_pem;
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(err) => {
                tracing::warn!(%err, "TLS files changed but do not load; keeping the certificate in use");
                false
            }
        }
    }

    /// Checks the files every `interval` until `stop` turns true, calling
    /// `changed` (on a blocking thread) after each reload.
    pub(crate) async fn watch(
        self: Arc<Self>,
        interval: Duration,
        mut stop: watch::Receiver<bool>,
        changed: impl Fn(&Self) + Send + Sync + 'static,
    ) {
        let changed = Arc::new(changed);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
            let (this, changed) = (self.clone(), changed.clone());
            // A few stat calls and, rarely, two small reads and a write.
            let check = tokio::task::spawn_blocking(move || {
                if this.reload_if_changed() {
                    changed(&this);
                }
            });
            if let Err(err) = check.await {
                tracing::warn!(%err, "TLS reload check failed");
            }
        }
    }
}

impl ResolvesServerCert for ReloadingKey {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A_CERT: &str = include_str!("testdata/a-cert.pem");
    const A_KEY: &str = include_str!("testdata/a-key.pem");
    const B_CERT: &str = include_str!("testdata/b-cert.pem");
    const B_KEY: &str = include_str!("testdata/b-key.pem");

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("floe-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write(dir: &Path, cert: &str, key: &str) -> (PathBuf, PathBuf) {
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    }

    fn served(key: &ReloadingKey) -> Vec<u8> {
        key.current.read().cert[0].as_ref().to_vec()
    }

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec()
    }

    #[test]
    fn errors_name_the_file_at_fault() {
        let dir = temp_dir("errors");
        let (cert, key) = write(&dir, A_CERT, B_KEY);
        let err = load(&cert, &key).unwrap_err();
        assert!(matches!(err, TlsError::Mismatch { .. }), "{err}");
        assert!(err.to_string().contains("key.pem"), "{err}");

        let missing = dir.join("missing.pem");
        let err = load(&missing, &key).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");

        let (cert, key) = write(&dir, A_KEY, A_KEY);
        let err = load(&cert, &key).unwrap_err();
        assert!(err.to_string().contains("cert.pem"), "{err}");
        let (cert, key) = write(&dir, A_CERT, A_CERT);
        let err = load(&cert, &key).unwrap_err();
        assert!(err.to_string().contains("key.pem"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_changed_pair_is_served_and_a_bad_one_is_not() {
        let dir = temp_dir("reload");
        let (cert, key) = write(&dir, A_CERT, A_KEY);
        let pair = ReloadingKey::open(&cert, &key).unwrap();
        assert_eq!(served(&pair), der(A_CERT));
        assert_eq!(der(&pair.chain_pem()), der(A_CERT));
        assert!(!pair.reload_if_changed());

        // Half replaced: the new certificate with the old key.
        std::fs::write(&cert, B_CERT).unwrap();
        std::fs::write(&key, format!("{A_KEY}\n")).unwrap();
        assert!(!pair.reload_if_changed());
        assert_eq!(served(&pair), der(A_CERT));

        std::fs::write(&key, B_KEY).unwrap();
        assert!(pair.reload_if_changed());
        assert_eq!(served(&pair), der(B_CERT));
        assert_eq!(der(&pair.chain_pem()), der(B_CERT));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The durable function store: component bytes by digest, compiled artifacts,
//! and one record per function, all under the data directory.
//!
//! ```text
//! data_dir/
//!   token                       the bootstrap (admin) control-plane token (0600)
//!   tokens.json                 tokens created over the API: scope, hashed secret
//!   control.url                 where the control plane listens (for the CLI)
//!   control.pem                 the certificates it serves, when over TLS (for the CLI)
//!   functions/{name}.json       FunctionRecord: versions, active, settings
//!   blobs/{hex}.wasm            uploaded component bytes, named by digest
//!   artifacts/{engine}/{hex}.cwasm  compiled code for one engine build
//!   artifacts/{engine}/{hex}.sum    digest of that .cwasm, written after it
//!   tmp/                        temporary files; emptied at start
//! ```
//!
//! Invariants: every file is written with `fsio::write_atomic`, so a crash
//! leaves the old file or the new one. A deploy writes its blob and artifact
//! before the record that names them, so a record never names a missing
//! blob; [`FunctionStore::collect_garbage`] removes what no record names
//! (what a cut-off deploy left). An artifact is only handed out after its
//! digest has been checked against its `.sum` file. All methods block: call
//! them from `spawn_blocking` on async paths.

mod digest;
pub(crate) mod fsio;
mod record;
pub mod secrets;
mod token;

pub use digest::{BadDigest, Digest};
pub use record::{FunctionRecord, InitMode, OciRecord, PreinitRecord, VersionRecord};
pub use secrets::{OpenError, SecretKey};
pub use token::{TokenRecord, TokenScope};

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A record file does not parse.
    #[error("function record {path} is corrupt: {source}")]
    CorruptRecord {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The token file does not parse.
    #[error("token file {path} is corrupt: {source}")]
    CorruptTokens {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored component's bytes do not match its digest.
    #[error("stored component {digest} is corrupt (its bytes hash to {actual})")]
    CorruptBlob {
        /// The expected digest.
        digest: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// Another server holds the data directory.
    #[error("the data directory {path} is in use by another floe server{}", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked {
        /// The data directory.
        path: PathBuf,
        /// The other server's process id, as it wrote it.
        pid: Option<u32>,
    },
    /// A stored component was removed (by a collection) while in use.
    #[error("stored component {0} was removed meanwhile; deploy again")]
    Missing(Digest),
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// The durable store under one data directory.
#[derive(Debug)]
pub struct FunctionStore {
    root: PathBuf,
    /// Held (locked) while the store is open: one server per directory.
    _lock: fs::File,
}

const LOCK_FILE: &str = "lock";

/// Takes the data directory's lock, and writes this process's id in the
/// lock file for whoever finds it taken.
fn lock(root: &Path) -> Result<fs::File, StoreError> {
    use std::io::{Read, Seek, Write};
    let path = root.join(LOCK_FILE);
    let mut options = fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path).map_err(io_err("opening", &path))?;
    // A server embedded in this process and just dropped may still be
    // letting go (its background tasks end on their own): wait a little for
    // it, never for another process.
    let patience = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.rewind();
                let _ = file.read_to_string(&mut text);
                let pid = text.trim().parse().ok();
                if pid == Some(std::process::id()) && std::time::Instant::now() < patience {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    continue;
                }
                return Err(StoreError::Locked {
                    path: root.to_owned(),
                    pid,
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err("locking", &path)(e)),
        }
    }
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .and_then(|()| file.sync_all());
    written.map_err(io_err("writing", &path))?;
    Ok(file)
}

const TOKEN_FILE: &str = "token";
const TOKENS_FILE: &str = "tokens.json";
const CONTROL_URL_FILE: &str = "control.url";
const CONTROL_CERT_FILE: &str = "control.pem";

impl FunctionStore {
    /// Opens (creating if needed) the store at `root`, and empties its
    /// temporary directory.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        fsio::create_private_dir(root).map_err(io_err("creating", root))?;
        #[cfg(unix)]
        {
            // Payloads, components and the token are the owner's alone.
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(root, fs::Permissions::from_mode(0o700))
                .map_err(io_err("restricting", root))?;
        }
        let store = Self {
            root: root.to_owned(),
            _lock: lock(root)?,
        };
        for dir in ["functions", "blobs", "artifacts", "tmp"] {
            let path = root.join(dir);
            fsio::create_private_dir(&path).map_err(io_err("creating", &path))?;
        }
        let tmp = store.tmp_dir();
        for entry in fs::read_dir(&tmp).map_err(io_err("listing", &tmp))? {
            let path = entry.map_err(io_err("listing", &tmp))?.path();
            let _ = fs::remove_file(&path);
        }
        Ok(store)
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn write(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        fsio::write_atomic(&self.tmp_dir(), path, bytes).map_err(io_err("writing", path))
    }

    fn record_path(&self, name: &str) -> PathBuf {
        self.root.join("functions").join(format!("{name}.json"))
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(format!("{}.wasm", digest.hex()))
    }

    fn artifact_dir(&self, engine: &str) -> PathBuf {
        self.root.join("artifacts").join(engine)
    }

    /// Every function record, in name order.
    pub fn load_records(&self) -> Result<Vec<FunctionRecord>, StoreError> {
        let dir = self.root.join("functions");
        let mut records = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("listing", &dir))? {
            let path = entry.map_err(io_err("listing", &dir))?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let text = fs::read(&path).map_err(io_err("reading", &path))?;
            let record: FunctionRecord = serde_json::from_slice(&text)
                .map_err(|source| StoreError::CorruptRecord { path, source })?;
            records.push(record);
        }
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(records)
    }

    /// Writes (replaces) a function's record.
    pub fn write_record(&self, record: &FunctionRecord) -> Result<(), StoreError> {
        let path = self.record_path(&record.name);
        let json =
            serde_json::to_vec_pretty(record).map_err(|source| StoreError::CorruptRecord {
                path: path.clone(),
                source,
            })?;
        self.write(&path, &json)
    }

    /// Removes a function's record.
    pub fn delete_record(&self, name: &str) -> Result<(), StoreError> {
        let path = self.record_path(name);
        fsio::remove_durably(&path).map_err(io_err("removing", &path))
    }

    /// Stores component bytes under their digest (a no-op when an intact
    /// copy is already there; a damaged one is replaced).
    pub fn put_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.blob_path(digest);
        if fs::read(&path).is_ok_and(|existing| Digest::of(&existing) == *digest) {
            return Ok(());
        }
        self.write(&path, bytes)
    }

    /// Whether component bytes (of `len` bytes, when given) are stored under
    /// `digest`; by their length only: reading them checks their digest.
    pub fn has_blob(&self, digest: &Digest, len: Option<u64>) -> bool {
        fs::metadata(self.blob_path(digest)).is_ok_and(|m| len.is_none_or(|len| m.len() == len))
    }

    /// Reads component bytes, checking them against their digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        let bytes = fs::read(&path).map_err(io_err("reading", &path))?;
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(StoreError::CorruptBlob {
                digest: *digest,
                actual,
            });
        }
        Ok(bytes)
    }

    /// Stores the compiled artifact of component `digest` for the engine
    /// build `engine`, followed by its checksum file.
    pub fn put_artifact(
        &self,
        engine: &str,
        digest: &Digest,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let dir = self.artifact_dir(engine);
        fsio::create_private_dir(&dir).map_err(io_err("creating", &dir))?;
        let hex = digest.hex();
        self.write(&dir.join(format!("{hex}.cwasm")), bytes)?;
        self.write(
            &dir.join(format!("{hex}.sum")),
            Digest::of(bytes).to_string().as_bytes(),
        )
    }

    /// The compiled artifact of component `digest` for engine build `engine`,
    /// if one is stored and its bytes match its checksum. A missing, torn or
    /// corrupt artifact gives `None` (and is logged): the caller recompiles.
    pub fn read_artifact(&self, engine: &str, digest: &Digest) -> Option<Vec<u8>> {
        let dir = self.artifact_dir(engine);
        let hex = digest.hex();
        let sum_path = dir.join(format!("{hex}.sum"));
        let expected: Digest = fs::read_to_string(&sum_path).ok()?.parse().ok()?;
        let path = dir.join(format!("{hex}.cwasm"));
        let bytes = fs::read(&path).ok()?;
        let actual = Digest::of(&bytes);
        if actual != expected {
            tracing::warn!(path = %path.display(), %expected, %actual, "compiled artifact is corrupt; it will be recompiled");
            return None;
        }
        Some(bytes)
    }

    /// Removes blobs and artifacts that no record names, artifacts of other
    /// engine builds, and leftovers of cut-off writes. Returns how many files
    /// were removed.
    pub fn collect_garbage(
        &self,
        live: &HashSet<Digest>,
        engine: &str,
    ) -> Result<usize, StoreError> {
        let mut removed = 0;
        let blobs = self.root.join("blobs");
        for entry in fs::read_dir(&blobs).map_err(io_err("listing", &blobs))? {
            let path = entry.map_err(io_err("listing", &blobs))?.path();
            if !names_live_digest(&path, live) {
                fsio::remove_durably(&path).map_err(io_err("removing", &path))?;
                removed += 1;
            }
        }
        let artifacts = self.root.join("artifacts");
        for entry in fs::read_dir(&artifacts).map_err(io_err("listing", &artifacts))? {
            let dir = entry.map_err(io_err("listing", &artifacts))?.path();
            if dir.file_name().is_some_and(|n| n != engine) {
                fs::remove_dir_all(&dir).map_err(io_err("removing", &dir))?;
                removed += 1;
                continue;
            }
            for file in fs::read_dir(&dir).map_err(io_err("listing", &dir))? {
                let path = file.map_err(io_err("listing", &dir))?.path();
                if !names_live_digest(&path, live) {
                    fsio::remove_durably(&path).map_err(io_err("removing", &path))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// The bootstrap token from `path` (a file another party writes, such
    /// as a mounted secret); it must hold at least 16 characters.
    pub fn token_from(path: &Path) -> Result<String, StoreError> {
        let token = fs::read_to_string(path).map_err(io_err("reading", path))?;
        let token = token.trim();
        if token.len() < 16 || token.contains(char::is_whitespace) {
            return Err(io_err("reading", path)(io::Error::new(
                io::ErrorKind::InvalidData,
                "the token file must hold one token of at least 16 characters",
            )));
        }
        Ok(token.to_owned())
    }

    /// The control-plane token, created (0600) on first use. The flag says
    /// whether it was created now.
    pub fn token(&self) -> Result<(String, bool), StoreError> {
        let path = self.root.join(TOKEN_FILE);
        match fs::read_to_string(&path) {
            Ok(t) if !t.trim().is_empty() => {
                // Whatever happened to the file since, only its owner reads it.
                set_owner_only(&path).map_err(io_err("restricting", &path))?;
                return Ok((t.trim().to_owned(), false));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("reading", &path)(e)),
        }
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw)
            .map_err(|e| io_err("generating token for", &path)(io::Error::other(e.to_string())))?;
        let token = hex::encode(raw);
        fsio::write_atomic(&self.tmp_dir(), &path, token.as_bytes())
            .map_err(io_err("writing", &path))?;
        Ok((token, true))
    }

    /// The tokens created over the API (none when the file does not exist).
    pub fn load_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let path = self.root.join(TOKENS_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("reading", &path)(e)),
        };
        let file: token::TokensFile = serde_json::from_slice(&bytes)
            .map_err(|source| StoreError::CorruptTokens { path, source })?;
        Ok(file.tokens)
    }

    /// Replaces the stored tokens with `tokens`.
    pub fn write_tokens(&self, tokens: &[TokenRecord]) -> Result<(), StoreError> {
        let path = self.root.join(TOKENS_FILE);
        let file = token::TokensFile {
            tokens: tokens.to_vec(),
        };
        let json =
            serde_json::to_vec_pretty(&file).map_err(|source| StoreError::CorruptTokens {
                path: path.clone(),
                source,
            })?;
        self.write(&path, &json)
    }

    /// Records where the control plane listens, for the CLI.
    pub fn write_control_url(&self, url: &str) -> Result<(), StoreError> {
        self.write(&self.root.join(CONTROL_URL_FILE), url.as_bytes())
    }

    /// Records the certificate chain the control plane serves (PEM), for the
    /// CLI to trust; `None` when it serves plain HTTP.
    pub fn write_control_cert(&self, pem: Option<&str>) -> Result<(), StoreError> {
        let path = control_cert_file(&self.root);
        match pem {
            Some(pem) => self.write(&path, pem.as_bytes()),
            None => match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("removing", &path)(e)),
                _ => Ok(()),
            },
        }
    }
}

/// Where a server in `data_dir` records the certificates its control plane
/// serves over TLS (absent when it serves plain HTTP).
pub fn control_cert_file(data_dir: &Path) -> PathBuf {
    data_dir.join(CONTROL_CERT_FILE)
}

/// Reads the control-plane URL and token a server left in `data_dir`.
pub fn read_client_credentials(data_dir: &Path) -> io::Result<(String, String)> {
    let url = fs::read_to_string(data_dir.join(CONTROL_URL_FILE))?;
    let token = fs::read_to_string(data_dir.join(TOKEN_FILE))?;
    Ok((url.trim().to_owned(), token.trim().to_owned()))
}

fn names_live_digest(path: &Path, live: &HashSet<Digest>) -> bool {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|hex| hex.parse::<Digest>().ok())
        .is_some_and(|d| live.contains(&d))
}

#[cfg(unix)]
fn set_owner_only(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn set_owner_only(_path: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_root(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("floe-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn blobs_and_artifacts_are_verified_and_collected() {
        let root = temp_root("gc");
        let store = FunctionStore::open(&root).unwrap();
        let a = b"component a".to_vec();
        let b = b"component b".to_vec();
        let (da, db) = (Digest::of(&a), Digest::of(&b));
        store.put_blob(&da, &a).unwrap();
        store.put_blob(&db, &b).unwrap();
        store.put_artifact("e1", &da, b"code a").unwrap();
        assert_eq!(store.read_blob(&da).unwrap(), a);
        assert_eq!(store.read_artifact("e1", &da).unwrap(), b"code a");
        assert!(store.read_artifact("e2", &da).is_none());

        // A corrupted artifact is never handed out.
        let cwasm = root
            .join("artifacts/e1")
            .join(format!("{}.cwasm", da.hex()));
        fs::write(&cwasm, b"code A").unwrap();
        assert!(store.read_artifact("e1", &da).is_none());

        // A corrupted blob is an error, not bytes.
        fs::write(root.join("blobs").join(format!("{}.wasm", db.hex())), b"x").unwrap();
        assert!(matches!(
            store.read_blob(&db),
            Err(StoreError::CorruptBlob { .. })
        ));

        store.put_artifact("old-engine", &da, b"old").unwrap();
        let live = HashSet::from([da]);
        let removed = store.collect_garbage(&live, "e1").unwrap();
        assert_eq!(removed, 2, "blob b and the old engine's directory");
        assert!(store.read_blob(&da).is_ok());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn token_is_created_once_and_kept() {
        let root = temp_root("token");
        let store = FunctionStore::open(&root).unwrap();
        let (t1, created) = store.token().unwrap();
        assert!(created);
        assert_eq!(t1.len(), 64);
        let (t2, created) = store.token().unwrap();
        assert!(!created);
        assert_eq!(t1, t2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(root.join(TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn created_tokens_are_stored_owner_only_and_read_back() {
        let root = temp_root("tokens");
        let store = FunctionStore::open(&root).unwrap();
        assert!(store.load_tokens().unwrap().is_empty());
        let record = TokenRecord {
            id: "0a1b2c3d".into(),
            secret_sha256: "ab".repeat(32),
            scope: TokenScope::Deploy,
            prefix: Some("team-a-".into()),
            name: "ci".into(),
            created_ms: 7,
        };
        store.write_tokens(std::slice::from_ref(&record)).unwrap();
        assert_eq!(store.load_tokens().unwrap(), [record]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(root.join(TOKENS_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::write(root.join(TOKENS_FILE), b"{").unwrap();
        assert!(matches!(
            store.load_tokens(),
            Err(StoreError::CorruptTokens { .. })
        ));
        fs::remove_dir_all(&root).unwrap();
    }
}

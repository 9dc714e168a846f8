//! What triggers remember across restarts, in `<data_dir>/triggers/`: a
//! cron trigger's last fire time (so a run is never doubled and missed runs
//! are known), and an MQTT trigger's session fingerprint (so that a changed
//! subscription starts a clean broker session).

use crate::store::fsio;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

/// A cron trigger's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct CronMark {
    /// The schedule it was kept for.
    pub(super) schedule: String,
    /// Its time zone.
    pub(super) time_zone: String,
    /// The scheduled time of the last run fired, ms since the Unix epoch.
    pub(super) last_ms: u64,
}

/// The marks of every trigger.
#[derive(Clone, Debug)]
pub(super) struct Marks {
    dir: PathBuf,
    tmp: PathBuf,
}

impl Marks {
    /// The marks under `data_dir`.
    pub(super) fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("triggers"),
            tmp: data_dir.join("tmp"),
        }
    }

    fn path(&self, function: &str, trigger: &str, ext: &str) -> PathBuf {
        self.dir.join(function).join(format!("{trigger}.{ext}"))
    }

    fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        if let Some(parent) = path.parent() {
            fsio::create_private_dir(&self.dir)?;
            fsio::create_private_dir(parent)?;
        }
        fsio::write_atomic(&self.tmp, path, bytes)
    }

    /// The cron record of `function`'s `trigger`, if one was kept.
    pub(super) fn cron(&self, function: &str, trigger: &str) -> Option<CronMark> {
        let bytes = std::fs::read(self.path(function, trigger, "cron")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Keeps the cron record (durably).
    pub(super) fn set_cron(
        &self,
        function: &str,
        trigger: &str,
        mark: &CronMark,
    ) -> io::Result<()> {
        let bytes = serde_json::to_vec(mark).map_err(io::Error::other)?;
        self.write(&self.path(function, trigger, "cron"), &bytes)
    }

    /// The session fingerprint kept for an MQTT trigger.
    pub(super) fn session(&self, function: &str, trigger: &str) -> Option<String> {
        std::fs::read_to_string(self.path(function, trigger, "session")).ok()
    }

    /// Keeps the session fingerprint.
    pub(super) fn set_session(
        &self,
        function: &str,
        trigger: &str,
        fingerprint: &str,
    ) -> io::Result<()> {
        self.write(
            &self.path(function, trigger, "session"),
            fingerprint.as_bytes(),
        )
    }
}

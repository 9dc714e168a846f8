//! Crash-safe file writes: a file is written to a temporary name, synced,
//! renamed into place, and its directory synced. A reader (or a restart after
//! SIGKILL) sees the old file or the new one, never a torn one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Creates `path` and its missing parents, readable by the owner only
/// (0700 on Unix).
pub(crate) fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// Writes `bytes` to `path` atomically and durably, readable by the owner
/// only (0600 on Unix) from the moment the file exists. `tmp_dir` must be on
/// the same file system as `path`.
pub(crate) fn write_atomic(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_renamed(tmp_dir, path, bytes, true)?;
    sync_parent(path)
}

/// Writes `bytes` to `path` atomically (a reader sees the old file or the
/// new one) but not durably: the caller makes a batch of these durable with
/// one [`sync_file_system`]. Until then a crash may leave the new file
/// empty or short, so readers after a restart must check what they read.
pub(crate) fn write_unsynced(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_renamed(tmp_dir, path, bytes, false)
}

/// Writes `bytes` to a temporary file in `tmp_dir` (0600), syncs it when
/// `sync`, and renames it to `path`.
fn write_renamed(tmp_dir: &Path, path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    let tmp = tmp_dir.join(format!(
        "{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        if sync {
            f.sync_all()?;
        }
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Makes everything written so far on the file system holding `dir`
/// durable: file contents, renames and unlinks (`syncfs(2)`; elsewhere than
/// Linux, `sync(2)`). One call makes a whole batch of
/// [`write_unsynced`] durable.
pub(crate) fn sync_file_system(dir: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let handle = File::open(dir)?;
        // SAFETY: syncfs(2) on a file descriptor we own, open for the call.
        #[expect(unsafe_code, reason = "syncfs(2) has no wrapper in std")]
        let rc = unsafe { libc::syncfs(handle.as_raw_fd()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        // SAFETY: sync(2) takes no arguments and cannot fail.
        #[expect(unsafe_code, reason = "sync(2) has no wrapper in std")]
        unsafe {
            libc::sync();
        }
        Ok(())
    }
}

/// Removes `path` (if present) and syncs its directory.
pub(crate) fn remove_durably(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => sync_parent(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Syncs the directory holding `path`, so that a rename or unlink in it
/// survives a crash.
pub(crate) fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

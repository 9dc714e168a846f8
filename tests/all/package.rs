//! The Debian package (`scripts/package-deb`): installed with dpkg into a
//! throwaway root, its systemd unit checked with `systemd-analyze`, its
//! binary run with the packaged configuration under the unit's system-call
//! filter through the core set, then upgraded, removed and purged as dpkg
//! does it.
//!
//! The package is `FLOE_TEST_DEB` when set (the test command builds it
//! before the tests), else this test builds it (a release build).

use crate::core_set;
use crate::harness::Server;
use anyhow::{Context, Result, bail, ensure};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The built package, when the test command made it.
const DEB_ENV: &str = "FLOE_TEST_DEB";

/// Exposure `systemd-analyze security` may give the unit at most (0 is
/// fully sandboxed, 10 not at all; 2 and under reads "OK").
const MAX_EXPOSURE: f64 = 2.0;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new(".."))
}

/// Runs a command; fails with its output unless it succeeds; returns stdout.
fn run(command: &mut Command) -> Result<String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn package() -> Result<PathBuf> {
    if let Some(deb) = std::env::var_os(DEB_ENV) {
        return Ok(PathBuf::from(deb));
    }
    let out = run(Command::new(repo().join("scripts/package-deb")).current_dir(repo()))?;
    let deb = out.lines().last().context("package-deb printed no path")?;
    Ok(repo().join(deb.trim()))
}

/// dpkg on the throwaway root: maintainer scripts run outside a chroot with
/// `DPKG_ROOT` set, and the root's database knows no libc6.
fn dpkg(root: &Path, args: &[&str]) -> Result<String> {
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            "--force-not-root",
            "--force-depends",
            "--log=/dev/null",
        ])
        .args(args))
}

fn empty_root() -> Result<tempfile::TempDir> {
    let root = tempfile::Builder::new().prefix("floe-deb-").tempdir()?;
    let admin = root.path().join("var/lib/dpkg");
    std::fs::create_dir_all(admin.join("info"))?;
    std::fs::create_dir_all(admin.join("updates"))?;
    std::fs::write(admin.join("status"), "")?;
    Ok(root)
}

/// `systemd-analyze verify` on the installed unit (its ExecStart pointed at
/// the installed binary), and its exposure by `systemd-analyze security`.
fn check_unit(root: &Path) -> Result<()> {
    if run(Command::new("systemd-analyze").arg("--version")).is_err() {
        eprintln!("systemd-analyze is not installed: the unit is not verified");
        return Ok(());
    }
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/floe.service"))?;
    ensure!(unit.contains("ExecStart=/usr/bin/floe --config /etc/floe/floe.toml serve"));
    let dir = tempfile::tempdir()?;
    let copy = dir.path().join("floe.service");
    let binary = root.join("usr/bin/floe");
    std::fs::write(
        &copy,
        unit.replace(
            "ExecStart=/usr/bin/floe",
            &format!("ExecStart={}", binary.display()),
        ),
    )?;
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );

    let report = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&copy))?;
    let exposure: f64 = report
        .lines()
        .find_map(|l| l.split("Overall exposure level for floe.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .context("no overall exposure level")?
        .parse()?;
    ensure!(exposure <= MAX_EXPOSURE, "exposure {exposure}:\n{report}");
    Ok(())
}

/// A script that starts the installed binary as the unit does: with the
/// packaged configuration, under the unit's system-call filter.
fn sandboxed_floe(root: &Path) -> Result<PathBuf> {
    let script = root.join("floe-as-the-unit");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec {} {} {} --config {} \"$@\"\n",
            repo().join("scripts/seccomp-exec").display(),
            root.join("lib/systemd/system/floe.service").display(),
            root.join("usr/bin/floe").display(),
            root.join("etc/floe/floe.toml").display(),
        ),
    )?;
    run(Command::new("chmod").arg("0755").arg(&script))?;
    Ok(script)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_debian_package_installs_runs_sandboxed_upgrades_and_purges() -> Result<()> {
    let deb = package()?;
    let root = empty_root()?;
    let root = root.path();
    let arch = run(Command::new("dpkg").arg("--print-architecture"))?;
    let field = |name: &str| run(Command::new("dpkg-deb").arg("--field").arg(&deb).arg(name));
    assert_eq!(field("Architecture")?.trim(), arch.trim());
    assert!(
        field("Depends")?.starts_with("libc6 (>= 2."),
        "{}",
        field("Depends")?
    );

    dpkg(root, &["--install", &deb.display().to_string()])?;
    let config = std::fs::read_to_string(root.join("etc/floe/floe.toml"))?;
    assert!(config.contains("\ndata_dir = \"/var/lib/floe\"\n"));
    let conffiles = run(Command::new("dpkg-query")
        .arg(format!("--root={}", root.display()))
        .args(["--show", "--showformat=${Conffiles}", "floe"]))?;
    assert!(conffiles.contains("/etc/floe/floe.toml "), "{conffiles}");
    check_unit(root)?;

    // The binary as the service runs it, with its lines for journald.
    let server = Server::builder()
        .binary(&sandboxed_floe(root)?.display().to_string())
        .env("FLOE_LOG_FORMAT", "journald")
        .start()?;
    let mut server = core_set::run(server).await?;
    let status = server.terminate(Duration::from_secs(30))?;
    assert!(status.success(), "{status}");
    let log = server.log();
    assert!(log.lines().any(|l| l.starts_with("<6>")), "{log}");
    for line in log.lines().filter(|l| !l.is_empty()) {
        let priority = line.strip_prefix('<').and_then(|l| l.split_once('>'));
        assert!(
            priority.is_some_and(|(p, _)| p.parse::<u8>().is_ok_and(|p| p <= 7)),
            "a line without a priority: {line}"
        );
        assert!(
            !line.contains('\u{1b}'),
            "colour codes for journald: {line}"
        );
    }

    // An upgrade keeps the data directory and a changed configuration.
    let data = root.join("var/lib/floe");
    std::fs::create_dir_all(&data)?;
    std::fs::write(data.join("kept"), "functions live here")?;
    std::fs::write(
        root.join("etc/floe/floe.toml"),
        format!("{config}# changed here\n"),
    )?;
    dpkg(root, &["--install", &deb.display().to_string()])?;
    assert!(data.join("kept").exists());
    assert!(
        std::fs::read_to_string(root.join("etc/floe/floe.toml"))?.ends_with("# changed here\n")
    );

    // Removing keeps configuration and data; purging takes both.
    dpkg(root, &["--remove", "floe"])?;
    assert!(!root.join("usr/bin/floe").exists());
    assert!(root.join("etc/floe/floe.toml").exists());
    assert!(data.join("kept").exists());
    dpkg(root, &["--purge", "floe"])?;
    assert!(!root.join("etc/floe/floe.toml").exists());
    assert!(!data.exists());
    Ok(())
}

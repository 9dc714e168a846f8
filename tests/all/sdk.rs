//! Building functions with the language SDKs, as their authors do.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root.
pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_owned)
}

/// An SDK's build command (`scripts/setup` installs each).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Sdk {
    /// `floe-py build`, in `target/py-sdk`.
    Python,
    /// `floe-js build`, run from `sdk/js`.
    Js,
}

impl Sdk {
    fn command(self) -> Command {
        match self {
            Sdk::Python => Command::new(repo().join("target/py-sdk/bin/floe-py")),
            Sdk::Js => {
                let mut command = Command::new("node");
                command.arg(repo().join("sdk/js/src/cli.js"));
                command
            }
        }
    }

    /// Runs `build source -o output`; whether it succeeded, and its stderr.
    pub(crate) fn build(self, source: &Path, output: &Path) -> Result<(bool, String)> {
        self.build_with(source, output, &[])
    }

    /// Runs `build source -o output` with more arguments (`--wasi p3`).
    pub(crate) fn build_with(
        self,
        source: &Path,
        output: &Path,
        args: &[&str],
    ) -> Result<(bool, String)> {
        let done = self
            .command()
            .arg("build")
            .args(args)
            .arg(source)
            .arg("-o")
            .arg(output)
            .output()
            .with_context(|| {
                format!("running the {self:?} SDK's build (scripts/setup installs it)")
            })?;
        Ok((
            done.status.success(),
            String::from_utf8_lossy(&done.stderr).into_owned(),
        ))
    }

    /// Builds `source` into `output`, failing with the build's words.
    pub(crate) fn build_ok(self, source: &Path, output: &Path) -> Result<String> {
        let (ok, stderr) = self.build(source, output)?;
        if !ok {
            bail!("{self:?} build of {} failed:\n{stderr}", source.display());
        }
        Ok(output.display().to_string())
    }
}

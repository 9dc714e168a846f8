//! Deploys: a new version from uploaded bytes (validated, compiled, `init`
//! run or snapshotted, stored, activated), or from bytes deployed before,
//! whose compiled code and `init` outcome are reused.

use super::gc::prune_versions;
use super::{
    FunctionName, MAX_CONFLICTS, Registry, RegistryError, Revision, VersionFiles, run_to_completion,
};
use crate::clock::unix_ms;
use crate::config::FunctionSettings;
use crate::preinit;
use crate::store::{Digest, FunctionRecord, PreinitRecord, VersionRecord};
use bytes::Bytes;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use wasmtime::component::Component;

/// The result of a deploy or rollback.
#[derive(Debug, Clone, Serialize)]
pub struct Deployed {
    /// The function.
    pub name: String,
    /// The version now active.
    pub version: u64,
    /// Its component digest.
    pub digest: Digest,
    /// Its component size in bytes.
    pub size: u64,
    /// Time spent compiling it in this deploy (0 when nothing was compiled).
    pub compile_ms: u64,
    /// How its instances are initialized: `snapshot`, `instance` or `none`.
    pub init: &'static str,
    /// How long `init` took at deploy, in milliseconds.
    pub init_ms: u64,
    /// Why `init` runs per instance although a snapshot was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_reason: Option<String>,
    /// Whether a new version was created (`false`: the bytes were already
    /// the active version).
    #[serde(skip)]
    pub created: bool,
}

impl Deployed {
    pub(super) fn new(
        name: &FunctionName,
        version: &VersionRecord,
        compile_ms: u64,
        created: bool,
    ) -> Self {
        Self {
            name: name.to_string(),
            version: version.version,
            digest: version.digest,
            size: version.size,
            compile_ms,
            init: version.preinit.mode.name(),
            init_ms: version.preinit.init_ms,
            init_reason: version.preinit.reason.clone(),
            created,
        }
    }
}

/// The component that serves a new version.
pub(super) enum Serving {
    /// The uploaded component (with its artifact, when it was compiled now).
    Original {
        component: Component,
        artifact: Option<Vec<u8>>,
    },
    /// A snapshot taken after its `init`.
    Snapshot(preinit::Snapshot),
    /// A component already stored and compiled for another version with
    /// the same digest (serving from the component named): nothing to write
    /// but the record.
    Stored(Digest),
}

/// What an earlier deploy of the same component settled, reusable by a new
/// deploy with the same memory limit and `preinit` setting: the component
/// that serves (the upload or its snapshot), how `init` runs, and the hooks.
struct Settled {
    serving: Digest,
    preinit: PreinitRecord,
    declared_hooks: Option<Vec<String>>,
}

impl Registry {
    /// Deploys `bytes` as a new version of `name` (creating the function),
    /// with `settings` applied on top of the function's current settings.
    /// With `if_match`, only if the active version has that digest.
    pub async fn deploy(
        self: &Arc<Self>,
        name: &FunctionName,
        bytes: Bytes,
        settings: &[(String, String)],
        if_match: Option<&str>,
    ) -> Result<Deployed, RegistryError> {
        let this = self.clone();
        let (name, settings) = (name.clone(), settings.to_vec());
        let if_match = if_match.map(str::to_owned);
        run_to_completion(async move { this.deploy_now(name, bytes, settings, if_match).await })
            .await
    }

    async fn deploy_now(
        &self,
        name: FunctionName,
        bytes: Bytes,
        settings: Vec<(String, String)>,
        if_match: Option<String>,
    ) -> Result<Deployed, RegistryError> {
        let expected = if_match
            .map(|s| {
                s.parse::<Digest>()
                    .map_err(|_| RegistryError::BadPrecondition(s.clone()))
            })
            .transpose()?;
        let name_lock = self.name_lock(&name);
        let _guard = name_lock.lock().await;

        let (record, revision) = self.base(&name).await?;
        let active = record
            .as_ref()
            .and_then(FunctionRecord::active_version)
            .cloned();
        check_precondition(expected, active.as_ref())?;
        let new_settings = self.settings_with(&name, record.as_ref(), &settings)?;

        let digest = Digest::of(&bytes);
        // The same bytes as the serving version: nothing to compile or store.
        // (A function that cannot load is redeployed in full, to repair it.)
        if let (Some(record), Some(active)) = (&record, &active)
            && active.digest == digest
            && self
                .get(name.as_str())
                .is_some_and(|f| f.version == active.version)
        {
            if let Some(current) = self.get(name.as_str()) {
                self.check_concurrency(&current.runnable.prepared, &new_settings, &settings)?;
            }
            if new_settings != record.settings {
                self.reconfigure_locked(&name, record.clone(), revision, new_settings)
                    .await?;
            }
            return Ok(Deployed::new(&name, active, 0, false));
        }
        // A new name is reserved for the whole deploy, so that concurrent
        // deploys of different new names cannot overshoot the limit.
        let _reserved = match record {
            Some(_) => None,
            None => Some(self.reserve_new_function()?),
        };

        if let Some(settled) = self.settled(digest, &new_settings)
            && let Some(deployed) = self
                .redeploy_settled(
                    &name,
                    (record.clone(), revision),
                    (&new_settings, &settings),
                    expected,
                    &bytes,
                    digest,
                    settled,
                )
                .await?
        {
            return Ok(deployed);
        }

        let size = bytes.len() as u64;
        let (component, artifact, compile_ms) = match self.components.get(&digest) {
            Some((component, _)) => (component, None, 0),
            None => {
                let compiled = self.engine.compile(bytes.clone()).await?;
                let ms = compiled.compile_time.as_millis() as u64;
                (compiled.component, Some(compiled.artifact), ms)
            }
        };
        let mut prepared = self.engine.prepare(&component)?;
        self.check_concurrency(&prepared, &new_settings, &settings)?;
        let declared_hooks = crate::engine::declared_hooks(&bytes);
        prepared.hooks.restrict(declared_hooks.as_deref());

        // The number this version would get now; another node deploying at
        // the same time may take it, and then the commit renumbers it.
        let candidate = record.as_ref().map_or(1, |r| r.next_version);
        let initialized = preinit::initialize(
            &self.engine,
            name.as_arc(),
            candidate,
            &bytes,
            prepared,
            preinit::InitSettings {
                settings: &new_settings,
                config: self.function_config(&name, &new_settings),
            },
            declared_hooks.as_deref(),
        )
        .await?;
        let version_record = VersionRecord {
            version: candidate,
            digest,
            size,
            created_at_ms: unix_ms(),
            compile_ms,
            preinit: initialized.record,
            declared_hooks,
            oci: None,
        };
        let serving = match initialized.snapshot {
            Some(snapshot) => Serving::Snapshot(snapshot),
            None => Serving::Original {
                component,
                artifact,
            },
        };
        let staged = serving.stage(digest, &bytes);
        let (version_record, new_settings, pruned) = self
            .commit_version(
                &name,
                (record, revision),
                version_record,
                (&new_settings, &settings),
                expected,
                &staged,
            )
            .await?;
        let version = version_record.version;
        let runnable = Arc::new(initialized.runnable);
        // The copy-on-write memory image is otherwise made by the first
        // instantiation, on the first request's time.
        let component = runnable.prepared.pre.component().clone();
        if let Ok(Err(e)) =
            tokio::task::spawn_blocking(move || component.initialize_copy_on_write_image()).await
        {
            tracing::warn!(function = %name, error = %format!("{e:#}"), "preparing the memory image failed");
        }
        self.activate(&name, version, digest, runnable, new_settings);
        if pruned {
            self.collect_garbage().await?;
        }
        tracing::info!(function = %name, version, %digest, size, compile_ms, init = version_record.preinit.mode.name(), "deployed");
        Ok(Deployed::new(&name, &version_record, compile_ms, true))
    }

    /// Numbers `version` after the newest record in `base` and commits it as
    /// the active version with `settings`. When another node committed to
    /// the function in between, reads it again, checks `expected` again,
    /// renumbers and retries. Returns the version as committed, and whether
    /// old versions were pruned.
    async fn commit_version(
        &self,
        name: &FunctionName,
        mut base: (Option<FunctionRecord>, Option<Revision>),
        mut version: VersionRecord,
        (settings, overrides): (&FunctionSettings, &[(String, String)]),
        expected: Option<Digest>,
        staged: &Staged,
    ) -> Result<(VersionRecord, FunctionSettings, bool), RegistryError> {
        // Published once, before any attempt: slow, and outside the lock
        // that holds garbage collection off.
        self.storage
            .publish(
                name,
                &mut version,
                &staged.files,
                self.engine.artifact_key(),
            )
            .await?;
        let mut attempt = 0;
        loop {
            let (record, revision) = base;
            check_precondition(
                expected,
                record.as_ref().and_then(FunctionRecord::active_version),
            )?;
            // Settings another node changed meanwhile are kept; the
            // deploy's own apply on top. A change to what `init` ran under
            // makes this deploy's outcome stale: the client retries.
            let settings = if attempt == 0 {
                settings.clone()
            } else {
                let fresh = self.settings_with(name, record.as_ref(), overrides)?;
                if !same_init(&fresh, settings) {
                    return Err(RegistryError::Conflict(name.to_string()));
                }
                fresh
            };
            let mut record =
                record.unwrap_or_else(|| FunctionRecord::new(name.as_str(), &settings));
            version.version = record.next_version;
            record.push_active(version.clone(), &settings);
            let pruned = prune_versions(&mut record, self.config.limits.max_versions as usize);
            match self.commit(name, record, staged, revision).await {
                Ok(stored) => {
                    let committed = stored.active_version().cloned().unwrap_or(version);
                    return Ok((committed, settings, pruned));
                }
                Err(RegistryError::Conflict(_)) if attempt < MAX_CONFLICTS => {
                    attempt += 1;
                    tracing::debug!(function = %name, attempt, "another node changed the function; renumbering");
                    base = self.base(name).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// An earlier version (of any function) of the component `digest`,
    /// deployed with the same memory limit and `preinit` setting as
    /// `settings`: `init` would come out the same, so its outcome (a
    /// snapshot, or init per instance) is reused rather than run again.
    fn settled(&self, digest: Digest, settings: &FunctionSettings) -> Option<Settled> {
        let records = self.records.lock();
        records
            .values()
            .filter(|r| {
                r.settings.memory == settings.memory && r.settings.preinit == settings.preinit
            })
            .flat_map(|r| r.versions.iter())
            .find(|v| v.digest == digest)
            .map(|v| Settled {
                serving: v.serving(),
                preinit: v.preinit.clone(),
                declared_hooks: v.declared_hooks.clone(),
            })
    }

    /// Deploys `digest` as `settled` by an earlier deploy: the compiled
    /// component is loaded (from memory or its artifact), checked, and
    /// activated without compiling or running `init` again. `None` when the
    /// stored files are gone: the caller deploys in full.
    #[expect(clippy::too_many_arguments, reason = "one private step of a deploy")]
    async fn redeploy_settled(
        &self,
        name: &FunctionName,
        base: (Option<FunctionRecord>, Option<Revision>),
        (new_settings, overrides): (&FunctionSettings, &[(String, String)]),
        expected: Option<Digest>,
        bytes: &Bytes,
        digest: Digest,
        settled: Settled,
    ) -> Result<Option<Deployed>, RegistryError> {
        let len = bytes.len() as u64;
        if !self.storage.has_component(digest, Some(len)).await?
            || !self.storage.has_component(settled.serving, None).await?
        {
            return Ok(None);
        }
        let Ok((component, _)) = self.component(settled.serving).await else {
            return Ok(None);
        };
        let mut prepared = self.engine.prepare(&component)?;
        self.check_concurrency(&prepared, new_settings, overrides)?;
        prepared.hooks.restrict(settled.declared_hooks.as_deref());
        let runnable = Arc::new(preinit::runnable(&settled.preinit, prepared));
        let version_record = VersionRecord {
            version: base.0.as_ref().map_or(1, |r| r.next_version),
            digest,
            size: len,
            created_at_ms: unix_ms(),
            compile_ms: 0,
            preinit: settled.preinit,
            declared_hooks: settled.declared_hooks,
            oci: None,
        };
        let staged = Serving::Stored(settled.serving).stage(digest, bytes);
        let (version_record, new_settings, pruned) = self
            .commit_version(
                name,
                base,
                version_record,
                (new_settings, overrides),
                expected,
                &staged,
            )
            .await?;
        let version = version_record.version;
        self.activate(name, version, digest, runnable, new_settings);
        if pruned {
            self.collect_garbage().await?;
        }
        tracing::info!(function = %name, version, %digest, size = len, init = version_record.preinit.mode.name(), "deployed (compiled and initialized before)");
        Ok(Some(Deployed::new(name, &version_record, 0, true)))
    }

    /// Stores a version's files and its function's record, in that order
    /// (only if the record is still at `expected`), and commits the record
    /// in memory. Returns the record as stored.
    pub(super) async fn commit(
        &self,
        name: &FunctionName,
        record: FunctionRecord,
        staged: &Staged,
        expected: Option<Revision>,
    ) -> Result<FunctionRecord, RegistryError> {
        let _gc = self.gc.read().await;
        // A collection may have taken the files of an earlier deploy since
        // they were loaded: then the deploy fails rather than name them.
        if let Some(stored) = staged.stored
            && !self.storage.has_component(stored, None).await?
        {
            return Err(crate::store::StoreError::Missing(stored).into());
        }
        let key = self.engine.artifact_key();
        let record = self
            .storage
            .commit(record, staged.files.clone(), key, expected)
            .await?;
        if let Some((digest, component, len)) = &staged.cached {
            self.cache(*digest, component, *len);
        }
        // Committed in memory before the guard goes: a collection that waits
        // for it sees the new record.
        self.records.lock().insert(name.to_string(), record.clone());
        self.changes.fetch_add(1, Ordering::Relaxed);
        Ok(record)
    }
}

/// A version's bytes, ready to be stored: the files to write, the compiled
/// component to keep in memory once they are, and (for a version that
/// serves from files stored before) the digest that must still be there.
pub(super) struct Staged {
    files: VersionFiles,
    cached: Option<(Digest, Component, usize)>,
    stored: Option<Digest>,
}

impl Serving {
    /// The files a version served by `self` stores, its upload being
    /// `bytes` with `digest`.
    pub(super) fn stage(self, digest: Digest, bytes: &Bytes) -> Staged {
        match self {
            Serving::Original {
                component,
                artifact,
            } => {
                let artifact = artifact.map(Bytes::from);
                Staged {
                    cached: artifact.as_ref().map(|a| (digest, component, a.len())),
                    files: VersionFiles {
                        components: vec![(digest, bytes.clone())],
                        artifact: artifact.map(|a| (digest, a)),
                    },
                    stored: None,
                }
            }
            Serving::Snapshot(snapshot) => Staged {
                cached: Some((snapshot.digest, snapshot.component, snapshot.artifact.len())),
                files: VersionFiles {
                    components: vec![(digest, bytes.clone()), (snapshot.digest, snapshot.bytes)],
                    artifact: Some((snapshot.digest, Bytes::from(snapshot.artifact))),
                },
                stored: None,
            },
            Serving::Stored(serving) => Staged {
                files: VersionFiles::default(),
                cached: None,
                stored: Some(serving),
            },
        }
    }
}

/// Whether `init` comes out the same under `a` as under `b`: the same
/// memory limit, way of running it and outbound policy.
fn same_init(a: &FunctionSettings, b: &FunctionSettings) -> bool {
    a.memory == b.memory
        && a.preinit == b.preinit
        && a.allowed_outbound_hosts == b.allowed_outbound_hosts
}

impl Registry {
    /// Refuses an `instance_concurrency` asked of a function (in this
    /// request or before) that its component cannot have: more than 1 for
    /// a WASI 0.2 component. A server-wide default it cannot have does not
    /// apply to it (its instances serve one request at a time).
    pub(super) fn check_concurrency(
        &self,
        prepared: &crate::engine::Prepared,
        settings: &FunctionSettings,
        overrides: &[(String, String)],
    ) -> Result<(), RegistryError> {
        if !settings.triggers.is_empty() && !prepared.handles_events() {
            return Err(crate::config::SettingsError::Invalid {
                key: "triggers".into(),
                reason: "triggers invoke event functions, and this component does not export                          floe:function/event"
                    .into(),
            }
            .into());
        }
        let asked = overrides.iter().any(|(k, _)| k == "instance_concurrency")
            || settings.instance_concurrency != self.config.functions.instance_concurrency;
        match prepared.concurrency(settings.instance_concurrency) {
            Err(reason) if asked => Err(crate::config::SettingsError::Invalid {
                key: "instance_concurrency".into(),
                reason,
            }
            .into()),
            _ => Ok(()),
        }
    }

    /// `record`'s settings (the defaults for a new function) with
    /// `overrides` applied, validated.
    fn settings_with(
        &self,
        name: &FunctionName,
        record: Option<&FunctionRecord>,
        overrides: &[(String, String)],
    ) -> Result<FunctionSettings, RegistryError> {
        let mut settings =
            record.map_or_else(|| self.config.functions.clone(), |r| r.settings.clone());
        self.apply_settings(name, &mut settings, overrides)?;
        settings.validate(&self.config.limits)?;
        settings.validate_events(&self.config.events)?;
        Ok(settings)
    }
}

/// Fails when `expected` (an `If-Match` digest) is not `active`'s.
fn check_precondition(
    expected: Option<Digest>,
    active: Option<&VersionRecord>,
) -> Result<(), RegistryError> {
    match expected {
        Some(expected) if active.map(|v| v.digest) != Some(expected) => {
            Err(RegistryError::PreconditionFailed {
                expected,
                active: active.map(|v| v.digest),
            })
        }
        _ => Ok(()),
    }
}

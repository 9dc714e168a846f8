//! Running a function's `init` at deploy, and snapshotting it.
//!
//! A function that exports `floe:function/lifecycle.init` is initialized once
//! at deploy, whatever its `preinit` setting, so that an `init` that fails
//! fails the deploy (and the active version stays active):
//!
//! - `preinit = "snapshot"` (the default): the component is instrumented by
//!   wasmtime-wizer, `init` runs in it, and the instance's memories and
//!   globals are written into a new component. Instances of that component
//!   start initialized, from a copy-on-write image, and `init` never runs
//!   again. The run gets an empty environment (nothing secret is ever baked
//!   in) and its random sources go through an [`EntropyProbe`]: an `init`
//!   that takes random bytes is not snapshotted, since every instance would
//!   share them; it runs per instance instead, and the deploy says why.
//! - `preinit = "instance"`, or when a snapshot is not possible: `init` runs
//!   once at deploy to check it, then in every instance before its first
//!   request.

use crate::config::{FunctionSettings, Preinit};
use crate::engine::{ComponentError, FloeEngine, LIFECYCLE, LIFECYCLE_P3, Prepared};
use crate::host::{EntropyProbe, LogSource, StoreData};
use crate::pool::Runnable;
use crate::runtime::{InvokeError, Phase, after, classify, new_store, next_instance_id, until};
use crate::store::{Digest, InitMode, PreinitRecord};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Instance, InstancePre};
use wasmtime_wasi_config::WasiConfigVariables;
use wasmtime_wizer::WasmtimeWizerComponent;
use wasmtime_wizer::Wizer;

/// What a pool of a version runs, given its record and the serving
/// component's prepared exports.
pub fn runnable(record: &PreinitRecord, prepared: Prepared) -> Runnable {
    Runnable {
        prepared,
        init_per_instance: record.mode == InitMode::Instance,
        snapshot: record.mode == InitMode::Snapshot,
    }
}

/// A snapshotted component, ready to serve and to store.
pub struct Snapshot {
    /// Its digest.
    pub digest: Digest,
    /// Its bytes.
    pub bytes: Bytes,
    /// It, compiled.
    pub component: Component,
    /// Its compiled artifact.
    pub artifact: Vec<u8>,
}

/// The outcome of initializing a version at deploy.
pub struct Initialized {
    /// What its pool runs.
    pub runnable: Runnable,
    /// The snapshot that serves, if one was taken.
    pub snapshot: Option<Snapshot>,
    /// What the store keeps about it.
    pub record: PreinitRecord,
}

/// Why a snapshot was not taken.
enum NoSnapshot {
    /// `init` itself failed: the deploy fails.
    InitFailed(String),
    /// `init` succeeded but cannot be snapshotted: run it per instance.
    Fallback { reason: String, init_ms: u64 },
    /// The snapshot machinery could not handle the component.
    Unsupported(String),
}

/// What a function's `init` runs under: its settings, and the variables and
/// secrets an instance reads (never given to a snapshot's `init`).
pub struct InitSettings<'a> {
    /// The function's settings.
    pub settings: &'a FunctionSettings,
    /// Its variables and secrets, opened.
    pub config: Arc<WasiConfigVariables>,
}

/// Runs the `init` of a version being deployed, per its `preinit` setting.
pub async fn initialize(
    engine: &FloeEngine,
    function: &Arc<str>,
    version: u64,
    bytes: &Bytes,
    prepared: Prepared,
    with: InitSettings<'_>,
    declared_hooks: Option<&[String]>,
) -> Result<Initialized, ComponentError> {
    let InitSettings { settings, config } = with;
    if prepared.hooks.init.is_none() {
        return Ok(Initialized {
            runnable: runnable(&PreinitRecord::default(), prepared),
            snapshot: None,
            record: PreinitRecord::default(),
        });
    }
    let reason = match settings.preinit {
        Preinit::Instance => None,
        Preinit::Snapshot => match snapshot(
            engine,
            function,
            version,
            bytes,
            settings,
            prepared.hooks.concurrent,
        )
        .await
        {
            Ok(snapshot) => {
                let record = PreinitRecord {
                    mode: InitMode::Snapshot,
                    snapshot: Some(snapshot.0.digest),
                    init_ms: snapshot.1,
                    reason: None,
                };
                let mut prepared = engine.prepare(&snapshot.0.component)?;
                prepared.hooks.restrict(declared_hooks);
                return Ok(Initialized {
                    runnable: runnable(&record, prepared),
                    snapshot: Some(snapshot.0),
                    record,
                });
            }
            Err(NoSnapshot::InitFailed(message)) => {
                return Err(ComponentError::InitFailed(message));
            }
            Err(NoSnapshot::Fallback { reason, init_ms }) => {
                tracing::info!(function = %function, %reason, "init runs per instance");
                let record = PreinitRecord {
                    mode: InitMode::Instance,
                    snapshot: None,
                    init_ms,
                    reason: Some(reason),
                };
                return Ok(Initialized {
                    runnable: runnable(&record, prepared),
                    snapshot: None,
                    record,
                });
            }
            Err(NoSnapshot::Unsupported(reason)) => {
                tracing::warn!(function = %function, %reason, "cannot snapshot init; it runs per instance");
                Some(format!("a snapshot could not be taken: {reason}"))
            }
        },
    };
    // Per instance: check `init` once now, in a throwaway instance.
    let init_ms = init_once(engine, function, version, &prepared, settings, config).await?;
    let record = PreinitRecord {
        mode: InitMode::Instance,
        snapshot: None,
        init_ms,
        reason,
    };
    Ok(Initialized {
        runnable: runnable(&record, prepared),
        snapshot: None,
        record,
    })
}

fn log_source(engine: &FloeEngine, function: &Arc<str>, version: u64) -> Arc<LogSource> {
    let (per_sec, burst) = engine.host_limits().log_rate;
    Arc::new(LogSource::new(
        function.clone(),
        version,
        next_instance_id(),
        per_sec,
        burst,
    ))
}

/// Instantiates `pre` in `store` and calls its `init`, within `deadline`.
/// Returns the instance and how long `init` took. An async `init`
/// (`floe:function/lifecycle@0.2.0`, `concurrent`) runs in the store's
/// event loop, as a WASI 0.3 instance's hooks do.
async fn run_init(
    pre: &InstancePre<StoreData>,
    component: &Component,
    store: &mut wasmtime::Store<StoreData>,
    deadline: Instant,
    timeout: Duration,
    concurrent: bool,
) -> Result<(Instance, Duration), String> {
    let describe = |e: InvokeError| match e {
        InvokeError::Timeout(_) => {
            format!("init ran past its init_timeout of {timeout:?}")
        }
        other => other.to_string(),
    };
    let instance = match until(deadline, pre.instantiate_async(&mut *store)).await {
        Some(Ok(instance)) => instance,
        Some(Err(e)) => return Err(describe(classify(e, store, timeout, Phase::Start))),
        None => return Err(describe(InvokeError::Timeout(timeout))),
    };
    let iface = if concurrent { LIFECYCLE_P3 } else { LIFECYCLE };
    let init = component
        .get_export(None, iface)
        .and_then(|(_, lifecycle)| component.get_export_index(Some(&lifecycle), "init"))
        .ok_or_else(|| "the component no longer exports init".to_owned())?;
    let init = instance
        .get_typed_func::<(), (Result<(), String>,)>(&mut *store, init)
        .map_err(|e| format!("{e:#}"))?;
    let start = Instant::now();
    let result = if concurrent {
        until(
            deadline,
            store.run_concurrent(async |acc| init.call_concurrent(acc, ()).await),
        )
        .await
        .map(|r| r.and_then(|r| r))
    } else {
        until(deadline, init.call_async(&mut *store, ())).await
    };
    let took = start.elapsed();
    match result {
        Some(Ok((Ok(()),))) => Ok((instance, took)),
        Some(Ok((Err(message),))) => Err(message),
        Some(Err(e)) => Err(describe(classify(e, store, timeout, Phase::Call))),
        None => Err(describe(InvokeError::Timeout(timeout))),
    }
}

/// Runs `init` once in a throwaway instance; returns how long it took.
async fn init_once(
    engine: &FloeEngine,
    function: &Arc<str>,
    version: u64,
    prepared: &Prepared,
    settings: &FunctionSettings,
    config: Arc<WasiConfigVariables>,
) -> Result<u64, ComponentError> {
    let _slot = engine.init_permit().await;
    let timeout = settings.init_timeout.0;
    let deadline = after(Instant::now(), timeout);
    let mut state = StoreData::new(
        log_source(engine, function, version),
        settings.memory.as_usize(),
        engine.host_limits(),
        deadline,
        engine.function_outbound(function, settings, None),
    );
    state.config = config;
    let mut store = new_store(engine, state);
    let component = prepared.pre.component().clone();
    let concurrent = prepared.hooks.concurrent;
    let (_, took) = run_init(
        &prepared.pre,
        &component,
        &mut store,
        deadline,
        timeout,
        concurrent,
    )
    .await
    .map_err(ComponentError::InitFailed)?;
    Ok(took.as_millis() as u64)
}

/// Runs `init` in an instrumented copy of the component and snapshots it.
/// On success: the snapshot and how long `init` took.
async fn snapshot(
    engine: &FloeEngine,
    function: &Arc<str>,
    version: u64,
    bytes: &Bytes,
    settings: &FunctionSettings,
    concurrent: bool,
) -> Result<(Snapshot, u64), NoSnapshot> {
    let wizer = Wizer::new();
    let (cx, instrumented) = wizer
        .instrument_component(bytes)
        .map_err(|e| NoSnapshot::Unsupported(format!("{e:#}")))?;
    let compiled = engine
        .compile(Bytes::from(instrumented))
        .await
        .map_err(|e| NoSnapshot::Unsupported(e.to_string()))?;
    let pre = engine
        .linker()
        .instantiate_pre(&compiled.component)
        .map_err(|e| NoSnapshot::Unsupported(format!("{e:#}")))?;

    let _slot = engine.init_permit().await;
    let timeout = settings.init_timeout.0;
    let deadline = after(Instant::now(), timeout);
    let probe = EntropyProbe::new();
    let state = StoreData::for_snapshot(
        log_source(engine, function, version),
        settings.memory.as_usize(),
        engine.host_limits(),
        deadline,
        engine.function_outbound(function, settings, None),
        &probe,
    );
    let mut store = new_store(engine, state);
    let ran = run_init(
        &pre,
        &compiled.component,
        &mut store,
        deadline,
        timeout,
        concurrent,
    )
    .await;
    // The snapshot's `init` sees no configuration: one that asked for it
    // runs per instance, where the variables and secrets are.
    if store.data().config_read {
        return Err(NoSnapshot::Unsupported(
            "init reads the function's variables or secrets (wasi:config/store), which a \
             snapshot would freeze"
                .into(),
        ));
    }
    let (instance, took) = ran.map_err(NoSnapshot::InitFailed)?;
    let init_ms = took.as_millis() as u64;
    if probe.taken() {
        return Err(NoSnapshot::Fallback {
            reason: "init took random bytes, which a snapshot would share between instances".into(),
            init_ms,
        });
    }
    // Reading the state out runs accessor functions in the instance: give
    // them a fresh time limit.
    store.data_mut().deadline = after(Instant::now(), timeout);
    store.set_epoch_deadline(1);
    let snapshot = wizer
        .snapshot_component(
            &cx,
            &mut WasmtimeWizerComponent {
                store: &mut store,
                instance,
            },
        )
        .await
        .map_err(|e| NoSnapshot::Unsupported(format!("{e:#}")))?;
    let bytes = Bytes::from(snapshot);
    let compiled = engine
        .compile(bytes.clone())
        .await
        .map_err(|e| NoSnapshot::Unsupported(format!("the snapshot does not compile: {e}")))?;
    Ok((
        Snapshot {
            digest: Digest::of(&bytes),
            bytes,
            component: compiled.component,
            artifact: compiled.artifact,
        },
        init_ms,
    ))
}

//! A floe server: the pieces wired together, in-process first.
//!
//! [`Floe::new`] opens the data directory, builds the engine and loads every
//! function. From there an embedder can hand single requests to
//! [`Floe::handle`] and mount [`Floe::control_plane`] in its own router, or
//! let floe own its listeners with [`Floe::bind`].
//!
//! With `tls_cert` and `tls_key` (or the control plane's own pair) set, the
//! listeners serve HTTPS only; the pairs are loaded by [`Floe::new`], so a
//! file that does not load stops startup, and [`Floe::bind`] starts the
//! tasks that reload them when the files change (see `tls`).
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let config = floe::Config::load(None, std::env::vars())?;
//! let floe = floe::Floe::new(config).await?;
//! let request = http::Request::get("http://localhost/hello/")
//!     .body(http_body_util::Empty::<bytes::Bytes>::new())?;
//! let response = floe.handle(request).await;
//! println!("{}", response.status());
//! # Ok(()) }
//! ```

mod connections;
mod listener;
mod tls;

pub use tls::TlsError;

use crate::api::{self, ApiState, Tokens};
use crate::cluster::{Addresses, Cluster};
use crate::config::Config;
use crate::dataplane::{DataPlane, ResponseBody};
use crate::engine::{EngineError, FloeEngine};
use crate::host::outbound::Listener;
use crate::invocations::Invocations;
use crate::invoke::RequestIds;
use crate::metrics::Metrics;
use crate::registry::{Deployed, FunctionName, LocalStorage, Registry, RegistryError, Storage};
use crate::scaling::ActivePools;
use crate::store::{FunctionStore, SecretKey, StoreError};
use crate::triggers::Triggers;
use bytes::Bytes;
use listener::{ListenerLimits, serve};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tls::ReloadingKey;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is inconsistent.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The data directory could not be opened.
    #[error("opening the data directory: {0}")]
    Store(#[from] StoreError),
    /// The engine could not be built.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Functions could not be loaded.
    #[error("loading functions: {0}")]
    Registry(#[from] RegistryError),
    /// A listener could not be bound.
    #[error("binding the {plane} plane to {addr}: {source}")]
    Bind {
        /// `data` or `control`.
        plane: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Cluster mode could not be set up.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// The async invocation store could not be opened.
    #[error("opening the async invocation store: {0}")]
    Invocations(#[source] std::io::Error),
    /// A TLS certificate or key could not be loaded.
    #[error("loading the {plane} plane's TLS certificate: {source}")]
    Tls {
        /// `data` or `control`.
        plane: &'static str,
        /// What is wrong.
        #[source]
        source: Box<TlsError>,
    },
    /// A function given at startup could not be read.
    #[error("reading {path}: {source}")]
    ReadComponent {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A floe server.
#[derive(Clone)]
pub struct Floe {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<Config>,
    store: Arc<FunctionStore>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    dataplane: Arc<DataPlane>,
    invocations: Arc<Invocations>,
    ids: Arc<RequestIds>,
    workers: Vec<JoinHandle<()>>,
    tokens: Arc<Tokens>,
    token_created: bool,
    draining: Arc<AtomicBool>,
    janitor: JoinHandle<()>,
    tls: Tls,
    cluster: Option<Arc<Cluster>>,
    triggers: Arc<Triggers>,
    triggers_stop: CancellationToken,
}

/// The certificate pairs of the listeners; the same pair for both when the
/// control plane has none of its own.
struct Tls {
    data: Option<Arc<ReloadingKey>>,
    control: Option<Arc<ReloadingKey>>,
}

impl Tls {
    fn load(server: &crate::config::ServerConfig) -> Result<Self, StartError> {
        let open = |plane, pair: Option<(&Path, &Path)>| {
            pair.map(|(cert, key)| ReloadingKey::open(cert, key))
                .transpose()
                .map_err(|source| StartError::Tls {
                    plane,
                    source: Box::new(source),
                })
        };
        let data = open("data", server.data_tls())?;
        let control = if server.control_tls() == server.data_tls() {
            data.clone()
        } else {
            open("control", server.control_tls())?
        };
        Ok(Self { data, control })
    }

    fn acceptor(
        plane: &'static str,
        pair: Option<&Arc<ReloadingKey>>,
    ) -> Result<Option<tokio_rustls::TlsAcceptor>, StartError> {
        pair.map(ReloadingKey::acceptor)
            .transpose()
            .map_err(|source| StartError::Tls {
                plane,
                source: Box::new(source),
            })
    }
}

fn scheme<T>(tls: &Option<T>) -> &'static str {
    if tls.is_some() { "https" } else { "http" }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.janitor.abort();
        self.triggers_stop.cancel();
        self.triggers.stop_all();
        for worker in &self.workers {
            worker.abort();
        }
    }
}

impl std::fmt::Debug for Floe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Floe")
            .field("data_dir", &self.inner.config.server.data_dir)
            .finish_non_exhaustive()
    }
}

impl Floe {
    /// Checks the configuration, opens the data directory, builds the engine
    /// and loads every deployed function. Binds nothing.
    pub async fn new(config: Config) -> Result<Self, StartError> {
        config.check()?;
        let config = Arc::new(config);
        let tls = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || Tls::load(&config.server))
                .await
                .map_err(|e| StartError::Registry(RegistryError::Internal(e)))??
        };
        let root = config.server.data_dir.clone();
        let store = Arc::new(
            tokio::task::spawn_blocking(move || FunctionStore::open(&root))
                .await
                .map_err(|e| StartError::Registry(RegistryError::Internal(e)))??,
        );
        let (token, token_created) = match &config.server.token_file {
            path if path.as_os_str().is_empty() => store.token()?,
            path => (FunctionStore::token_from(path)?, false),
        };
        let tokens = Arc::new(Tokens::open(&token, store.clone())?);
        let secrets = {
            let (config, root) = (config.clone(), config.server.data_dir.clone());
            tokio::task::spawn_blocking(move || SecretKey::load(&config.secrets, &root))
                .await
                .map_err(|e| StartError::Registry(RegistryError::Internal(e)))??
        };
        let engine = Arc::new(FloeEngine::new(&config)?);
        let metrics = Arc::new(Metrics::default());
        let local = LocalStorage(store.clone());
        let (cluster, storage): (Option<Arc<Cluster>>, Arc<dyn Storage>) =
            if config.cluster.enabled() {
                let cluster = Cluster::new(&config, local).await?;
                let storage = cluster.storage();
                (Some(cluster), storage)
            } else {
                (None, Arc::new(local))
            };
        let registry =
            Registry::open(config.clone(), engine, storage, metrics.clone(), secrets).await?;
        let invocations = Arc::new(
            Invocations::open(
                &config.server.data_dir,
                config.invocations.clone(),
                registry.clone(),
                cluster.as_ref().map(|c| c.id().to_owned()),
            )
            .map_err(StartError::Invocations)?,
        );
        let workers = invocations.start();
        let triggers = Arc::new(Triggers::new(
            registry.clone(),
            invocations.clone(),
            config.events.clone(),
            &config.server.data_dir,
            cluster.clone(),
        ));
        let triggers_stop = CancellationToken::new();
        triggers.start(triggers_stop.clone());
        let ids = Arc::new(RequestIds::default());
        let dataplane = Arc::new(DataPlane::new(
            registry.clone(),
            metrics.clone(),
            invocations.clone(),
            ids.clone(),
            &config.server.domain,
            config.server.max_uri_bytes.as_usize(),
        ));
        let pools: Arc<dyn ActivePools> = registry.clone();
        let janitor = tokio::spawn(crate::scaling::run(
            Arc::downgrade(&pools),
            config.scaling.clone(),
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                store,
                registry,
                metrics,
                dataplane,
                invocations,
                ids,
                workers,
                tokens,
                token_created,
                draining: Arc::new(AtomicBool::new(false)),
                janitor,
                tls,
                cluster,
                triggers,
                triggers_stop,
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The function registry (deploy, rollback, list, …).
    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    /// The bootstrap control-plane token (admin scope; the data directory's
    /// `token` file).
    pub fn token(&self) -> &str {
        self.inner.tokens.bootstrap()
    }

    /// Whether the token was created by this start (first start on a data
    /// directory).
    pub fn token_was_created(&self) -> bool {
        self.inner.token_created
    }

    /// Serves one data-plane request in-process.
    pub async fn handle<B>(&self, request: http::Request<B>) -> http::Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        self.inner.dataplane.handle(request).await
    }

    /// The control plane as an axum router, to mount in an embedder's server.
    pub fn control_plane(&self) -> axum::Router {
        api::router(ApiState {
            registry: self.inner.registry.clone(),
            metrics: self.inner.metrics.clone(),
            max_upload: self.inner.config.limits.max_upload.bytes(),
            draining: self.inner.draining.clone(),
            invocations: self.inner.invocations.clone(),
            ids: self.inner.ids.clone(),
            tokens: self.inner.tokens.clone(),
            open_metrics: self.inner.config.server.metrics_open(),
            cluster: self.inner.cluster.clone(),
            triggers: self.inner.triggers.clone(),
        })
    }

    /// Deploys the component in `path` as `name` (a no-op when it is already
    /// the active version).
    pub async fn deploy_file(&self, name: &str, path: &Path) -> Result<Deployed, StartError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| StartError::ReadComponent {
                path: path.display().to_string(),
                source,
            })?;
        let name = FunctionName::new(name).map_err(RegistryError::from)?;
        Ok(self
            .inner
            .registry
            .deploy(&name, Bytes::from(bytes), &[], None)
            .await?)
    }

    /// Binds the data and control planes and serves them until
    /// [`Listening::shutdown`].
    pub async fn bind(&self) -> Result<Listening, StartError> {
        let server = &self.inner.config.server;
        let bind = |plane, addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind {
                    plane,
                    addr,
                    source,
                })
        };
        let data = bind("data", server.data_addr).await?;
        let control = bind("control", server.control_addr).await?;
        let local = |l: &TcpListener, plane, addr| {
            l.local_addr().map_err(|source| StartError::Bind {
                plane,
                addr,
                source,
            })
        };
        let data_addr = local(&data, "data", server.data_addr)?;
        let control_addr = local(&control, "control", server.control_addr)?;
        // Functions may not call floe's own listeners unless the operator
        // opens them ([outbound]).
        let outbound = self.inner.registry.engine().outbound();
        outbound.add_listener(Listener::Data, data_addr);
        outbound.add_listener(Listener::Control, control_addr);
        let tls = &self.inner.tls;
        let data_tls = Tls::acceptor("data", tls.data.as_ref())?;
        let control_tls = Tls::acceptor("control", tls.control.as_ref())?;
        let (data_scheme, control_scheme) = (scheme(&data_tls), scheme(&control_tls));
        // The CLI finds the control plane, and the certificate to trust,
        // in the data directory.
        let store = &self.inner.store;
        store.write_control_cert(tls.control.as_ref().map(|c| c.chain_pem()).as_deref())?;
        store.write_control_url(&format!("{control_scheme}://{control_addr}"))?;

        let limits = ListenerLimits {
            max_connections: server.max_connections,
            max_connections_per_ip: server.max_connections_per_ip,
            max_header_bytes: server.max_header_bytes.as_usize(),
            header_timeout: server.header_timeout.0,
            idle_timeout: server.idle_timeout.0,
            http2_keep_alive: (
                server.http2_keep_alive_interval.0,
                server.http2_keep_alive_timeout.0,
            ),
            drain_timeout: server.drain_timeout.0,
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let dataplane = (*self.inner.dataplane).clone();
        let data_service = hyper::service::service_fn(move |request| {
            let dataplane = dataplane.clone();
            async move { Ok::<_, Infallible>(dataplane.handle(request).await) }
        });
        let control_service = hyper_util::service::TowerToHyperService::new(self.control_plane());
        let mut tasks = vec![
            tokio::spawn(serve(
                "data",
                data,
                data_service,
                limits,
                data_tls,
                stop_rx.clone(),
            )),
            tokio::spawn(serve(
                "control",
                control,
                control_service,
                limits,
                control_tls,
                stop_rx.clone(),
            )),
        ];
        let interval = server.tls_reload_interval.0;
        if let Some(control) = &tls.control {
            let store = self.inner.store.clone();
            let record = move |key: &ReloadingKey| {
                if let Err(err) = store.write_control_cert(Some(&key.chain_pem())) {
                    tracing::warn!(%err, "recording the control plane's new certificate for the CLI");
                }
            };
            tasks.push(tokio::spawn(control.clone().watch(
                interval,
                stop_rx.clone(),
                record,
            )));
        }
        if let Some(data) = &tls.data
            && !tls.control.as_ref().is_some_and(|c| Arc::ptr_eq(c, data))
        {
            tasks.push(tokio::spawn(data.clone().watch(interval, stop_rx, |_| {})));
        }
        if let Some(cluster) = &self.inner.cluster {
            cluster.start(
                self.inner.registry.clone(),
                Addresses {
                    control: format!("{control_scheme}://{control_addr}"),
                    data: data_addr.to_string(),
                },
            );
        }
        tracing::info!(%data_addr, %control_addr, data_scheme, control_scheme, "listening");
        Ok(Listening {
            data_addr,
            control_addr,
            data_scheme,
            control_scheme,
            stop: stop_tx,
            tasks,
            floe: self.clone(),
        })
    }
}

/// A server's bound listeners.
#[derive(Debug)]
pub struct Listening {
    data_addr: SocketAddr,
    control_addr: SocketAddr,
    data_scheme: &'static str,
    control_scheme: &'static str,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    floe: Floe,
}

impl Listening {
    /// Where the data plane listens.
    pub fn data_addr(&self) -> SocketAddr {
        self.data_addr
    }

    /// Where the control plane listens.
    pub fn control_addr(&self) -> SocketAddr {
        self.control_addr
    }

    /// The data plane's base URL: `https://` when it serves TLS.
    pub fn data_url(&self) -> String {
        format!("{}://{}", self.data_scheme, self.data_addr)
    }

    /// The control plane's base URL: `https://` when it serves TLS.
    pub fn control_url(&self) -> String {
        format!("{}://{}", self.control_scheme, self.control_addr)
    }

    /// Stops accepting, lets in-flight requests finish within the drain
    /// timeout, then stops every instance.
    pub async fn shutdown(self) {
        let started = Instant::now();
        self.floe.inner.draining.store(true, Ordering::Relaxed);
        if let Some(cluster) = &self.floe.inner.cluster {
            cluster.stop();
        }
        let _ = self.stop.send(true);
        // Triggers stop first: nothing new is invoked while the server drains.
        self.floe.inner.triggers_stop.cancel();
        self.floe.inner.triggers.stop_all();
        for task in self.tasks {
            let _ = task.await;
        }
        // Every instance gets its pre-stop, within its hook timeout.
        let drain = self.floe.inner.config.server.drain_timeout.0;
        self.floe.inner.registry.shutdown(drain).await;
        tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "stopped");
    }
}

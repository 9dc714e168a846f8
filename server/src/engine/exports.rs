//! What a component exports of floe's contract, found once, at deploy.
//!
//! A function must export `wasi:http/incoming-handler@0.2` (a WASI 0.2 HTTP
//! function), `wasi:http/handler@0.3` (a WASI 0.3 one, which may serve many
//! requests at once per instance) or `floe:function/event` (an event
//! function), or an HTTP handler and the event handler. It may export
//! `floe:function/lifecycle`; each of its hooks is optional, but a hook that is
//! there must have the signature of the WIT, or the deploy is refused. The
//! handlers' types are checked at deploy too (422 `missing_export`, naming
//! the export and the type floe expects).
//!
//! `floe:function@0.2.0` (`wit/p3`) is the same contract with an async
//! `handle` and async hooks: a component exporting its `event` is a WASI 0.3
//! function (its instances serve many invocations at once), and its
//! `lifecycle` is for WASI 0.3 functions only. A component exports one
//! version of each interface, never both.

use super::{ComponentError, link};
use crate::bindings::event;
use crate::host::StoreData;
use wasmtime::Engine;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{
    Component, ComponentExportIndex, ComponentNamedList, InstancePre, Lift, Linker, Lower,
    Resource, Type,
};
use wasmtime_wasi_http::p2::bindings::ProxyIndices;
use wasmtime_wasi_http::p2::types::{HostIncomingRequest, HostResponseOutparam};
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode as P3ErrorCode;

/// The HTTP handler export (any 0.2.x version matches).
pub const HTTP_HANDLER: &str = "wasi:http/incoming-handler@0.2.12";
/// The WASI 0.3 HTTP handler export (any released 0.3.x version matches).
pub const HTTP_HANDLER_P3: &str = "wasi:http/handler@0.3.0";
/// The event handler export.
pub const EVENT: &str = "floe:function/event@0.1.0";
/// The lifecycle hooks export.
pub const LIFECYCLE: &str = "floe:function/lifecycle@0.1.0";
/// The async event handler export (WASI 0.3 functions).
pub const EVENT_P3: &str = "floe:function/event@0.2.0";
/// The async lifecycle hooks export (WASI 0.3 functions).
pub const LIFECYCLE_P3: &str = "floe:function/lifecycle@0.2.0";

/// Where a component's lifecycle hooks are (each is optional).
#[derive(Clone, Copy, Debug, Default)]
pub struct Hooks {
    /// `init: func() -> result<_, string>`.
    pub init: Option<ComponentExportIndex>,
    /// `pre-freeze: func()`.
    pub pre_freeze: Option<ComponentExportIndex>,
    /// `pre-stop: func()`.
    pub pre_stop: Option<ComponentExportIndex>,
    /// Whether they are `floe:function/lifecycle@0.2.0`'s async hooks,
    /// which only a WASI 0.3 instance's event loop can call.
    pub concurrent: bool,
}

/// The custom section in which floe's SDKs list the hooks a function really
/// implements (names separated by whitespace: `init pre_freeze pre_stop`).
/// An SDK exports the whole `lifecycle` interface with no-ops for the hooks
/// left out; floe skips those instead of calling a no-op each time.
pub const HOOKS_SECTION: &str = "floe:hooks";

/// The hooks listed in `floe:hooks` sections of `wasm` (in the component or
/// any core module in it); `None` when there is no such section.
pub fn declared_hooks(wasm: &[u8]) -> Option<Vec<String>> {
    let mut found: Option<Vec<String>> = None;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let Ok(payload) = payload else { break };
        if let wasmparser::Payload::CustomSection(reader) = payload
            && reader.name() == HOOKS_SECTION
        {
            let text = String::from_utf8_lossy(reader.data()).into_owned();
            found
                .get_or_insert_with(Vec::new)
                .extend(text.split_whitespace().map(|h| h.replace('_', "-")));
        }
    }
    found
}

impl Hooks {
    /// Forgets the hooks a `floe:hooks` list leaves out (none, without a list).
    pub fn restrict(&mut self, declared: Option<&[String]>) {
        let Some(declared) = declared else { return };
        let has = |name: &str| declared.iter().any(|d| d == name);
        if !has("init") {
            self.init = None;
        }
        if !has("pre-freeze") {
            self.pre_freeze = None;
        }
        if !has("pre-stop") {
            self.pre_stop = None;
        }
    }
}

/// A component linked against the host, with its exports located: all that
/// instantiating and calling it needs, computed once per deployment.
pub struct Prepared {
    /// The pre-instantiated component.
    pub pre: InstancePre<StoreData>,
    /// Its WASI 0.2 HTTP handler.
    pub http: Option<ProxyIndices>,
    /// Its WASI 0.3 HTTP handler's `handle`.
    pub http_p3: Option<ComponentExportIndex>,
    /// Its event handler (`floe:function/event@0.1.0`), as a WASI 0.2
    /// instance calls it.
    pub event: Option<event::GuestIndices>,
    /// Its event handler's `handle`, of either version: how a WASI 0.3
    /// instance calls it.
    pub event_handle: Option<ComponentExportIndex>,
    /// Whether the event handler is `floe:function/event@0.2.0`'s async one.
    pub event_p3: bool,
    /// Its hooks.
    pub hooks: Hooks,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("http", &self.http.is_some())
            .field("http_p3", &self.http_p3.is_some())
            .field("event", &self.event_handle.is_some())
            .field("event_p3", &self.event_p3)
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

impl Prepared {
    /// Whether it handles HTTP requests (WASI 0.2 or 0.3).
    pub fn handles_http(&self) -> bool {
        self.http.is_some() || self.http_p3.is_some()
    }

    /// Whether it handles events (either version of `floe:function/event`).
    pub fn handles_events(&self) -> bool {
        self.event_handle.is_some()
    }

    /// Whether this is a WASI 0.3 function (it exports `wasi:http/handler@0.3`
    /// or `floe:function/event@0.2.0`): its instances serve up to
    /// `instance_concurrency` requests at once.
    pub fn is_p3(&self) -> bool {
        self.http_p3.is_some() || self.event_p3
    }

    /// Requests one instance serves at once when the function does not say:
    /// 16 for a WASI 0.3 function (as `wasmtime serve` does), 1 for a WASI
    /// 0.2 one, which cannot serve more.
    pub fn default_concurrency(&self) -> u32 {
        if self.is_p3() { 16 } else { 1 }
    }

    /// The concurrency per instance `asked` gives this function, or why it
    /// cannot have it.
    pub fn concurrency(&self, asked: Option<u32>) -> Result<u32, String> {
        match asked {
            None => Ok(self.default_concurrency()),
            Some(n) if n > 1 && !self.is_p3() => Err(format!(
                "{n} is refused: this is a WASI 0.2 component (it exports \
                 `wasi:http/incoming-handler@0.2` or only `{EVENT}`), and a WASI 0.2 \
                 instance serves one request at a time; only WASI 0.3 functions \
                 (exporting `wasi:http/handler@0.3` or `{EVENT_P3}`) serve requests \
                 concurrently"
            )),
            Some(n) => Ok(n),
        }
    }

    /// What kind of function this is, as shown by the API.
    pub fn kind(&self) -> &'static str {
        match (self.handles_http(), self.handles_events()) {
            (true, true) => "http+event",
            (false, true) => "event",
            _ => "http",
        }
    }
}

/// Links `component` and locates its exports.
pub(crate) fn prepare(
    engine: &Engine,
    linker: &Linker<StoreData>,
    component: &Component,
) -> Result<Prepared, ComponentError> {
    // Hook signatures first: a wrong one is an error whatever else is there.
    let hooks = hooks(component)?;
    let pre =
        link::instantiate_pre(engine, linker, component).map_err(ComponentError::MissingImports)?;
    let http = match component.get_export_index(None, HTTP_HANDLER) {
        Some(_) => {
            check_func::<
                (
                    Resource<HostIncomingRequest>,
                    Resource<HostResponseOutparam>,
                ),
                (),
            >(
                &pre,
                HTTP_HANDLER,
                "handle",
                "func(request: incoming-request, response-out: response-outparam)",
            )?;
            Some(ProxyIndices::new(&pre).map_err(|e| {
                ComponentError::BadExport(format!("`wasi:http/incoming-handler`: {e:#}"))
            })?)
        }
        None => None,
    };
    let event = match component.get_export_index(None, EVENT) {
        Some(_) => {
            check_func::<(event::Context, Vec<u8>), (Result<Vec<u8>, event::Error>,)>(
                &pre,
                EVENT,
                "handle",
                "func(context: context, payload: list<u8>) -> result<list<u8>, error>",
            )?;
            Some(
                event::GuestIndices::new(&pre)
                    .map_err(|e| ComponentError::BadExport(format!("`{EVENT}`: {e:#}")))?,
            )
        }
        None => None,
    };
    let http_p3 = p3_handler(engine, &pre)?;
    let event_p3 = match component.get_export_index(None, EVENT_P3) {
        Some(_) if event.is_some() => {
            return Err(ComponentError::BadExport(format!(
                "the component exports both `{EVENT}` and `{EVENT_P3}`: export one"
            )));
        }
        Some(_) => {
            check_func::<(event::Context, Vec<u8>), (Result<Vec<u8>, event::Error>,)>(
                &pre,
                EVENT_P3,
                "handle",
                "async func(context: context, payload: list<u8>) -> result<list<u8>, error>",
            )?;
            true
        }
        None => false,
    };
    if http.is_none() && http_p3.is_none() && event.is_none() && !event_p3 {
        return Err(ComponentError::MissingExport);
    }
    // A WASI 0.3 event handler makes the function a WASI 0.3 one: an HTTP
    // handler beside it must be one too, and async hooks need WASI 0.3.
    if event_p3 && http.is_some() {
        return Err(ComponentError::BadExport(format!(
            "`{EVENT_P3}` is for WASI 0.3 functions, but the component's HTTP handler is \
             `{HTTP_HANDLER}` (WASI 0.2): export `wasi:http/handler@0.3` or `{EVENT}`"
        )));
    }
    if hooks.concurrent && http_p3.is_none() && !event_p3 {
        return Err(ComponentError::BadExport(format!(
            "`{LIFECYCLE_P3}` (async hooks) is for WASI 0.3 functions, and this one is WASI \
             0.2: export `{LIFECYCLE}`"
        )));
    }
    let event_handle = if event_p3 {
        export_func(component, EVENT_P3, "handle")
    } else if event.is_some() {
        export_func(component, EVENT, "handle")
    } else {
        None
    };
    Ok(Prepared {
        pre,
        http,
        http_p3,
        event,
        event_handle,
        event_p3,
        hooks,
    })
}

/// The index of the function `name` in the exported interface `iface`.
fn export_func(component: &Component, iface: &str, name: &str) -> Option<ComponentExportIndex> {
    let (_, instance) = component.get_export(None, iface)?;
    component
        .get_export(Some(&instance), name)
        .map(|(_, index)| index)
}

/// Locates `wasi:http/handler@0.3.x#handle` and checks its type. A
/// component built for a release candidate of WASI 0.3 is refused with a
/// message that says so.
fn p3_handler(
    engine: &Engine,
    pre: &InstancePre<StoreData>,
) -> Result<Option<ComponentExportIndex>, ComponentError> {
    let component = pre.component();
    if component.get_export_index(None, HTTP_HANDLER_P3).is_none() {
        if let Some((name, _)) = component
            .component_type()
            .exports(engine)
            .find(|(name, _)| name.starts_with("wasi:http/handler@0.3.0-"))
        {
            return Err(ComponentError::BadExport(format!(
                "the component exports `{name}`, a release candidate of WASI 0.3: rebuild it \
                 against WASI 0.3.0 or later (the `wasip3` crate 0.7 or newer)"
            )));
        }
        return Ok(None);
    }
    check_func::<
        (Resource<wasmtime_wasi_http::p3::Request>,),
        (Result<Resource<wasmtime_wasi_http::p3::Response>, P3ErrorCode>,),
    >(
        pre,
        HTTP_HANDLER_P3,
        "handle",
        "async func(request: request) -> result<response, error-code>",
    )?;
    Ok(export_func(component, HTTP_HANDLER_P3, "handle"))
}

/// Type-checks the function `name` of the exported interface `iface` against
/// what floe will call it with (`P`) and read back (`R`), as the generated
/// bindings would at the first call: a wrong type fails the deploy instead
/// of every request.
fn check_func<P, R>(
    pre: &InstancePre<StoreData>,
    iface: &str,
    name: &str,
    wanted: &str,
) -> Result<(), ComponentError>
where
    P: ComponentNamedList + Lower,
    R: ComponentNamedList + Lift,
{
    let component = pre.component();
    let missing =
        || ComponentError::BadExport(format!("`{iface}` does not export `{name}: {wanted}`"));
    let (_, instance) = component.get_export(None, iface).ok_or_else(missing)?;
    match component.get_export(Some(&instance), name) {
        // The check bindgen's generated code runs (hidden in wasmtime's docs,
        // stable within a release line).
        Some((ComponentItem::ComponentFunc(func), _)) => {
            func.typecheck::<P, R>(&pre.instance_type()).map_err(|e| {
                ComponentError::BadExport(format!(
                    "`{iface}` exports `{name}`, but not as `{wanted}`: {e:#}"
                ))
            })
        }
        Some(_) => Err(ComponentError::BadExport(format!(
            "`{iface}` exports `{name}`, but not as a function (`{wanted}`)"
        ))),
        None => Err(missing()),
    }
}

fn hooks(component: &Component) -> Result<Hooks, ComponentError> {
    let (iface, lifecycle, concurrent) = match (
        component.get_export(None, LIFECYCLE),
        component.get_export(None, LIFECYCLE_P3),
    ) {
        (None, None) => return Ok(Hooks::default()),
        (Some(_), Some(_)) => {
            return Err(ComponentError::BadExport(format!(
                "the component exports both `{LIFECYCLE}` and `{LIFECYCLE_P3}`: export one"
            )));
        }
        (Some((_, lifecycle)), None) => (LIFECYCLE, lifecycle, false),
        (None, Some((_, lifecycle))) => (LIFECYCLE_P3, lifecycle, true),
    };
    let prefix = if concurrent { "async " } else { "" };
    let find = |name: &str, check: fn(&ComponentFunc) -> bool, wanted: &str| match component
        .get_export(Some(&lifecycle), name)
    {
        None => Ok(None),
        Some((ComponentItem::ComponentFunc(ty), index)) if check(&ty) => Ok(Some(index)),
        Some(_) => Err(ComponentError::BadExport(format!(
            "`{iface}` exports `{name}`, but not as `{prefix}{wanted}`"
        ))),
    };
    Ok(Hooks {
        init: find("init", is_init, "func() -> result<_, string>")?,
        pre_freeze: find("pre-freeze", is_unit, "func()")?,
        pre_stop: find("pre-stop", is_unit, "func()")?,
        concurrent,
    })
}

fn is_unit(ty: &ComponentFunc) -> bool {
    ty.params().len() == 0 && ty.results().len() == 0
}

fn is_init(ty: &ComponentFunc) -> bool {
    let results: Vec<Type> = ty.results().collect();
    ty.params().len() == 0
        && matches!(results.as_slice(), [Type::Result(r)] if r.ok().is_none() && matches!(r.err(), Some(Type::String)))
}

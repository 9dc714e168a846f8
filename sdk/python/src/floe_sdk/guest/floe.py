"""The `floe` module a Python function imports (inside the component).

Mark one function as the handler, and optionally the lifecycle hooks:

    import floe

    @floe.http
    def handle(request: floe.Request) -> floe.Response:
        return floe.Response("hello\n")

    @floe.event
    def handle(payload: bytes, ctx: floe.Context) -> bytes:
        return payload

    @floe.init
    def setup() -> None: ...          # once, before any request (snapshotted at deploy)

    @floe.pre_freeze
    def flush() -> None: ...          # the instance is about to be parked

    @floe.pre_stop
    def close() -> None: ...          # the instance is about to be stopped

Call out over HTTP (from a handler or a hook) with `floe.fetch`:

    reply = floe.fetch("http://example.com/api", method="POST", body=b"...")
    reply.status, reply.header("content-type"), reply.text(), reply.json()

Read the function's variables and secrets (`floe config NAME --var KEY=VALUE
--secret KEY=@FILE`) with `floe.config`:

    threshold = float(floe.config("threshold", "40"))
    token = floe.config("api_token")     # None when not set

An event function reads what started the invocation (a cron schedule or
an MQTT message: the function's `triggers` setting) with `ctx.trigger`, and
publishes MQTT messages through its durable outbox with `floe.publish`:

    @floe.event
    def handle(payload: bytes, ctx: floe.Context) -> bytes:
        t = ctx.trigger                       # None over HTTP or the API
        if t is not None and t.kind == "mqtt":
            floe.publish(f"echo/{t.topic}", payload, qos=1)
        return payload

Built for WASI 0.3 (`floe-py build --wasi p3`), one instance serves many
requests at once: handlers and hooks may be `async def`, and
`await floe.fetch_async(...)` and `await floe.sleep(seconds)` let the
instance's other requests go on meanwhile (the blocking `floe.fetch` is for
WASI 0.2 builds).
"""

from __future__ import annotations

import json as _json
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl, urlsplit

try:  # componentize-py generates these bindings when it builds the component
    import wit_world  # noqa: F401
except ImportError:  # outside a component (an editor, a unit test)
    _wasi: Optional[str] = None
else:
    try:
        from wit_world.imports import outgoing_handler as _outgoing
    except ImportError:  # a WASI 0.3 build: see floe_p3
        _wasi = "p3"
    else:
        _wasi = "p2"

if _wasi is not None:
    from wit_world.imports import store as _config_store

# floe:function/trigger and floe:function/mqtt: imported by WASI 0.2 event
# functions only (not by HTTP functions, nor by WASI 0.3 builds).
_trigger: Any = None
_mqtt: Any = None
if _wasi == "p2":
    try:
        from wit_world.imports import mqtt as _mqtt
        from wit_world.imports import trigger as _trigger
    except ImportError:  # an HTTP function
        _trigger = _mqtt = None

if _wasi == "p2":
    from componentize_py_types import Err as _Err, Ok as _Ok
    from wit_world.imports import monotonic_clock as _clock
    from wit_world.imports import poll as _poll
    from wit_world.imports import streams as _streams

    try:  # the event world also imports wasi:filesystem, whose `types` wins the name
        from wit_world.imports import wasi_http_types as _http
    except ImportError:
        from wit_world.imports import types as _http

_handler: Optional[Callable[..., Any]] = None
_kind: Optional[str] = None
_hooks: dict[str, Callable[[], None]] = {}


def _register(kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    global _handler, _kind
    if _handler is not None:
        raise RuntimeError(f"a function has one handler: {_handler.__name__} is already one")
    _handler, _kind = fn, kind
    return fn


def http(fn: Callable[["Request"], Any]) -> Callable[["Request"], Any]:
    """Marks the HTTP handler: it takes a `Request` and returns a `Response`
    (or `str`, `bytes`, or a `dict`/`list` answered as JSON)."""
    return _register("http", fn)


def event(fn: Callable[[bytes, "Context"], Any]) -> Callable[[bytes, "Context"], Any]:
    """Marks the event handler: it takes the payload (`bytes`) and a
    `Context`, and returns `bytes` (or `str`, or JSON-able data). Raise
    `InvalidInput` for a bad payload (answered 400); any other exception is a
    failure (500, retried for async invocations)."""
    return _register("event", fn)


def _hook(name: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    def mark(fn: Callable[[], None]) -> Callable[[], None]:
        _hooks[name] = fn
        return fn

    return mark


init = _hook("init")
init.__doc__ = """Marks the initializer: runs once before any request. With floe's default
`preinit = "snapshot"` it runs at deploy and every instance starts from its
result. Raising fails the deploy with the message."""
pre_freeze = _hook("pre_freeze")
pre_freeze.__doc__ = "Marks the hook run when the instance is about to be parked."
pre_stop = _hook("pre_stop")
pre_stop.__doc__ = "Marks the hook run once when the instance is about to be stopped."


class InvalidInput(Exception):
    """Raised by an event handler for a payload it cannot accept (400)."""


@dataclass
class Request:
    """An HTTP request, body read in full."""

    method: str
    path: str
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> Optional[str]:
        """The first value of header `name` (case-insensitive), as text."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None

    @property
    def query(self) -> dict[str, str]:
        """The query string's parameters (the last of repeated ones)."""
        _, _, query = self.path.partition("?")
        return dict(parse_qsl(query, keep_blank_values=True))

    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return _json.loads(self.body)


class _either:
    """`Response.json(data)` makes a JSON response; `response.json()` parses
    one (the way the Web's `Response.json` and `response.json()` do)."""

    def __init__(self, on_class: Callable[..., Any], on_instance: Callable[..., Any]) -> None:
        self.on_class, self.on_instance = on_class, on_instance
        self.__doc__ = on_class.__doc__

    def __get__(self, obj: Any, cls: type) -> Callable[..., Any]:
        if obj is None:
            return self.on_class.__get__(cls, cls)
        return self.on_instance.__get__(obj, cls)


class Response:
    """An HTTP response: the one a handler returns, or the one `fetch` got.

    `status`, `headers` (a list of `(name, value)` pairs) and `body` (bytes);
    `header(name)`, `text()`, `json()` and `ok` read them.
    `Response.json(data, status=200)` makes a JSON response."""

    def __init__(
        self,
        body: str | bytes = b"",
        status: int = 200,
        headers: Optional[dict[str, str] | list[tuple[str, str]]] = None,
    ) -> None:
        self.body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        self.status = status
        items = headers.items() if isinstance(headers, dict) else (headers or [])
        self.headers = [(k, v) for k, v in items]
        if isinstance(body, str) and not any(k.lower() == "content-type" for k, _ in self.headers):
            self.headers.append(("content-type", "text/plain; charset=utf-8"))

    def _make_json(
        cls,
        data: Any,
        status: int = 200,
        headers: Optional[dict[str, str] | list[tuple[str, str]]] = None,
    ) -> "Response":
        """A response with `data` as JSON (`content-type: application/json`),
        plus `headers`."""
        items = headers.items() if isinstance(headers, dict) else (headers or [])
        return cls(
            _json.dumps(data).encode("utf-8"),
            status,
            [("content-type", "application/json"), *items],
        )

    def _parse_json(self) -> Any:
        """The body, parsed as JSON."""
        return _json.loads(self.body)

    json = _either(classmethod(_make_json), _parse_json)

    def header(self, name: str) -> Optional[str]:
        """The first value of header `name` (case-insensitive), as text."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value.decode("latin-1") if isinstance(value, bytes) else value
        return None

    def text(self) -> str:
        """The body, decoded as UTF-8."""
        return self.body.decode("utf-8")

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    def __repr__(self) -> str:
        return f"<Response {self.status}, {len(self.body)} bytes>"


@dataclass
class Context:
    """What floe tells an event handler about one invocation; `trigger` is
    what started it (see `floe.trigger`)."""

    request_id: str
    function: str
    version: int
    deadline_ms: int
    memory_limit: int
    content_type: Optional[str]

    @property
    def trigger(self) -> Optional["CronRun | MqttMessage"]:
        """The trigger that started this invocation: a `CronRun`, an
        `MqttMessage`, or `None` (an invocation over HTTP or the API)."""
        return trigger(self)


# Triggers, over floe:function/trigger.


@dataclass
class CronRun:
    """A cron trigger fired: its `name`, `schedule` (the cron expression),
    `time_zone` (an IANA name, or `UTC`) and `scheduled_ms`, when the run
    was due (ms since the Unix epoch; after downtime with `missed = "once"`
    the last time missed). `kind` is `"cron"`."""

    name: str
    schedule: str
    time_zone: str
    scheduled_ms: int
    kind: str = field(default="cron", init=False)

    def to_dict(self) -> dict[str, Any]:
        """The fields, `kind` included, as a dict (ready for `json.dumps`)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "schedule": self.schedule,
            "time_zone": self.time_zone,
            "scheduled_ms": self.scheduled_ms,
        }


@dataclass
class MqttMessage:
    """An MQTT message arrived (its payload is the event's payload, its
    MQTT 5 content type the context's `content_type`): the trigger's
    `name`, the `topic` it was published to, the `qos` it came with (0 or
    1; at 1 it may arrive twice, never zero times), the broker's `retain`
    flag and its MQTT 5 `user_properties`, as `(key, value)` pairs in
    order. `kind` is `"mqtt"`."""

    name: str
    topic: str
    qos: int
    retain: bool
    user_properties: list[tuple[str, str]] = field(default_factory=list)
    kind: str = field(default="mqtt", init=False)

    def to_dict(self) -> dict[str, Any]:
        """The fields, `kind` included, as a dict (ready for `json.dumps`)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "topic": self.topic,
            "qos": self.qos,
            "retain": self.retain,
            "user_properties": [list(p) for p in self.user_properties],
        }


def _event_only(what: str) -> str:
    if _wasi == "p3":
        return f"{what} is not available in a WASI 0.3 build yet: build the event function for WASI 0.2 (the default)"
    return f"{what} works only in event functions (@floe.event): an HTTP function has no trigger and no MQTT outbox"


def trigger(ctx: "Context | str") -> Optional[CronRun | MqttMessage]:
    """What started the invocation `ctx` (an event handler's `Context`, or
    its request id): a `CronRun`, an `MqttMessage`, or `None` when no
    trigger did (an invocation over HTTP or the API). `ctx.trigger` says
    the same. Raises `RuntimeError` in an HTTP function (or a WASI 0.3
    build), which has no triggers."""
    request_id = ctx if isinstance(ctx, str) else ctx.request_id
    if _wasi is None:
        return None
    if _trigger is None:
        raise RuntimeError(_event_only("floe.trigger"))
    fired = _trigger.get(request_id)
    if fired is None:
        return None
    value = fired.value
    if isinstance(fired, _trigger.Fired_Cron):
        return CronRun(value.name, value.schedule, value.time_zone, value.scheduled_ms)
    return MqttMessage(
        value.name,
        value.topic,
        value.qos,
        value.retain,
        [(k, v) for k, v in value.user_properties],
    )


# Publishing, over floe:function/mqtt.


class PublishError(Exception):
    """`publish` did not queue the message; nothing was stored. `kind` says
    why: `not_configured` (the function has no broker: no `publish` setting
    and no MQTT trigger, or it is not an event function), `invalid` (an
    empty or wildcard topic, a payload over the server's limit),
    `outbox_full` (the broker has been away and the outbox is at its
    bound: try later, or fail the invocation so that it is retried) or
    `failed` (storing it failed). `message` is floe's explanation."""

    _WORDS = {
        "not_configured": "no broker to publish to",
        "invalid": "invalid message",
        "outbox_full": "outbox full",
        "failed": "publishing failed",
    }

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{self._WORDS.get(kind, kind)}: {message}")
        self.kind = kind
        self.message = message


_PUBLISH_KINDS = {
    "PublishError_NotConfigured": "not_configured",
    "PublishError_Invalid": "invalid",
    "PublishError_OutboxFull": "outbox_full",
    "PublishError_Failed": "failed",
}


def publish(topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
    """Queues an MQTT message for `topic` in the function's durable outbox,
    and returns once it is on disk; floe sends it to the broker (the
    function's `publish` setting, else its first MQTT trigger's broker) as
    soon as the broker takes it, in order per topic, across outages and
    restarts. `payload` is bytes, or text sent as UTF-8; `qos` is 1 (at
    least once: kept until the broker acknowledged it) or 0 (at most once);
    `retain` asks the broker to keep it for later subscribers. Raises
    `PublishError` when it was not queued (never drops it silently)."""
    if qos not in (0, 1):
        raise ValueError(f"qos {qos!r}: floe publishes with QoS 0 or 1")
    data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    if _wasi is None:
        raise PublishError("not_configured", "floe.publish works only inside a floe function (a built component)")
    if _mqtt is None:
        raise PublishError("not_configured", _event_only("floe.publish"))
    level = _mqtt.Qos.AT_LEAST_ONCE if qos == 1 else _mqtt.Qos.AT_MOST_ONCE
    try:
        _mqtt.publish(topic, data, level, bool(retain))
    except _Err as e:
        error = e.value
        kind = _PUBLISH_KINDS.get(type(error).__name__, "failed")
        raise PublishError(kind, str(getattr(error, "value", error))) from None


def _response(value: Any) -> Response:
    if isinstance(value, Response):
        return value
    if isinstance(value, (str, bytes, bytearray)):
        return Response(value if isinstance(value, str) else bytes(value))
    if value is None:
        return Response(b"", 204)
    return Response.json(value)


def _payload(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if value is None:
        return b""
    return _json.dumps(value).encode("utf-8")


# Outbound HTTP, over wasi:http/outgoing-handler.

_CHUNK = 4096  # the most one blocking write may take
_READ = 65536


class FetchError(Exception):
    """`fetch` got no response: a bad URL, a refused connection, a timeout,
    a broken stream. (A response with an error status is not an exception:
    look at `status` or `ok`.)"""


def _error_code(code: Any) -> str:
    """`ErrorCode_ConnectionRefused()` -> `connection refused`, with the
    case's details if any."""
    name = type(code).__name__.removeprefix("ErrorCode_")
    words = "".join(f" {c.lower()}" if c.isupper() else c for c in name).strip()
    detail = getattr(code, "value", None)
    if hasattr(detail, "__dict__"):
        detail = ", ".join(f"{k}={v}" for k, v in vars(detail).items() if v is not None) or None
    return words if detail is None else f"{words} ({detail})"


def _stream_error(error: Any) -> str:
    """What a `StreamError_LastOperationFailed` says (and drops its resource)."""
    io_error = getattr(error, "value", None)
    if io_error is None:
        return "stream error"
    try:
        code = _http.http_error_code(io_error)
        text = _error_code(code) if code is not None else io_error.to_debug_string()
    finally:
        io_error.__exit__(None, None, None)
    return text


def _method(name: str) -> Any:
    cls = getattr(_http, "Method_" + name.capitalize(), None)
    if cls is not None and name != "OTHER":
        return cls()
    return _http.Method_Other(name)


def _wait(pollable: Any, deadline: Optional[int], what: str) -> None:
    """Blocks until `pollable` is ready, or raises `FetchError` at `deadline`
    (a monotonic-clock instant). Drops `pollable`."""
    try:
        if deadline is None:
            pollable.block()
            return
        timer = _clock.subscribe_instant(deadline)
        try:
            ready = _poll.poll([pollable, timer])
        finally:
            timer.__exit__(None, None, None)
        if 0 not in ready:
            raise FetchError(f"timed out {what}")
    finally:
        pollable.__exit__(None, None, None)


def fetch(
    url: str,
    method: str = "GET",
    body: bytes | str = b"",
    headers: Optional[dict[str, str] | list[tuple[str, str | bytes]]] = None,
    timeout: Optional[float] = None,
) -> Response:
    """Sends an HTTP request and returns the response, its body read in full.

    `url` is `http://` or `https://`; `body` (bytes, or text sent as UTF-8) is
    sent with a `content-length`; `timeout` (seconds) bounds the whole
    exchange, body included. A response with any status is returned (see
    `Response.ok`); `FetchError` is raised when there is none: a bad URL or
    header, a failed connection, a timeout, a broken stream."""
    if _wasi is None:
        raise FetchError("floe.fetch works only inside a floe function (a built component)")
    if _wasi == "p3":
        raise FetchError(
            "floe.fetch blocks, which a WASI 0.3 function must not: use `await floe.fetch_async(...)`"
        )
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        raise FetchError(f"{url!r}: not an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise FetchError(f"{url!r}: credentials in the URL are not supported; send a header")
    method = method.upper()
    what = f"{method} {url}"
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    items = list(headers.items() if isinstance(headers, dict) else (headers or []))
    entries = [(k, v.encode("latin-1") if isinstance(v, str) else bytes(v)) for k, v in items]
    has_body = bool(data) or method in ("POST", "PUT", "PATCH")
    if has_body and not any(k.lower() == "content-length" for k, _ in entries):
        entries.append(("content-length", str(len(data)).encode()))
    deadline = None
    if timeout is not None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        deadline = _clock.now() + int(timeout * 1e9)

    try:
        fields = _http.Fields.from_list(entries)
    except _Err as e:
        raise FetchError(f"{what}: invalid header ({type(e.value).__name__.removeprefix('HeaderError_')})") from None
    request = _http.OutgoingRequest(fields)
    try:
        request.set_method(_method(method))
        request.set_scheme(_http.Scheme_Https() if scheme == "https" else _http.Scheme_Http())
        request.set_authority(parts.netloc)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        request.set_path_with_query(path)
    except _Err:
        request.__exit__(None, None, None)
        raise FetchError(f"{what}: invalid method or URL") from None
    outgoing_body = request.body() if has_body else None
    try:
        future = _outgoing.handle(request, None)
    except _Err as e:
        if outgoing_body is not None:
            outgoing_body.__exit__(None, None, None)
        raise FetchError(f"{what}: {_error_code(e.value)}") from None

    try:
        write_error = None
        if outgoing_body is not None:
            stream = outgoing_body.write()
            try:
                for at in range(0, len(data), _CHUNK):
                    stream.blocking_write_and_flush(data[at : at + _CHUNK])
            except _Err as e:
                write_error = _stream_error(e.value) if not isinstance(e.value, _streams.StreamError_Closed) else "closed"
            finally:
                stream.__exit__(None, None, None)
            if write_error is None:
                try:
                    _http.OutgoingBody.finish(outgoing_body, None)
                except _Err as e:
                    write_error = _error_code(e.value)
            else:
                outgoing_body.__exit__(None, None, None)  # dropped unfinished: the request fails
        return _receive(future, deadline, what, write_error)
    finally:
        future.__exit__(None, None, None)


def _receive(future: Any, deadline: Optional[int], what: str, write_error: Optional[str]) -> Response:
    result = future.get()
    if result is None:
        _wait(future.subscribe(), deadline, f"waiting for {what}")
        result = future.get()
    if not isinstance(result, _Ok):
        raise FetchError(f"{what}: no response")
    if not isinstance(result.value, _Ok):
        raise FetchError(f"{what}: {_error_code(result.value.value)}")
    if write_error is not None:
        result.value.value.__exit__(None, None, None)
        raise FetchError(f"{what}: sending the body failed: {write_error}")
    with result.value.value as incoming:
        status = incoming.status()
        with incoming.headers() as fields:
            entries = fields.entries()
        body = incoming.consume()
        stream = body.stream()
        chunks = []
        try:
            while True:
                try:
                    chunk = stream.blocking_read(_READ) if deadline is None else stream.read(_READ)
                except _Err as e:
                    if isinstance(e.value, _streams.StreamError_Closed):
                        break
                    raise FetchError(f"{what}: reading the body failed: {_stream_error(e.value)}") from None
                if chunk:
                    chunks.append(chunk)
                elif deadline is not None:
                    _wait(stream.subscribe(), deadline, f"reading the body of {what}")
        finally:
            stream.__exit__(None, None, None)
            _http.IncomingBody.finish(body).__exit__(None, None, None)
    return Response(
        b"".join(chunks),
        status,
        [(k, v.decode("latin-1")) for k, v in entries],
    )


async def fetch_async(
    url: str,
    method: str = "GET",
    body: bytes | str = b"",
    headers: Optional[dict[str, str] | list[tuple[str, str | bytes]]] = None,
    timeout: Optional[float] = None,
) -> Response:
    """`fetch` for WASI 0.3 functions (`floe-py build --wasi p3`): the same
    arguments and result, awaited over `wasi:http/client@0.3` while the
    instance serves its other requests. `timeout` (seconds) bounds each
    phase: connecting, the first byte of the response, and each wait
    between bytes."""
    if _wasi != "p3":
        raise FetchError("floe.fetch_async works only in a WASI 0.3 build (floe-py build --wasi p3)")
    import floe_p3

    return await floe_p3.fetch(url, method, body, headers, timeout)


async def sleep(seconds: float) -> None:
    """Awaits `seconds` without holding the instance (WASI 0.3 builds)."""
    if _wasi != "p3":
        raise RuntimeError("floe.sleep works only in a WASI 0.3 build (floe-py build --wasi p3)")
    import floe_p3

    await floe_p3.sleep(seconds)


def config(key: str, default: Optional[str] = None) -> Optional[str]:
    """The function's variable or secret `key` (read through
    `wasi:config/store`), or `default` when there is none. Changing them
    stops the function's instances, so a value read once stays right. While
    `init` runs for a deploy-time snapshot the store is empty, and reading
    it makes floe run `init` in every instance instead."""
    if _wasi is None:
        return default
    try:
        value = _config_store.get(key)
    except Exception:
        return default
    return default if value is None else value


def config_all() -> dict[str, str]:
    """Every variable and secret of the function, by key."""
    if _wasi is None:
        return {}
    try:
        return dict(_config_store.get_all())
    except Exception:
        return {}

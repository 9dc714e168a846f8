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
"""

from __future__ import annotations

import json as _json
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl

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


class Response:
    """An HTTP response."""

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

    @classmethod
    def json(cls, data: Any, status: int = 200) -> "Response":
        return cls(
            _json.dumps(data).encode("utf-8"),
            status,
            [("content-type", "application/json")],
        )


@dataclass
class Context:
    """What floe tells an event handler about one invocation."""

    request_id: str
    function: str
    version: int
    deadline_ms: int
    memory_limit: int
    content_type: Optional[str]


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

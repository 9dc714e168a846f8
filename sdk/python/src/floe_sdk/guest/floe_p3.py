"""WASI 0.3 helpers of the `floe` module (inside a component built with
`floe-py build --wasi p3`): outbound HTTP over `wasi:http/client@0.3` and
timers, both awaited without holding the instance."""

from __future__ import annotations

from typing import Any, Optional
from urllib.parse import urlsplit

import componentize_py_async_support
import floe
import wit_world
from componentize_py_types import Err, Ok
from wit_world.imports import client as _client
from wit_world.imports import monotonic_clock as _clock

try:  # the event world also imports wasi:filesystem, whose `types` wins the name
    from wit_world.imports import wasi_http_types as _http
except ImportError:
    from wit_world.imports import types as _http

_READ = 65536


def method_name(method: Any) -> str:
    """`Method_Get()` -> `GET`; `Method_Other("PURGE")` -> `PURGE`."""
    if isinstance(method, _http.Method_Other):
        return method.value
    return type(method).__name__.removeprefix("Method_").upper()


def _method(name: str) -> Any:
    cls = getattr(_http, "Method_" + name.capitalize(), None)
    if cls is not None and name != "OTHER":
        return cls()
    return _http.Method_Other(name)


async def read_all(contents: Any) -> bytes:
    """Every byte of a `stream<u8>` until its writer closes it."""
    parts = []
    with contents:
        while not contents.writer_dropped:
            chunk = await contents.read(_READ)
            if chunk:
                parts.append(chunk)
    return b"".join(parts)


async def _write(tx: Any, data: bytes) -> None:
    with tx:
        await tx.write_all(data)


async def sleep(seconds: float) -> None:
    """Awaits `seconds` on the monotonic clock."""
    await _clock.wait_for(max(0, int(seconds * 1e9)))


async def fetch(
    url: str,
    method: str = "GET",
    body: bytes | str = b"",
    headers: Optional[dict[str, str] | list[tuple[str, str | bytes]]] = None,
    timeout: Optional[float] = None,
) -> floe.Response:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        raise floe.FetchError(f"{url!r}: not an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise floe.FetchError(f"{url!r}: credentials in the URL are not supported; send a header")
    method = method.upper()
    what = f"{method} {url}"
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    items = list(headers.items() if isinstance(headers, dict) else (headers or []))
    entries = [(k, v.encode("latin-1") if isinstance(v, str) else bytes(v)) for k, v in items]
    has_body = bool(data) or method in ("POST", "PUT", "PATCH")
    if has_body and not any(k.lower() == "content-length" for k, _ in entries):
        entries.append(("content-length", str(len(data)).encode()))
    options = None
    if timeout is not None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        ns = int(timeout * 1e9)
        options = _http.RequestOptions()
        for setter in (options.set_connect_timeout, options.set_first_byte_timeout, options.set_between_bytes_timeout):
            try:
                setter(ns)
            except Err:
                pass
    try:
        fields = _http.Fields.from_list(entries)
    except Err as e:
        raise floe.FetchError(
            f"{what}: invalid header ({type(e.value).__name__.removeprefix('HeaderError_')})"
        ) from None
    body_rx = None
    body_tx = None
    if has_body:
        body_tx, body_rx = wit_world.byte_stream()
    trailers_tx, trailers_rx = wit_world.result_option_wasi_http_types_fields_wasi_http_types_error_code_future(
        lambda: Ok(None)
    )
    request, sent = _http.Request.new(fields, body_rx, trailers_rx, options)
    trailers_tx.__exit__(None, None, None)
    try:
        request.set_method(_method(method))
        request.set_scheme(_http.Scheme_Https() if scheme == "https" else _http.Scheme_Http())
        request.set_authority(parts.netloc)
        request.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    except Err:
        request.__exit__(None, None, None)
        if body_tx is not None:
            body_tx.__exit__(None, None, None)
        sent.__exit__(None, None, None)
        raise floe.FetchError(f"{what}: invalid method or URL") from None
    if body_tx is not None:
        componentize_py_async_support.spawn(_write(body_tx, data))
    try:
        response = await _client.send(request)
    except Err as e:
        raise floe.FetchError(f"{what}: {floe._error_code(e.value)}") from None
    finally:
        sent.__exit__(None, None, None)
    status = response.get_status_code()
    with response.get_headers() as fields:
        entries = fields.copy_all()
    done_tx, done_rx = wit_world.result_unit_wasi_http_types_error_code_future(lambda: Ok(None))
    contents, trailers = _http.Response.consume_body(response, done_rx)
    with done_tx:
        data = await read_all(contents)
        ended = await trailers.read()
    if isinstance(ended, Err):
        raise floe.FetchError(f"{what}: reading the body failed: {floe._error_code(ended.value)}")
    return floe.Response(data, status, [(k, v.decode("latin-1")) for k, v in entries])

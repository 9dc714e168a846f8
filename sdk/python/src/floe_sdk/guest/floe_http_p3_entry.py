"""Entry of a Python WASI 0.3 HTTP function: adapts `wasi:http/handler@0.3`
and floe's async lifecycle to the handler and hooks marked in the `floe`
module. The handler may be `async def` (an `await` lets the instance serve
its other requests meanwhile) or a plain `def`. `APP_MODULE` is replaced by
the author's module name at build time."""

import sys
import traceback

import componentize_py_async_support
import floe
import floe_p3  # also loaded now for floe.fetch_async: a component imports nothing later
import wit_world
from componentize_py_types import Ok
from wit_world import exports
from wit_world.imports.wasi_http_types import Fields, Request, Response

from floe_lifecycle_p3 import Lifecycle  # noqa: F401  (exported)

import APP_MODULE  # noqa: F401  (registers the handler and hooks)


async def _request(request: Request) -> floe.Request:
    with request.get_headers() as headers:
        entries = headers.copy_all()
    method = floe_p3.method_name(request.get_method())
    path = request.get_path_with_query() or "/"
    done_tx, done_rx = wit_world.result_unit_wasi_http_types_error_code_future(lambda: Ok(None))
    contents, trailers = Request.consume_body(request, done_rx)
    with done_tx, trailers:
        body = await floe_p3.read_all(contents)
    return floe.Request(method=method, path=path, headers=entries, body=body)


async def _write(tx: object, data: bytes) -> None:
    with tx:
        await tx.write_all(data)


class Handler(exports.Handler):
    async def handle(self, request: Request) -> Response:
        try:
            if floe._kind != "http":
                raise RuntimeError("no @floe.http handler")
            result = floe._handler(await _request(request))
            if hasattr(result, "__await__"):
                result = await result
            response = floe._response(result)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            response = floe.Response("the function raised an exception\n", 500)
        fields = Fields.from_list(
            [(k, v.encode("latin-1") if isinstance(v, str) else v) for k, v in response.headers]
        )
        body_tx, body_rx = wit_world.byte_stream()
        trailers_tx, trailers_rx = wit_world.result_option_wasi_http_types_fields_wasi_http_types_error_code_future(
            lambda: Ok(None)
        )
        outgoing, sent = Response.new(fields, body_rx, trailers_rx)
        outgoing.set_status_code(response.status)
        componentize_py_async_support.spawn(_write(body_tx, response.body))
        trailers_tx.__exit__(None, None, None)
        sent.__exit__(None, None, None)
        return outgoing

"""Entry of a Python HTTP function: adapts wasi:http and floe's lifecycle to
the handler and hooks marked in the `floe` module. `APP_MODULE` is replaced
by the author's module name at build time."""

import sys
import traceback

import floe
from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import streams, types

from floe_lifecycle import Lifecycle  # noqa: F401  (exported)

import APP_MODULE  # noqa: F401  (registers the handler and hooks)

_CHUNK = 4096  # the most one blocking write may take


def _method(method: types.Method) -> str:
    if isinstance(method, types.Method_Other):
        return method.value
    return type(method).__name__.removeprefix("Method_").upper()


def _read_body(request: types.IncomingRequest) -> bytes:
    body = request.consume()
    stream = body.stream()
    parts = []
    while True:
        try:
            parts.append(stream.blocking_read(65536))
        except Err as e:
            if isinstance(e.value, streams.StreamError_Closed):
                break
            raise
    stream.__exit__(None, None, None)
    types.IncomingBody.finish(body)
    return b"".join(parts)


def _request(request: types.IncomingRequest) -> floe.Request:
    headers = request.headers()
    entries = headers.entries()
    headers.__exit__(None, None, None)
    return floe.Request(
        method=_method(request.method()),
        path=request.path_with_query() or "/",
        headers=entries,
        body=_read_body(request),
    )


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: types.IncomingRequest, response_out: types.ResponseOutparam) -> None:
        try:
            if floe._kind != "http":
                raise RuntimeError("no @floe.http handler")
            response = floe._response(floe._handler(_request(request)))
        except Exception:
            traceback.print_exc(file=sys.stderr)
            response = floe.Response("the function raised an exception\n", 500)
        fields = types.Fields.from_list(
            [(k, v.encode("latin-1") if isinstance(v, str) else v) for k, v in response.headers]
        )
        outgoing = types.OutgoingResponse(fields)
        outgoing.set_status_code(response.status)
        body = outgoing.body()
        types.ResponseOutparam.set(response_out, Ok(outgoing))
        stream = body.write()
        data = response.body
        for at in range(0, len(data), _CHUNK):
            stream.blocking_write_and_flush(data[at : at + _CHUNK])
        stream.__exit__(None, None, None)
        types.OutgoingBody.finish(body, None)

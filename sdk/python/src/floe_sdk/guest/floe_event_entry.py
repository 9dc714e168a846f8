"""Entry of a Python event function: adapts floe's event and lifecycle
interfaces to the handler and hooks marked in the `floe` module.
`APP_MODULE` is replaced by the author's module name at build time."""

import sys
import traceback

import floe
from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import event

from floe_lifecycle import Lifecycle  # noqa: F401  (exported)

import APP_MODULE  # noqa: F401  (registers the handler and hooks)


class Event(exports.Event):
    def handle(self, context: event.Context, payload: bytes) -> bytes:
        if floe._kind != "event":
            raise Err(event.Error_Failed("no @floe.event handler"))
        ctx = floe.Context(
            request_id=context.request_id,
            function=context.function,
            version=context.version,
            deadline_ms=context.deadline_ms,
            memory_limit=context.memory_limit,
            content_type=context.content_type,
        )
        try:
            return floe._payload(floe._handler(bytes(payload), ctx))
        except floe.InvalidInput as e:
            raise Err(event.Error_InvalidInput(str(e)))
        except Exception as e:
            traceback.print_exc(file=sys.stderr)
            raise Err(event.Error_Failed(f"{type(e).__name__}: {e}"))

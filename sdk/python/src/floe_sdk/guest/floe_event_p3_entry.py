"""Entry of a Python WASI 0.3 event function (`floe:function/event@0.2.0`):
many invocations run on one instance at once, each awaiting in turn. The
handler may be `async def` or a plain `def`. `APP_MODULE` is replaced by
the author's module name at build time."""

import sys
import traceback

import floe
import floe_p3  # noqa: F401  (loaded now: a component imports nothing later)
from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import event

from floe_lifecycle_p3 import Lifecycle  # noqa: F401  (exported)

import APP_MODULE  # noqa: F401  (registers the handler and hooks)


class Event(exports.Event):
    async def handle(self, context: event.Context, payload: bytes) -> bytes:
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
            result = floe._handler(bytes(payload), ctx)
            if hasattr(result, "__await__"):
                result = await result
            return floe._payload(result)
        except floe.InvalidInput as e:
            raise Err(event.Error_InvalidInput(str(e)))
        except Exception as e:
            traceback.print_exc(file=sys.stderr)
            raise Err(event.Error_Failed(f"{type(e).__name__}: {e}"))

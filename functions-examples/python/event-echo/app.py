"""An event function on binary payloads: answers the payload reversed, byte
by byte (bytes stay bytes, valid UTF-8 or not). An empty payload is invalid
input; the payload `fail` makes it fail; `context` answers its context."""

import json

import floe


@floe.event
def handle(payload: bytes, ctx: floe.Context) -> bytes:
    if not payload:
        raise floe.InvalidInput("empty payload")
    if payload == b"fail":
        raise RuntimeError("asked to fail")
    if payload == b"context":
        return json.dumps(
            {"function": ctx.function, "version": ctx.version, "content_type": ctx.content_type}
        ).encode()
    return payload[::-1]

"""{{name}}: an event function. Bytes in, bytes out."""

import floe


@floe.event
def handle(payload: bytes, ctx: floe.Context) -> bytes:
    if not payload:
        raise floe.InvalidInput("empty payload")
    return f"{ctx.function} got {len(payload)} bytes\n".encode()

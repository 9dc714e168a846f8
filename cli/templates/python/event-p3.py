"""{{name}}: a WASI 0.3 event function. floe runs up to 16 invocations at
once on each of its instances: while one awaits (floe.fetch_async,
floe.sleep), the others go on."""

import floe


@floe.event
async def handle(payload: bytes, ctx: floe.Context) -> bytes:
    if not payload:
        raise floe.InvalidInput("empty payload")
    return f"{ctx.function} got {len(payload)} bytes\n".encode()

"""{{name}}: a WASI 0.3 HTTP function. floe serves up to 16 requests at once
on each of its instances: while one awaits (floe.fetch_async, floe.sleep),
the others go on."""

import floe


@floe.http
async def handle(request: floe.Request) -> floe.Response:
    path = request.path.partition("?")[0]
    return floe.Response(f"hello from {{name}}, path={path}\n")

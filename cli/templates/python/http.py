"""{{name}}: an HTTP function."""

import floe


@floe.http
def handle(request: floe.Request) -> floe.Response:
    path = request.path.partition("?")[0]
    return floe.Response(f"hello from {{name}}, path={path}\n")

"""Hello world: an HTTP function in Python."""

import floe


@floe.http
def handle(request: floe.Request) -> floe.Response:
    return floe.Response(f"hello from python, path={request.path}\n")

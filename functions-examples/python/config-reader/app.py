"""Reads the function's variables and secrets (`floe config NAME --var
greeting=hi --secret api_token=@token.txt`) with `floe.config`.

- `GET /` answers `{greeting} from config-reader`; `init` read the
  `greeting` variable once (so floe runs `init` per instance, not in a
  snapshot);
- `GET /var/KEY` answers the variable KEY (404 without it);
- `GET /secret/KEY?expect=VALUE` answers whether the secret KEY equals
  VALUE, and its length: a function should not echo its secrets;
- `GET /keys` answers every name, one a line."""

import sys

import floe

STATE = {"greeting": "hello"}


@floe.init
def setup() -> None:
    STATE["greeting"] = floe.config("greeting", "hello")


@floe.pre_stop
def stop() -> None:
    print(f"config-reader pre-stop greeting={STATE['greeting']}", file=sys.stderr)


@floe.http
def handle(request: floe.Request) -> floe.Response:
    path = request.path.partition("?")[0]
    if path == "/":
        return floe.Response(f"{STATE['greeting']} from config-reader\n")
    if path == "/keys":
        return floe.Response("\n".join(sorted(floe.config_all())) + "\n")
    if path.startswith("/var/"):
        key = path.removeprefix("/var/")
        value = floe.config(key)
        if value is None:
            return floe.Response(f"no variable {key}\n", 404)
        return floe.Response(f"{value}\n")
    if path.startswith("/secret/"):
        key = path.removeprefix("/secret/")
        value = floe.config(key)
        if value is None:
            return floe.Response(f"no secret {key}\n", 404)
        expect = request.query.get("expect", "")
        return floe.Response(f"match={str(value == expect).lower()} len={len(value)}\n")
    return floe.Response("no such route\n", 404)

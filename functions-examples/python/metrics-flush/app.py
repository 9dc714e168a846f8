"""Buffered metrics, flushed from the lifecycle hooks with `floe.fetch`.

Every request counts its path (without the query) in memory and is answered
`counted {path}`. A request header `x-collector: URL` sets where to flush
(remembered). When the instance is about to be parked (`pre_freeze`), the
counts so far, if any, are POSTed to the collector as JSON
`{"hook": "pre-freeze", "counts": {path: n}}` and cleared; when it is about
to be stopped (`pre_stop`), whatever remains is POSTed as
`{"hook": "pre-stop", "counts": {...}}`."""

import json
import sys

import floe

COUNTS: dict[str, int] = {}
COLLECTOR: list[str] = []  # where to flush, once a request said


@floe.http
def handle(request: floe.Request) -> floe.Response:
    path = request.path.partition("?")[0]
    COUNTS[path] = COUNTS.get(path, 0) + 1
    collector = request.header("x-collector")
    if collector:
        COLLECTOR[:] = [collector]
    return floe.Response(f"counted {path}\n")


def flush(hook: str) -> bool:
    """POSTs the counts to the collector; whether it answered 2xx."""
    body = json.dumps({"hook": hook, "counts": COUNTS}, separators=(",", ":"))
    try:
        reply = floe.fetch(
            COLLECTOR[0],
            method="POST",
            body=body,
            headers={"content-type": "application/json"},
            timeout=5,
        )
    except floe.FetchError as e:
        print(f"metrics-flush: {hook}: {e}", file=sys.stderr)
        return False
    if not reply.ok:
        print(f"metrics-flush: {hook}: the collector answered {reply.status}", file=sys.stderr)
    return reply.ok


@floe.pre_freeze
def flush_buffer() -> None:
    if COUNTS and COLLECTOR and flush("pre-freeze"):
        COUNTS.clear()


@floe.pre_stop
def flush_rest() -> None:
    if COLLECTOR:
        flush("pre-stop")

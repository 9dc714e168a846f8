"""A WASI 0.3 event function in Python with async hooks (`floe-py build
--wasi p3`): many invocations share an instance, each awaiting in turn.

The payload is JSON: `{"sleep_ms": N}` awaits a timer; `{"fail": true}`
raises (500); anything that is not JSON is refused (400). The answer says
what `init` built and how many times `pre-freeze` ran in this instance."""

import json
import sys

import floe

STATE = {"words": 0, "freezes": 0}


@floe.init
async def setup() -> None:
    await floe.sleep(0.001)  # awaiting in a hook is allowed
    STATE["words"] = len("the quick brown fox jumps over the lazy dog".split())


@floe.pre_freeze
async def freeze() -> None:
    await floe.sleep(0.001)
    STATE["freezes"] += 1


@floe.pre_stop
async def stop() -> None:
    print(f"py-event-p3 pre-stop after {STATE['freezes']} freezes", file=sys.stderr)


@floe.event
async def handle(payload: bytes, ctx: floe.Context) -> dict:
    try:
        command = json.loads(payload)
    except ValueError as e:
        raise floe.InvalidInput(f"the payload is not JSON: {e}")
    if command.get("fail"):
        raise RuntimeError("asked to fail")
    ms = int(command.get("sleep_ms", 0))
    await floe.sleep(ms / 1000)
    return {"slept_ms": ms, "words": STATE["words"], "freezes": STATE["freezes"]}

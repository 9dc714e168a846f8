"""floe's async lifecycle hooks (`floe:function/lifecycle@0.2.0`), for WASI
0.3 functions: each calls the hook marked in the `floe` module, if any, and
awaits it when it is `async def`. The build lists the marked ones in the
component's `floe:hooks` section, so floe never calls the others."""

import sys
import traceback

import floe
import floe_p3  # noqa: F401  (loaded now: a component imports nothing later)
from componentize_py_types import Err
from wit_world import exports


async def _run_hook(name: str) -> None:
    hook = floe._hooks.get(name)
    if hook is None:
        return
    try:
        result = hook()
        if hasattr(result, "__await__"):
            await result
    except Exception as e:
        traceback.print_exc(file=sys.stderr)
        raise Err(f"{type(e).__name__}: {e}")


class Lifecycle(exports.Lifecycle):
    async def init(self) -> None:
        await _run_hook("init")

    async def pre_freeze(self) -> None:
        await _run_hook("pre_freeze")

    async def pre_stop(self) -> None:
        await _run_hook("pre_stop")

"""floe's lifecycle hooks, for both kinds of function: each calls the hook
marked in the `floe` module, if any. The build lists the marked ones in the
component's `floe:hooks` section, so floe never calls the others."""

import sys
import traceback

import floe
from componentize_py_types import Err
from wit_world import exports


def _run_hook(name: str) -> None:
    hook = floe._hooks.get(name)
    if hook is None:
        return
    try:
        hook()
    except Exception as e:
        traceback.print_exc(file=sys.stderr)
        raise Err(f"{type(e).__name__}: {e}")


class Lifecycle(exports.Lifecycle):
    def init(self) -> None:
        _run_hook("init")

    def pre_freeze(self) -> None:
        _run_hook("pre_freeze")

    def pre_stop(self) -> None:
        _run_hook("pre_stop")

"""`floe-py build app.py -o app.wasm`: builds a floe function written in
Python into a WebAssembly component with componentize-py.

The kind of function (HTTP or event) and its hooks come from the decorators
in the source (`@floe.http` / `@floe.event`, `@floe.init`,
`@floe.pre_freeze`, `@floe.pre_stop`); the hooks defined are listed in the
component's `floe:hooks` section, so floe calls only those.

`--wasi p3` builds a WASI 0.3 component (`wasi:http/handler@0.3`, or
`floe:function/event@0.2.0`, with `floe:function/lifecycle@0.2.0`), whose
instances serve many requests at once: the handler and hooks may be
`async def`. WASI 0.2 (the default) takes plain `def`s only.
"""

from __future__ import annotations

import argparse
import ast
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
GUEST = HERE / "guest"
WIT = HERE / "wit"
WORLDS = {
    "p2": {"http": "floe:function/http-function", "event": "floe:function/event-function"},
    "p3": {"http": "floe:function/http-function", "event": "floe:function/event-function"},
}
KINDS = ("http", "event")
HOOKS = ("init", "pre_freeze", "pre_stop")


class BuildError(Exception):
    """A build that cannot go on; the message says why (file:line where known)."""


@dataclass
class Shape:
    """What the source declares."""

    kind: str
    hooks: list[str] = field(default_factory=list)
    # `async def` handler or hooks, as (name, line).
    coroutines: list[tuple[str, int]] = field(default_factory=list)


def _decorator_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "floe":
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def inspect_source(path: Path) -> Shape:
    """Parses `path` and finds its handler and hooks."""
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as e:
        raise BuildError(f"{path}: {e.strerror}") from e
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as e:
        raise BuildError(f"{path}:{e.lineno}:{e.offset or 0}: SyntaxError: {e.msg}") from e
    kinds: list[tuple[str, int]] = []
    hooks: list[str] = []
    coroutines: list[tuple[str, int]] = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for decorator in node.decorator_list:
            name = _decorator_name(decorator)
            if name in KINDS:
                kinds.append((name, node.lineno))
            elif name in HOOKS and name not in hooks:
                hooks.append(name)
            else:
                continue
            if isinstance(node, ast.AsyncFunctionDef):
                coroutines.append((node.name, node.lineno))
    if not kinds:
        raise BuildError(
            f"{path}: no handler: mark one function with @floe.http or @floe.event"
        )
    if len(kinds) > 1:
        lines = ", ".join(f"line {line}" for _, line in kinds)
        raise BuildError(f"{path}:{kinds[1][1]}: more than one handler ({lines}); a function has one")
    return Shape(kind=kinds[0][0], hooks=hooks, coroutines=coroutines)


def _leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def hooks_section(hooks: list[str]) -> bytes:
    """A `floe:hooks` custom section naming `hooks`."""
    name = b"floe:hooks"
    payload = " ".join(h.replace("_", "-") for h in hooks).encode()
    body = _leb128(len(name)) + name + payload
    return b"\x00" + _leb128(len(body)) + body


def _componentize() -> list[str]:
    exe = Path(sys.executable).parent / "componentize-py"
    found = str(exe) if exe.exists() else shutil.which("componentize-py")
    if not found:
        raise BuildError("componentize-py is not installed (pip install floe-sdk installs it)")
    return [found]


def build(source: Path, output: Path, wasi: str = "p2") -> Shape:
    """Builds `source` into the component `output`, for WASI `wasi` (`p2`
    or `p3`)."""
    if wasi not in WORLDS:
        raise BuildError(f"--wasi {wasi}: not a WASI release floe-py builds for (p2 or p3)")
    shape = inspect_source(source)
    if wasi == "p2" and shape.coroutines:
        name, line = shape.coroutines[0]
        raise BuildError(
            f"{source}:{line}: `async def {name}` needs a WASI 0.3 build (floe-py build --wasi p3); "
            "WASI 0.2 handlers and hooks are plain `def`s"
        )
    module = source.stem
    if not module.isidentifier():
        raise BuildError(f"{source}: the file name must be a Python module name")
    suffix = "_p3" if wasi == "p3" else ""
    with tempfile.TemporaryDirectory(prefix="floe-py-") as tmp:
        entry = (GUEST / f"floe_{shape.kind}{suffix}_entry.py").read_text(encoding="utf-8")
        Path(tmp, "floe_entry.py").write_text(entry.replace("APP_MODULE", module), encoding="utf-8")
        output.parent.mkdir(parents=True, exist_ok=True)
        command = _componentize() + [
            "-d",
            str(WIT / "p3" if wasi == "p3" else WIT),
            "-w",
            WORLDS[wasi][shape.kind],
            "componentize",
            "floe_entry",
            "-p",
            tmp,
            "-p",
            str(GUEST),
            "-p",
            str(source.resolve().parent),
            "-o",
            str(output),
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise BuildError(f"componentize-py failed:\n{done.stderr.strip() or done.stdout.strip()}")
    with output.open("ab") as out:
        out.write(hooks_section(shape.hooks))
    return shape


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="floe-py", description="Build floe functions written in Python.")
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("build", help="build a function into a WebAssembly component")
    b.add_argument("source", type=Path, help="the function's module, e.g. app.py")
    b.add_argument("-o", "--output", type=Path, help="the component to write (default: SOURCE with .wasm)")
    b.add_argument(
        "--wasi",
        choices=sorted(WORLDS),
        default="p2",
        help="the WASI release: p2 (the default), or p3 (many requests at once per instance, async def handlers)",
    )
    args = parser.parse_args(argv)
    output = args.output or args.source.with_suffix(".wasm")
    began = time.monotonic()
    try:
        shape = build(args.source, output, args.wasi)
    except BuildError as e:
        print(f"floe-py: error: {e}", file=sys.stderr)
        return 1
    size = output.stat().st_size
    hooks = ", ".join(shape.hooks) or "none"
    print(
        f"floe-py: built {output} (WASI {'0.3' if args.wasi == 'p3' else '0.2'} {shape.kind} function, hooks: {hooks}, "
        f"{size / 1e6:.1f} MB) in {time.monotonic() - began:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

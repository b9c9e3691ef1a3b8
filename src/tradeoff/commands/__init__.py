"""Command-line subcommands, one module per pipeline stage; each defines ``register(sub)`` and adds its
commands with ``sub.add_parser("<name>", ...)``.

The registry is read from the modules' source (:func:`commands`), not kept by hand: a module of this package
that defines ``register`` is a command module, and every ``sub.add_parser`` call with a literal name in it
registers that command. The CLI then imports only the module of the command a job runs.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

__all__ = ["commands", "modules"]

_HERE = Path(__file__).parent


def _names(tree: ast.Module) -> list[str]:
    """The literal names of the ``sub.add_parser(...)`` calls in a module's syntax tree."""
    return [node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_parser"
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "sub"
            and node.args and isinstance(node.args[0], ast.Constant)]


@cache
def commands() -> dict[str, str]:
    """``{command name: module}`` of every command defined in this package."""
    out: dict[str, str] = {}
    for path in sorted(_HERE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if not any(isinstance(n, ast.FunctionDef) and n.name == "register" for n in tree.body):
            continue
        for name in _names(tree):
            if name in out:
                raise RuntimeError(f"command {name!r} defined twice ({out[name]}, {path.stem})")
            out[name] = f"{__name__}.{path.stem}"
    return out


def modules() -> list[str]:
    """The command modules, each once, in the order of their first command's name."""
    return list(dict.fromkeys(module for _, module in sorted(commands().items())))

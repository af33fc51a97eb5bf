"""The `so101lab` command: every flag of every launcher has a one-line help (its field docstring)."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import itertools
import textwrap
import types
import typing

import pytest

from so101lab.experiments.cli import COMMANDS


def _dataclasses_of(tp: object) -> list[type]:
    """The dataclasses a launcher's argument type is made of (unions of subcommands, nested options)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType, typing.Annotated):
        return [dc for arg in typing.get_args(tp) for dc in _dataclasses_of(arg)]
    if not (isinstance(tp, type) and dataclasses.is_dataclass(tp)):
        return []
    found = [tp]
    for hint in typing.get_type_hints(tp).values():
        found += _dataclasses_of(hint)
    return found


def _fields_without_docstring(cls: type) -> list[str]:
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    documented = {
        node.target.id
        for node, after in itertools.pairwise(body)
        if isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
    }
    return [f.name for f in dataclasses.fields(cls) if f.init and f.name not in documented]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_flag_has_a_help_line(command):
    module = importlib.import_module(COMMANDS[command][0])
    hints = typing.get_type_hints(module.main)
    arg_type = next(t for name, t in hints.items() if name != "return")
    classes = _dataclasses_of(arg_type)
    assert classes
    undocumented = {c.__qualname__: _fields_without_docstring(c) for c in classes}
    assert not any(undocumented.values()), undocumented

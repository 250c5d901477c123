"""
The package's shape: small modules, each saying what it owns.
"""

from __future__ import annotations

import ast
from pathlib import Path

import sequence_async


PACKAGE = Path(sequence_async.__file__).parent


def modules() -> list[Path]:
    """Every module of the package."""
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_under_400_lines() -> None:
    """No module reaches 400 lines."""
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in modules()
        if (n := len(p.read_text().splitlines())) >= 400
    }

    assert {} == long


def test_every_module_says_what_it_owns() -> None:
    """Every module opens with a docstring."""
    bare = [
        str(p.relative_to(PACKAGE))
        for p in modules()
        if p.name != "__main__.py" and not ast.get_docstring(ast.parse(p.read_text()))
    ]

    assert [] == bare

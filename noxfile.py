"""
Sessions: tests, lint, typing, bench, demo (``nox -s NAME``).
"""

from __future__ import annotations

import nox


nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint", "typing"]
nox.options.reuse_existing_virtualenvs = True

PYPROJECT = nox.project.load_toml("pyproject.toml")


def _group(name: str) -> list[str]:
    return list(nox.project.dependency_groups(PYPROJECT, name))


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite with coverage (fails under 90%)."""
    session.install(".", *_group("tests"))
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", *session.posargs)
    session.run("coverage", "combine", "--quiet")
    session.run("coverage", "report")


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff (lint and format) and the import-boundary contracts."""
    session.install(".", *_group("lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")


@nox.session
def typing(session: nox.Session) -> None:
    """Mypy --strict over the package and the tests."""
    session.install(".", *_group("typing"))
    session.run("mypy")
    session.run("mypy", "tests")


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmarks of benchmarks/README.md, side by side in one run."""
    session.install(".[cli]", *_group("bench"))
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Bulk trigger-and-wait against the embedded fake server."""
    session.install(".[cli]")
    session.run("sequence-async", "demo", *session.posargs)

"""
Sessions: tests, lint, typing, bench, demo, docs (``nox -s NAME``).
"""

from __future__ import annotations

import ast
import json
import re
import tempfile
from pathlib import Path

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
    """Mypy --strict over the package, the tests and the examples."""
    session.install(".", *_group("typing"))
    session.run("mypy")
    session.run("mypy", "tests")
    session.run("mypy", "examples")


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


# -- docs: the API reference, generated at build time --------------------------
#
# The top level of the repository holds no docs configuration: the session
# writes mkdocs.yml and the pages into a temporary folder, from the README,
# examples/ and the public API (``__all__`` of ``sequence_async`` and of
# ``sequence_async.testing``, read statically), then builds with --strict.

ROOT = Path(__file__).resolve().parent
SOURCE_URL = PYPROJECT["project"]["urls"]["Source"] + "/blob/main/"
# Reference pages: the module a public name comes from -> its page (pages and
# their entries follow this order).
DOC_PAGES = {
    "_client": "Client",
    "_rules": "Client",
    "_resources": "Client",
    "_execution": "Client",
    "_paging": "Client",
    "_retry": "Client",
    "_bulk": "Bulk runs",
    "_outcomes": "Bulk runs",
    "_journal": "Bulk runs",
    "_observe": "Observability",
    "models": "Models",
    "errors": "Errors",
}


# A griffe extension, written next to mkdocs.yml: griffe reads the source
# without running it, so it cannot see the __init__ that attrs makes. This
# gives each attrs class one, from its fields (kw_only and defaults
# included), so its signature shows and its "Args:" match real parameters.
ATTRS_INIT = """
import re

from griffe import Extension, Function, Parameter, ParameterKind, Parameters

DECORATORS = re.compile(r"^attrs?\\.(frozen|define|mutable|attrs|s)\\b")


class AttrsInit(Extension):
    def on_class_members(self, *, cls, **kwargs):
        found = [str(d.value) for d in cls.decorators]
        found = [d for d in found if DECORATORS.match(d)]
        if not found or "__init__" in cls.members:
            return
        all_kw = "kw_only=True" in found[0]
        parameters = [Parameter("self", kind=ParameterKind.positional_or_keyword)]
        for member in cls.members.values():
            if member.is_alias or not member.is_attribute:
                continue
            if "property" in member.labels or member.annotation is None:
                continue
            if "ClassVar" in str(member.annotation):
                continue
            value = None if member.value is None else str(member.value)
            default = value
            if value is not None and value.startswith(("attrs.field(", "attr.ib(")):
                match = re.search(r"\\bdefault=([^,)]+)", value)
                default = match.group(1) if match else None
                if "factory=" in value:
                    default = "..."
                if "init=False" in value:
                    continue
            keyword = all_kw or (value is not None and "kw_only=True" in value)
            kind = (
                ParameterKind.keyword_only
                if keyword
                else ParameterKind.positional_or_keyword
            )
            name = member.name.lstrip("_")
            parameters.append(
                Parameter(
                    name, annotation=member.annotation, kind=kind, default=default
                )
            )
        init = Function(
            "__init__",
            parameters=Parameters(*parameters),
            returns="None",
            lineno=cls.lineno,
            endlineno=cls.lineno,
        )
        cls.set_member("__init__", init)
"""


def _docs_public(init: Path) -> tuple[list[str], dict[str, str]]:
    """
    A module's ``__all__``, and where each name it imports comes from.

    Read from the source, without importing the package.
    """
    tree = ast.parse(init.read_text(encoding="utf-8"))
    origin: dict[str, str] = {}
    public: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            for alias in node.names:
                origin[alias.asname or alias.name] = node.module
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            public = ast.literal_eval(node.value)
    return public, origin


def _docs_links(markdown: str) -> str:
    """
    The README's relative links, made to work on the site.

    examples/ and its files go to the examples page; other files, which are
    not pages, to the repository.
    """

    def target(match: re.Match[str]) -> str:
        path = match.group(1)
        if path.rstrip("/") == "examples":
            return "](examples.md)"
        if path.startswith("examples/") and path.endswith(".py"):
            anchor = path.removeprefix("examples/").replace(".", "")
            return f"](examples.md#{anchor})"
        return f"]({SOURCE_URL}{path})"

    return re.sub(r"\]\((?!https?:|#|mailto:)([^)]+)\)", target, markdown)


def _docs_examples() -> str:
    """
    The examples page: each program's summary line and its whole source.
    """
    intro = (
        "Small programs, each run against the fake server by "
        "`tests/test_examples.py`. Point them at a server with "
        "`SEQUENCE_BASE_URL` and `SEQUENCE_API_KEY` (`sequence-async serve` "
        "prints both).\n"
    )
    parts = ["# Examples\n", intro]
    for path in sorted((ROOT / "examples").glob("*.py")):
        source = path.read_text(encoding="utf-8")
        summary = (ast.get_docstring(ast.parse(source)) or "").splitlines()[0]
        parts.append(f"## {path.name}\n\n{summary}\n\n```python\n{source}```\n")
    return "\n".join(parts)


def _docs_project(folder: Path, site: Path) -> Path:
    """
    Write mkdocs.yml and every page under *folder*; return the config path.
    """
    docs = folder / "docs"
    (docs / "reference").mkdir(parents=True)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (docs / "index.md").write_text(_docs_links(readme), encoding="utf-8")
    (docs / "examples.md").write_text(_docs_examples(), encoding="utf-8")

    pages: dict[str, list[str]] = {}
    public, origin = _docs_public(ROOT / "sequence_async/__init__.py")
    modules = [*DOC_PAGES, ""]  # "": a module no page claims (yet)

    def rank(name: str) -> int:
        module = origin.get(name, "")
        return modules.index(module if module in modules else "")

    # On each page, in the order of DOC_PAGES' modules: the client first.
    for name in sorted(public, key=rank):
        if name == "__version__":
            continue
        # A name from a module no page claims yet still gets documented.
        page = DOC_PAGES.get(origin.get(name, ""), "Other")
        pages.setdefault(page, []).append(name)
    nav: list[object] = [{"Overview": "index.md"}, {"Examples": "examples.md"}]
    reference: list[object] = []
    for title, names in pages.items():
        page = "reference/" + title.lower().replace(" ", "-") + ".md"
        body = "\n\n".join(f"::: sequence_async.{name}" for name in names)
        (docs / page).write_text(f"# {title}\n\n{body}\n", encoding="utf-8")
        reference.append({title: page})

    testing, _ = _docs_public(ROOT / "sequence_async/testing/__init__.py")
    testing_page = (
        "# Testing\n\n"
        "::: sequence_async.testing\n"
        "    options:\n"
        "      show_root_heading: false\n"
        f"      members: {json.dumps(testing)}\n\n"
        "## The pytest plugin\n\n"
        "::: sequence_async.testing.plugin\n"
        "    options:\n"
        "      show_root_heading: false\n"
        '      members: ["sequence_server", "sequence_client"]\n'
    )
    (docs / "reference/testing.md").write_text(testing_page, encoding="utf-8")
    reference.append({"Testing": "reference/testing.md"})
    nav.append({"API reference": reference})

    extension = folder / "attrs_init.py"
    config = {
        "site_name": PYPROJECT["project"]["name"],
        "site_description": PYPROJECT["project"]["description"],
        "repo_url": PYPROJECT["project"]["urls"]["Source"],
        "edit_uri": "",  # the pages are generated: nothing to edit
        "docs_dir": str(docs),
        "site_dir": str(site),
        "theme": {"name": "mkdocs"},
        "nav": nav,
        "markdown_extensions": [{"toc": {"permalink": True}}, "admonition"],
        "validation": {
            "omitted_files": "warn",
            "absolute_links": "warn",
            "unrecognized_links": "warn",
            "anchors": "warn",
        },
        "plugins": [
            "search",
            {
                "mkdocstrings": {
                    "default_handler": "python",
                    "handlers": {
                        "python": {
                            "paths": [str(ROOT)],
                            "options": {
                                "extensions": [str(extension)],
                                "docstring_style": "google",
                                "members_order": "source",
                                "merge_init_into_class": True,
                                "show_root_heading": True,
                                "show_root_full_path": False,
                                "show_source": False,
                                "show_signature_annotations": True,
                                "separate_signature": True,
                                "line_length": 80,
                                "show_symbol_type_heading": True,
                                "filters": ["!^_"],
                                "heading_level": 2,
                            },
                        }
                    },
                }
            },
        ],
    }
    path = folder / "mkdocs.yml"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML
    extension.write_text(ATTRS_INIT, encoding="utf-8")
    return path


@nox.session
def docs(session: nox.Session) -> None:
    """
    The API reference from the README and the docstrings; warnings are errors.

    Writes the site to .nox/docs/tmp/site (or to the folder given after --).
    """
    session.install(*_group("docs"))
    if session.posargs:
        site = Path(session.posargs[0]).resolve()
    else:
        site = Path(session.create_tmp()).resolve() / "site"
    with tempfile.TemporaryDirectory() as folder:
        config = _docs_project(Path(folder), site)
        session.run("mkdocs", "build", "--strict", "--clean", "-f", str(config))
    session.log(f"API reference: {site / 'index.html'}")

"""
The pytest plugin (entry point ``sequence_async``): fake-server fixtures.

Gives ``sequence_server``, a fake server on loopback whose clock moves only
when the test says (``sequence_server.advance(seconds)``) or when it ends an
execution (``sequence_server.finish(id)``), and ``sequence_client``, a
``SequenceClient`` bound to it, speaking its API, that polls every 10 ms and
retries without sleeping.

The API both speak is the ``sequence_api`` fixture: ``--sequence-api``, else
the ``sequence_api`` ini option, else ``"api-v1"``. A suite may override it,
or give it ``params`` to run each test once per API.

Both run on pytest-asyncio, in strict or auto mode. A test marked
``@pytest.mark.asyncio`` (or run in auto mode) gets them on its own event
loop, whatever its ``loop_scope``: each public fixture is a plain dispatcher
that picks the variant bound to the test's loop, so the server and the test
never sit on different loops. Without pytest-asyncio, from an async test
pytest-asyncio will not run (unmarked in strict mode), or from an anyio
test, requesting a fixture fails at once saying what to change. Imports of
the SDK stay inside the fixtures, so merely having the package installed
costs a pytest run nothing.

May import: ``sequence_async`` (public API), ``testing``.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Literal

import pytest


if TYPE_CHECKING:
    from sequence_async import SequenceClient
    from sequence_async.testing import FakeSequence


LoopScope = Literal["function", "class", "module", "package", "session"]
LOOP_SCOPES: tuple[LoopScope, ...] = (
    "function",
    "class",
    "module",
    "package",
    "session",
)

_NO_PYTEST_ASYNCIO = (
    "{name} needs pytest-asyncio: install pytest-asyncio (pip install "
    "pytest-asyncio) and mark async tests with @pytest.mark.asyncio, or set "
    "asyncio_mode = auto. anyio's pytest plugin alone cannot run it."
)
_NOT_LOADED = (
    "{name} needs pytest-asyncio, which is installed but not loaded (plugin "
    "autoloading is off: PYTEST_DISABLE_PLUGIN_AUTOLOAD): add -p asyncio "
    "to the pytest command."
)
_ANYIO = (
    "{name} runs on pytest-asyncio, not anyio: mark this test "
    "@pytest.mark.asyncio instead of @pytest.mark.anyio."
)
APIS: tuple[str, ...] = ("api-v1", "platform-v1")
_HELP = "the API the sequence_server fixture speaks: api-v1 (default) or platform-v1"
_UNMARKED = (
    "{nodeid} is an async test that pytest-asyncio will not run: in strict "
    "mode, mark it @pytest.mark.asyncio (or set pytestmark = "
    "pytest.mark.asyncio in the module), or set asyncio_mode = auto."
)


def pytest_addoption(parser: pytest.Parser) -> None:
    """
    ``--sequence-api`` and the ``sequence_api`` ini option.
    """
    parser.getgroup("sequence-async").addoption(
        "--sequence-api", dest="sequence_api", choices=APIS, help=_HELP
    )
    parser.addini("sequence_api", _HELP, default="api-v1")


def _variant(name: str, request: pytest.FixtureRequest) -> str:
    """
    Name the variant of fixture *name* bound to the requesting test's loop.

    Fails the test at once when pytest-asyncio is missing or will not run it.
    """
    if not request.config.pluginmanager.hasplugin("asyncio"):
        installed = importlib.util.find_spec("pytest_asyncio") is not None
        pytest.fail(
            (_NOT_LOADED if installed else _NO_PYTEST_ASYNCIO).format(name=name),
            pytrace=False,
        )
    default: str = request.config.getini("asyncio_default_test_loop_scope")
    marker = request.node.get_closest_marker("asyncio")
    if marker is None:
        if request.node.get_closest_marker("anyio") is not None:
            pytest.fail(_ANYIO.format(name=name), pytrace=False)
        if inspect.iscoroutinefunction(getattr(request.node, "obj", None)):
            pytest.fail(_UNMARKED.format(nodeid=request.node.nodeid), pytrace=False)
        scope = default  # a sync test: the fixture runs on the default loop
    else:
        scope = marker.kwargs.get("loop_scope") or marker.kwargs.get("scope")
        scope = scope or default
    if scope not in LOOP_SCOPES:
        pytest.fail(
            f"{name}: unknown asyncio loop_scope {scope!r}; "
            f"use one of {', '.join(LOOP_SCOPES)}",
            pytrace=False,
        )
    return f"_{name}_on_{scope}_loop"


@pytest.fixture
def sequence_api(request: pytest.FixtureRequest) -> str:
    """
    The API ``sequence_server`` speaks: ``"api-v1"`` or ``"platform-v1"``.

    ``--sequence-api``, else the ``sequence_api`` ini option, else
    ``"api-v1"``. Override it, or give it ``params``, to choose per test.
    """
    api: str = request.config.getoption("sequence_api") or request.config.getini(
        "sequence_api"
    )
    if api not in APIS:
        pytest.fail(
            f"sequence_api must be one of {', '.join(APIS)}, not {api!r}",
            pytrace=False,
        )
    return api


@pytest.fixture
def sequence_server(
    request: pytest.FixtureRequest,
    sequence_api: str,  # noqa: ARG001 (see below)
) -> FakeSequence:
    """
    A fake Sequence server with the demo organization and a manual clock.

    It speaks ``sequence_api``. Move time with
    ``sequence_server.advance(seconds)``; end an execution with
    ``sequence_server.finish(id)``.
    """
    # sequence_api is requested here too, not only by the variant (a dynamic
    # request), so that a suite's params or parametrize of it reach the test.
    server: FakeSequence = request.getfixturevalue(_variant("sequence_server", request))
    return server


@pytest.fixture
def sequence_client(request: pytest.FixtureRequest) -> SequenceClient:
    """
    A ``SequenceClient`` bound to ``sequence_server``, polling every 10 ms.

    It speaks the server's API (``sequence_server.api``), whatever
    ``SEQUENCE_API`` says.

    It retries as the default policy does (3 retries) but without sleeping
    between attempts.
    """
    client: SequenceClient = request.getfixturevalue(
        _variant("sequence_client", request)
    )
    return client


def _server_on(scope: LoopScope) -> Callable[[str], AsyncIterator[FakeSequence]]:
    async def server_on_loop(sequence_api: str) -> AsyncIterator[FakeSequence]:
        from sequence_async.testing import ManualClock, serve  # noqa: PLC0415

        async with serve(clock=ManualClock(), api=sequence_api) as server:
            yield server

    server_on_loop.__doc__ = f"sequence_server on the {scope}-scoped loop."
    return server_on_loop


def _client_on(
    scope: LoopScope,
) -> Callable[[FakeSequence], AsyncIterator[SequenceClient]]:
    async def client_on_loop(
        sequence_server: FakeSequence,
    ) -> AsyncIterator[SequenceClient]:
        from sequence_async import (  # noqa: PLC0415
            PollPolicy,
            RetryPolicy,
            SequenceClient,
        )

        poll = PollPolicy(wait_initial=0.01, multiplier=1.0, wait_max=0.01, jitter=0.0)
        async with SequenceClient(
            sequence_server.api_key,
            api=sequence_server.api,  # never a SEQUENCE_API of the environment
            base_url=sequence_server.url,
            poll=poll,
            retry=RetryPolicy(wait_initial=0, wait_max=0),
            coordinator=False,  # never a SEQUENCE_REDIS_URL of the environment
        ) as client:
            yield client

    client_on_loop.__doc__ = f"sequence_client on the {scope}-scoped loop."
    return client_on_loop


# One variant per loop scope, each a fresh function (pytest-asyncio marks the
# function object): function-scoped, so every test gets its own server, and
# run on the loop of its scope.
if importlib.util.find_spec("pytest_asyncio") is not None:
    import pytest_asyncio

    for _scope in LOOP_SCOPES:
        globals()[f"_sequence_server_on_{_scope}_loop"] = pytest_asyncio.fixture(
            _server_on(_scope),
            name=f"_sequence_server_on_{_scope}_loop",
            loop_scope=_scope,
        )
        globals()[f"_sequence_client_on_{_scope}_loop"] = pytest_asyncio.fixture(
            _client_on(_scope),
            name=f"_sequence_client_on_{_scope}_loop",
            loop_scope=_scope,
        )

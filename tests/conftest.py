"""
Shared fixtures: a client for aioresponses cases, the mock, the fake server.

Every test that uses the fake server (``server``, ``live``), the
``FakeTransport`` seam's ``wire``, or ``api`` itself runs once per API
profile, ``api-v1`` and ``platform-v1``: the same behaviour, spoken in both
wire languages. ``@pytest.mark.apis("api-v1")``
limits a test (or a module, through ``pytestmark``) to the profiles named,
for what only one surface has; ``apis(scope="module")`` groups a module's
tests by profile, so that a module-scoped fixture may take ``api``. The
``server`` fixture also sets ``SEQUENCE_API``, so clients a test builds
itself speak the server's API.

The aioresponses shim: aioresponses 0.7.9 builds ``aiohttp.ClientResponse``
without the ``stream_writer`` argument that aiohttp 3.14 requires
(pnuckowski/aioresponses#289). Until a fixed release, its response class is
replaced by a subclass that supplies one. The shim installs itself only when
aiohttp's signature needs it and aioresponses does not pass it, so it turns
into a no-op once either side is fixed: delete it then.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import aiohttp
import aioresponses.core
import pytest
import pytest_asyncio
import redis
from aiohttp import web
from aioresponses import aioresponses as Aioresponses  # noqa: N812

from sequence_async import PollPolicy, RetryPolicy, SequenceClient
from sequence_async._poller import Poller
from sequence_async._profiles import API_NAMES, PROFILES
from sequence_async._requester import Requester, Shared
from sequence_async._secret import Secret
from sequence_async._wire import Headers, Request, Response
from sequence_async.testing import FakeSequence, ManualClock, serve
from sequence_async.testing.dialect import Dialect, dialect_named

from . import redis_server
from .test_cli_support import serving_api


BASE_URL = "https://api.test/api/v1"
API_KEY = "sk_live_SUPERSECRET_0123456789"
FAST_POLL = PollPolicy(wait_initial=0.005, multiplier=1.0, wait_max=0.005, jitter=0.0)
NO_WAIT_RETRIES = RetryPolicy(max_retries=3, wait_initial=0.0, wait_max=0.0)


def _needs_stream_writer_shim() -> bool:
    wanted = (
        "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters
    )
    passed = "stream_writer" in inspect.getsource(
        aioresponses.core.RequestMatch._build_response
    )
    return wanted and not passed


if _needs_stream_writer_shim():  # aioresponses#289: remove when fixed upstream

    class _ShimmedResponse(aiohttp.ClientResponse):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
            super().__init__(*args, **kwargs)

    aioresponses.core.ClientResponse = _ShimmedResponse  # type: ignore[attr-defined]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that uses ``api`` once per profile (or those it marks)."""
    if "api" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("apis")
    names = marker.args if marker and marker.args else API_NAMES
    scope = marker.kwargs.get("scope") if marker else None
    metafunc.parametrize("api", names, scope=scope)


@pytest.fixture
def mock_http() -> Iterator[Aioresponses]:
    """
    aioresponses, letting loopback (the fake server) through.
    """
    with Aioresponses(passthrough=["http://127.0.0.1"]) as mock:
        yield mock


@pytest_asyncio.fixture
async def client() -> AsyncIterator[SequenceClient]:
    """
    A client of a mocked base URL whose retries do not sleep.
    """
    async with SequenceClient(
        API_KEY, base_url=BASE_URL, poll=FAST_POLL, retry=NO_WAIT_RETRIES
    ) as c:
        yield c


@pytest.fixture
def clock() -> ManualClock:
    """
    The fake server's clock: time moves only when a test says so.
    """
    return ManualClock()


@pytest_asyncio.fixture
async def server(
    clock: ManualClock, api: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FakeSequence]:
    """
    The fake server on loopback speaking *api*: the demo organization, a manual clock.
    """
    monkeypatch.setenv("SEQUENCE_API", api)
    async with serve(clock=clock, api=api) as s:
        yield s


@pytest_asyncio.fixture
async def live(server: FakeSequence) -> AsyncIterator[SequenceClient]:
    """
    A client talking real HTTP to ``server`` in its API, polling every 5 ms.
    """
    async with SequenceClient(
        server.api_key,
        api=server.api,
        base_url=server.url,
        poll=FAST_POLL,
        retry=NO_WAIT_RETRIES,
    ) as c:
        yield c


@pytest.fixture(scope="module", params=API_NAMES)
def served(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[dict[str, str]]:
    """
    A ``sequence-async serve --api API`` process per module and API; its env.
    """
    with serving_api(tmp_path_factory.mktemp("served"), request.param) as env:
        yield env


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """
    A real Redis (or Valkey) server for the session, started on first use.
    """
    with redis_server.running() as server:
        yield server.url


@pytest.fixture
def fresh(redis_url: str) -> Iterator[redis.Redis]:
    """
    That Redis, emptied before the test, through a plain (sync) client.
    """
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        client.flushall()
        yield client


def url(path: str) -> str:
    """
    The mocked URL of an API path.
    """
    return BASE_URL + path


def envelope(data: Any, **extra: Any) -> dict[str, Any]:
    """
    A success body.
    """
    return {"request_id": "req_srv_1", "data": data, **extra}


Answer = Response | BaseException | Callable[[Request], Response]


class FakeTransport:
    """
    The test double at the seam: canned answers in order, every request kept.

    Each answer is a ``Response``, an exception to raise, or a function of
    the request; the last one repeats.
    """

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.sent: list[Request] = []
        self.timeouts: list[float] = []
        self.closed = False

    async def send(self, request: Request, *, timeout: float) -> Response:
        """Record *request* and give the next answer."""
        self.sent.append(request)
        self.timeouts.append(timeout)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer(request) if callable(answer) else answer

    async def aclose(self) -> None:
        """Remember the close."""
        self.closed = True


def ok(data: Any, code: int = 200) -> Response:
    """A success answer with *data* in the envelope."""
    return Response(code, {}, json.dumps(envelope(data)).encode())


def status(
    code: int, body: bytes = b"", *, headers: dict[str, str] | None = None
) -> Response:
    """An answer with *code*, a raw body and *headers*."""
    return Response(code, headers or {}, body)


def requester(transport: FakeTransport, **settings: Any) -> Requester:
    """A requester over *transport* whose retries do not sleep (api-v1 by default)."""
    options: dict[str, Any] = {
        "timeout": 5.0,
        "retry": NO_WAIT_RETRIES,
        "poll": FAST_POLL,
        "api": "api-v1",
        "called_reason": None,
        **settings,
    }
    profile = PROFILES[options["api"]]
    return Requester(
        Shared(transport, poller=Poller()),
        Secret(profile.authorization(API_KEY)),
        Headers(),
        options["timeout"],
        options["retry"],
        options["poll"],
        profile,
        options["called_reason"],
    )


class Wire:
    """
    One profile's side of the ``FakeTransport`` seam, for tests run on both.

    Canned answers are written in api-v1's terms (snake_case, lowercase
    enums and codes) and spoken in *api*'s language by the fake server's
    dialect, which is written from the API reference, not from the client;
    what a request means is read back through the same dialect.
    """

    def __init__(self, api: str) -> None:
        self.api = api
        self.dialect: Dialect = dialect_named(api)
        self.authorization = f"{self.dialect.scheme} {API_KEY}"

    def requester(self, transport: FakeTransport, **settings: Any) -> Requester:
        """A requester of this profile over *transport* (see ``requester``)."""
        return requester(transport, **{"api": self.api, **settings})

    def ok(self, data: Any, code: int = 200) -> Response:
        """A success answer with *data*, request id ``req_srv_1``."""
        return answer(code, self.dialect.envelope("req_srv_1", data, None))

    def listing(self, items: list[Any]) -> Response:
        """A whole list: api-v1's bare list, or Platform's one and only page."""
        page_info = {"page": 1, "pageSize": 100, "hasNextPage": False}
        return answer(
            200,
            self.dialect.envelope(
                "req_srv_1", items, page_info if self.dialect.platform else None
            ),
        )

    def error(self, code: int, error_code: str, message: str = "m") -> Response:
        """An error answer with api-v1's *error_code* in this profile's code."""
        return api_error(code, self.dialect.code(error_code, None), message)

    def body_of(self, request: Request, route: str) -> Any:
        """The JSON body of *request*, as the server of *route* reads it."""
        assert request.body is not None
        return self.dialect.body_in(json.loads(request.body), route)


@pytest.fixture
def wire(api: str) -> Wire:
    """
    ``Wire`` of *api*: the test runs once per profile.
    """
    return Wire(api)


def answer(code: int, body: Any, *, headers: dict[str, str] | None = None) -> Response:
    """An answer with *code* and *body* encoded as JSON."""
    return Response(code, headers or {}, json.dumps(body).encode())


def api_error(code: int, error_code: str = "c", message: str = "m") -> Response:
    """An error answer with the API's ``{"error": {"code", "message"}}`` body."""
    return answer(code, {"error": {"code": error_code, "message": message}})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def hostile(routes: Mapping[tuple[str, str], Handler]) -> AsyncIterator[str]:
    """
    A server on loopback answering *routes* ((method, path) -> handler).

    Yields its ``/api/v1`` base URL. For answers the fake server never gives:
    stalls, huge or endless bodies, redirects, garbage.
    """
    app = web.Application()
    for (method, route), handler in routes.items():
        app.router.add_route(method, "/api/v1" + route, handler)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/api/v1"
    finally:
        await runner.cleanup()

"""The service skeleton: one FastAPI app per service, with its consumer and relay beside it.

Engines, producers and consumers are built in the lifespan and closed on shutdown; nothing
connects at import time. Shutdown lets the consumer finish and commit the batch in hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import unquote

from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime import metrics
from runtime.clock import Clock, SystemClock
from runtime.consumer import BatchConsumer, BatchContext, Handler
from runtime.db import create_engine, read_session_factory, runtime_table, session_factory, transaction
from runtime.errors import install_problem_handlers, problem_response
from runtime.jobs import JobRunner, PeriodicJob
from runtime.kafka import make_producer
from runtime.logging import CORRELATION_HTTP_HEADER, configure_logging, correlation_id
from runtime.outbox import OutboxRelay, write_outbox
from runtime.settings import ConsumerSettings, OutboxSettings, RuntimeSettings

log = logging.getLogger(__name__)


@dataclass
class ConsumerSpec:
    """What a service consumes and how it applies a batch."""

    topics: Sequence[str]
    group_id: str
    handler: Handler


@dataclass
class ServiceSpec:
    """Everything that makes one service different from the others."""

    name: str
    title: str
    description: str
    settings: RuntimeSettings
    metadata: MetaData
    routers: Sequence[APIRouter]
    consumer: ConsumerSpec | None = None
    consumer_settings: ConsumerSettings = field(default_factory=ConsumerSettings)
    outbox_settings: OutboxSettings = field(default_factory=OutboxSettings)
    clock: Clock = field(default_factory=SystemClock)
    on_start: Callable[[ServiceRuntime], Awaitable[None]] | None = None
    on_stop: Callable[[ServiceRuntime], Awaitable[None]] | None = None
    openapi_tags: list[dict[str, Any]] | None = None
    jobs: Sequence[PeriodicJob] = ()


@dataclass
class ServiceRuntime:
    """The live parts of a running service, kept on `app.state.runtime`."""

    spec: ServiceSpec
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    producer: AIOKafkaProducer
    relay: OutboxRelay
    consumer: BatchConsumer | None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    jobs: dict[str, JobRunner] = field(default_factory=dict)

    @property
    def clock(self) -> Clock:
        return self.spec.clock

    @functools.cached_property
    def read_sessions(self) -> async_sessionmaker[AsyncSession]:
        return read_session_factory(self.engine)

    async def check_ready(self) -> dict[str, str]:
        """Which dependencies answer: the database and the broker."""
        checks: dict[str, str] = {}
        try:
            async with asyncio.timeout(2):
                async with self.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unavailable: {type(exc).__name__}"
        try:
            async with asyncio.timeout(2):
                await self.producer.client.fetch_all_metadata()
            checks["broker"] = "ok"
        except Exception as exc:
            checks["broker"] = f"unavailable: {type(exc).__name__}"
        if self.consumer is not None and not self.consumer.healthy:
            checks["consumer"] = "not consuming"
        return checks


def runtime_of(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


async def get_runtime(request: Request) -> ServiceRuntime:
    """The service's runtime as a dependency. Async on purpose: FastAPI runs a plain `def`
    dependency in its thread pool, a thread hand-off on every request for a dictionary lookup."""
    return runtime_of(request)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A request-scoped session in one transaction, committed when the route returns."""
    async with transaction(runtime_of(request).sessions) as session:
        yield session


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A request-scoped session for a route that only reads: one snapshot, writes refused
    (`runtime.db.read_session_factory`)."""
    async with runtime_of(request).read_sessions() as session:
        yield session


RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]
# For the read routes the gateway calls on every view; a route that writes takes SessionDep.
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session, scope="function")]
# `scope="function"`: the transaction commits when the route returns and before the response is
# sent, so a client that got a 2xx reads what it wrote, and a failed commit is an error response,
# never a success. (FastAPI's default runs this teardown after the response has gone out.)
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_publisher(session: SessionDep, runtime: RuntimeDep) -> AsyncIterator[BatchContext]:
    """A request's way to publish: events queued on it reach the outbox in the request's transaction."""
    context = BatchContext(session=session, clock=runtime.clock, source=runtime.spec.name)
    yield context
    await write_outbox(session, runtime.relay.table, context.outbox)


PublisherDep = Annotated[BatchContext, Depends(get_publisher, scope="function")]


async def _start_producer(producer: AIOKafkaProducer, name: str) -> None:
    """Start the producer, waiting for the broker rather than crash-looping."""
    delay = 0.2
    while True:
        try:
            await producer.start()
            return
        except Exception as exc:
            log.warning("producer.waiting_for_broker", extra={"service": name, "error": repr(exc)})
            metrics.TRANSIENT_FAILURES.labels(component="producer").inc()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


#: Allocations between young-generation collections (CPython's default is 700). A batch builds and
#: drops tens of thousands of short-lived objects; at 700 the collector ran so often, and its older
#: generations held so much, that it cost a quarter to a third of scoring's and engagement's CPU.
GC_THRESHOLDS = (10_000, 50, 100)


def settle_garbage_collector() -> None:
    """Once a service has started: what startup built (modules, schemas, pools) is moved out of
    the collector's sight for good (`gc.freeze`), and young collections run less often. Cycles are
    still collected; memory stays bounded by the same generations, only scanned less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def build_lifespan(spec: ServiceSpec) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = spec.settings
        engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
        relay: OutboxRelay | None = None

        def outbox_committed(within_s: float) -> None:
            if relay is not None:
                relay.wake(within_s)

        sessions = session_factory(engine, on_outbox_commit=outbox_committed)
        producer = make_producer(settings.kafka_bootstrap_servers, client_id=spec.name)
        await _start_producer(producer, spec.name)
        relay = OutboxRelay(
            name=spec.name,
            sessions=sessions,
            table=runtime_table(spec.metadata, "outbox"),
            producer=producer,
            settings=spec.outbox_settings,
        )
        consumer = None
        if spec.consumer is not None:
            consumer = BatchConsumer(
                name=spec.name,
                topics=spec.consumer.topics,
                group_id=spec.consumer.group_id,
                bootstrap_servers=settings.kafka_bootstrap_servers,
                sessions=sessions,
                processed_table=runtime_table(spec.metadata, "processed_events"),
                outbox_table=runtime_table(spec.metadata, "outbox"),
                handler=spec.consumer.handler,
                producer=producer,
                clock=spec.clock,
                settings=spec.consumer_settings,
            )
        runtime = ServiceRuntime(spec, engine, sessions, producer, relay, consumer)
        runtime.jobs = {
            job.name: JobRunner(
                service=spec.name,
                job=job,
                sessions=sessions,
                outbox_table=relay.table,
                clock=spec.clock,
            )
            for job in spec.jobs
        }
        app.state.runtime = runtime
        if spec.on_start is not None:
            await spec.on_start(runtime)
        runtime.tasks.append(asyncio.create_task(relay.run(), name=f"{spec.name}-relay"))
        if consumer is not None:
            runtime.tasks.append(asyncio.create_task(consumer.run(), name=f"{spec.name}-consumer"))
        for name, runner in runtime.jobs.items():
            runtime.tasks.append(asyncio.create_task(runner.run(), name=f"{spec.name}-job-{name}"))
        settle_garbage_collector()
        log.info("service.started", extra={"service": spec.name})
        try:
            yield
        finally:
            if consumer is not None:
                consumer.stop()
            for runner in runtime.jobs.values():
                runner.stop()
            relay.stop()
            done, pending = await asyncio.wait(runtime.tasks, timeout=15)
            for task in pending:
                task.cancel()
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error("service.task_failed", extra={"task": task.get_name(), "error": repr(task.exception())})
            if spec.on_stop is not None:
                await spec.on_stop(runtime)
            await producer.stop()
            await engine.dispose()
            log.info("service.stopped", extra={"service": spec.name})

    return lifespan


class HttpMetricsMiddleware:
    """Count requests and time them by route template (never by raw path), and carry the
    request's correlation id (`X-Correlation-Id`, made up when absent) into every log line, every
    call to another service and the response. Pure ASGI: no extra task or body stream per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        given = Headers(scope=scope).get(CORRELATION_HTTP_HEADER, "")
        value = given[:128] if given.isprintable() and given else str(uuid.uuid4())
        token = correlation_id.set(value)

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[CORRELATION_HTTP_HEADER] = value
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            correlation_id.reset(token)
            # The router records the route it matched in the shared scope.
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
            metrics.HTTP_SECONDS.labels(method, route).observe(time.perf_counter() - started)


MAX_BODY_BYTES = 8 * 1024 * 1024
NUL_PATTERNS = (b"\\u0000", b"\x00")


class InputGuardMiddleware:
    """Refuse, as a 422 (or 413) problem, what no route can store: NUL characters in the path, the
    query or a JSON body (PostgreSQL text cannot hold them), and bodies over 8 MiB. Pure ASGI, so
    the body is read once and handed on unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in unquote(scope.get("path", "")) or "\x00" in unquote(
            scope.get("query_string", b"").decode("latin-1")
        ):
            await self._refuse(scope, send, 422, "NUL characters are not accepted in the path or the query")
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                await self._refuse(scope, send, 413, f"the body is larger than {MAX_BODY_BYTES} bytes")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if any(pattern in body.lower() for pattern in NUL_PATTERNS):
            await self._refuse(scope, send, 422, "NUL characters are not accepted in the body")
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(scope: Scope, send: Send, status: int, detail: str) -> None:
        slug, title = ("validation", "Invalid request") if status == 422 else ("too-large", "Request too large")
        response = problem_response(status, slug, title, detail, scope.get("path", ""))
        await response(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def operations_router() -> APIRouter:
    """`/healthz`, `/readyz` and `/metrics`, the same on every service."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Readiness: the database and the broker answer")
    async def readyz(runtime: RuntimeDep) -> JSONResponse:
        checks = await runtime.check_ready()
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
        )

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def create_service_app(spec: ServiceSpec) -> FastAPI:
    """The FastAPI app of one service: its routes, the operations routes, problem errors."""
    configure_logging(spec.name, level=spec.settings.log_level, fmt=spec.settings.log_format)
    app = FastAPI(
        title=spec.title,
        description=spec.description,
        version="0.1.0",
        lifespan=build_lifespan(spec),
        openapi_tags=spec.openapi_tags,
    )
    install_problem_handlers(app)
    app.add_middleware(HttpMetricsMiddleware)
    app.add_middleware(InputGuardMiddleware)
    app.include_router(operations_router())
    for router in spec.routers:
        app.include_router(router)
    return app

"""The web app (`warga serve`): the Telegram and WhatsApp webhooks, the Open311 API, and the
health checks.

`/healthz` answers while the process lives (liveness); `/readyz` answers 200 only when the
database answers at the schema this code knows, every worker runs and stored updates are not
left waiting (readiness), else 503, with the details in both cases.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.conversation import Assistant
from bot.open311 import SWEEP_INTERVAL, Open311Context, create_api, run_backends
from bot.service import Channel, Service

Lifespan = Callable[[], AbstractAsyncContextManager[None]]


def create_app(
    assistant: Assistant | None,
    *,
    channels: Sequence[Channel] = (),
    open311: Open311Context | None = None,
    open311_interval: float | None = SWEEP_INTERVAL,
    **service_options: Any,
) -> Starlette:
    """Build the ASGI app for the channels given (their webhooks, and the service that
    handles what they store and sends what is answered).

    The Open311 API is always served; without a channel it is served alone. Hand-overs to
    agencies' systems run in the background when the city file gives an agency one;
    `open311_interval` None: not at all (a test drives them).
    """
    if open311 is None:
        if assistant is None:
            raise ValueError("the web app needs the bot or an Open311 context")
        open311 = Open311Context(
            assistant.sessions, assistant.city, assistant.responses, clock=assistant.clock
        )
    service = Service(assistant, channels, **service_options) if assistant is not None else None

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(_request: Request) -> Response:
        if service is None:
            return JSONResponse({"status": "ready"})
        ready, checks = await service.readiness()
        return JSONResponse(
            {"status": "ready" if ready else "not ready", **checks},
            status_code=200 if ready else 503,
        )

    routes: list[Any] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    for channel in channels:
        routes += channel.routes()
    lifespans: list[Lifespan] = []
    if service is not None:
        lifespans.append(_service_lifespan(service))
    if open311_interval is not None and open311.links:  # some agency has its own system
        lifespans.append(_open311_lifespan(open311, open311_interval))

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for each in lifespans:
                await stack.enter_async_context(each())
            yield

    app = Starlette(routes=routes, lifespan=lifespan)
    # Everything else is the Open311 API's, which answers what it does not know in the spec's
    # form (a Mount would not match a path holding a newline, and answer in plain text).
    app.router.default = create_api(open311)
    app.state.service = service
    return app


def _service_lifespan(service: Service) -> Lifespan:
    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    return lifespan


def _open311_lifespan(context: Open311Context, interval: float) -> Lifespan:
    """Hand tickets to agencies' systems and read their updates, in the background."""

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        task = asyncio.create_task(run_backends(context, interval=interval))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return lifespan

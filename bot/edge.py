"""What every webhook does with a request from outside: read at most so much of it, check it,
and store it before answering."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from actions.inbox import NewUpdate
from actions.text import TooDeep, clean_json

log = logging.getLogger(__name__)

BODY_LIMIT = 1024 * 1024  # bytes: a platform's update is a few kilobytes


class Refused(Exception):
    """A request that is not what the platform sends: answered with `status`, never queued."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


async def read_body(request: Request, limit: int = BODY_LIMIT) -> bytes:
    """The raw body, refused (413) as soon as it is known to be over `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refused(413, f"body of {declared} bytes, over {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """Parse and clean a JSON body (every string cleaned, nesting bounded); Refused (400)
    when it is not JSON a platform could have sent."""
    try:
        return checked_json(json.loads(body))
    except (ValueError, RecursionError) as exc:
        raise Refused(400, f"not JSON: {type(exc).__name__}") from None


def checked_json(value: Any) -> Any:
    """Clean JSON already parsed (every string cleaned); Refused (400) when nested too deep."""
    try:
        return clean_json(value)
    except TooDeep as exc:
        raise Refused(400, str(exc)) from None


def refusal_logged(channel: str, body_size: int, exc: Refused) -> None:
    """Log a refused request with its size and reason, never its body (it may be anyone's)."""
    log.warning(
        "%s webhook: refused %d-byte request (%s): %s", channel, body_size, exc.status, exc
    )


class Ingest:
    """Store what a webhook received, and let the request answer only once it is committed.

    Requests that arrive while a write is under way share the next one: under a burst the
    store sees a few transactions of many updates instead of one per request. A batch that
    fails is tried update by update, so one bad update fails only its own request.
    """

    def __init__(self, store: Callable[[list[NewUpdate]], int]) -> None:
        self.store = store
        self._waiting: list[tuple[list[NewUpdate], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def put(self, updates: list[NewUpdate]) -> None:
        """Return once `updates` are stored; raise what storing them raised."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((updates, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        await done

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await run_in_threadpool(self.store, [u for updates, _ in batch for u in updates])
            except Exception:  # noqa: BLE001 - each request on its own: only the bad one fails
                if len(batch) == 1:
                    _settle(batch[0][1], sys.exc_info()[1])
                    continue
                for updates, done in batch:
                    try:
                        await run_in_threadpool(self.store, updates)
                    except Exception as exc:  # noqa: BLE001 - its own request answers 503
                        _settle(done, exc)
                    else:
                        _settle(done, None)
                continue
            for _, done in batch:
                _settle(done, None)


def _settle(done: asyncio.Future[None], exc: BaseException | None) -> None:
    if done.done():  # its request went away (the client hung up)
        return
    if exc is None:
        done.set_result(None)
    else:
        done.set_exception(exc)

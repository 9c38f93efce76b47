"""What every webhook does first with a request from outside: read at most so much of it."""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.requests import Request

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

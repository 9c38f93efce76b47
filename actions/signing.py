"""Signed webhooks, both ways: `sha256=<hex HMAC-SHA256 of the raw body>` with a shared secret.

The same scheme as WhatsApp's `X-Hub-Signature-256`; used for it and for the agencies' Open311
webhooks. Always over the raw bytes as received (re-serialised JSON gives another HMAC).
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr


def sign(secret: SecretStr, body: bytes) -> str:
    """The signature header's value for a body."""
    digest = hmac.new(secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signature_ok(secret: SecretStr, body: bytes, header: str | None) -> bool:
    """Check a signature header in constant time; missing or malformed is simply wrong.

    Compared as bytes: a header with non-ASCII characters is refused, not an error.
    """
    if not header:
        return False
    given = header.strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(sign(secret, body).encode(), given)

"""Corrections of the NLU by the city's own people, kept to learn from.

Recorded where they happen, in the caller's transaction; reviewed and exported as training
data from the terminal (`warga nlu review`, `warga nlu export`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.domain import CorrectionSource, DomainError, ReviewState
from actions.models import NluCorrection, Ticket
from nlu import redact
from nlu.check import example_key

TEXT_LIMIT = 1000  # characters of the message kept: training examples are short


def record_correction(
    session: Session,
    *,
    text: str,
    predicted: str,
    corrected: str,
    source: CorrectionSource,
    ticket: Ticket | None = None,
    now: datetime,
) -> NluCorrection | None:
    """Keep that the NLU read `text` as `predicted` where a person said `corrected`.

    The text is stored redacted: phone numbers and NIK never reach this table. Nothing is
    kept when there is no text, or when the label is the same and the person only confirmed
    what the NLU was sure of (a fallback confirmation is kept: the NLU was not sure).
    """
    clean = redact(text).strip()[:TEXT_LIMIT]
    if not clean or not corrected:
        return None
    if predicted == corrected and source is not CorrectionSource.FALLBACK:
        return None
    row = NluCorrection(
        text=clean,
        predicted=predicted,
        corrected=corrected,
        source=source,
        ticket_id=ticket.id if ticket is not None else None,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def pending(session: Session) -> list[NluCorrection]:
    """The corrections not reviewed yet, oldest first."""
    return list(
        session.scalars(
            select(NluCorrection)
            .where(NluCorrection.review == ReviewState.PENDING)
            .order_by(NluCorrection.id)
        )
    )


def review(
    correction: NluCorrection,
    state: ReviewState,
    *,
    label: str | None = None,
    labels: Iterable[str] = (),
    now: datetime,
) -> None:
    """Decide one correction: accept its label, give another (one of `labels`), or skip it."""
    if state is ReviewState.ACCEPTED:
        correction.final_label = correction.corrected
    elif state is ReviewState.RELABELLED:
        if label is None or label not in set(labels):
            raise DomainError(f"unknown label {label!r}")
        correction.final_label = label
    elif state is ReviewState.SKIPPED:
        correction.final_label = None
    else:
        raise DomainError(f"a review is accepted, relabelled or skipped, not {state.value}")
    correction.review, correction.reviewed_at = state, now


def training_examples(session: Session, *, since: datetime | None = None) -> dict[str, list[str]]:
    """The accepted and relabelled corrections as {label: [texts]}: each text once, under the
    label of its latest review, in the order they were recorded."""
    query = (
        select(NluCorrection)
        .where(NluCorrection.review.in_([ReviewState.ACCEPTED, ReviewState.RELABELLED]))
        .order_by(NluCorrection.id)
    )
    if since is not None:
        query = query.where(NluCorrection.created_at >= since)
    latest: dict[str, tuple[str, str]] = {}
    for c in session.scalars(query):
        text = " ".join(redact(c.text).split())
        if text and c.final_label:
            key = example_key(text)
            latest.pop(key, None)  # a later decision about the same text wins
            latest[key] = (c.final_label, text)
    out: dict[str, list[str]] = {}
    for label, text in latest.values():
        out.setdefault(label, []).append(text)
    return out

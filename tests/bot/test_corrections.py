"""Where residents correct the NLU in the chat, the correction is kept, redacted; nothing is
kept for a report that is not sent."""

from __future__ import annotations

from sqlalchemy import select

from actions.corrections import record_correction
from actions.domain import CorrectionSource, ReviewState
from actions.models import NluCorrection, Ticket, utcnow

POTHOLE = "jalan berlubang besar di Jl. Paus depan SD 12, Tangkerang Barat, bahaya min"


def corrections(assistant) -> list[NluCorrection]:
    with assistant.sessions() as s:
        return list(s.scalars(select(NluCorrection).order_by(NluCorrection.id)))


def ticket_ids(assistant) -> list[int]:
    with assistant.sessions() as s:
        return list(s.scalars(select(Ticket.id).order_by(Ticket.id)))


def to_the_summary_and_change_the_category(me) -> None:
    me(POTHOLE)
    me("Lewati")  # no photo
    me("Biasa")
    me("Ubah")
    me("Kategori")
    assert "Lalu lintas & parkir" in me("Lalu lintas & parkir")


def test_a_category_changed_before_sending_is_kept_with_the_ticket(chat, assistant, parser):
    predicted = parser.parse(POTHOLE)
    assert predicted.label == "lapor/jalan", "the test needs a report the NLU reads as jalan"
    me = chat()
    to_the_summary_and_change_the_category(me)
    me("Kirim")
    (ticket_id,) = ticket_ids(assistant)
    (c,) = corrections(assistant)
    assert (c.source, c.predicted, c.corrected) == (
        CorrectionSource.RESIDENT_EDIT,
        "lapor/jalan",
        "lapor/transportasi",
    )
    assert c.text == POTHOLE and c.ticket_id == ticket_id
    assert c.review is ReviewState.PENDING and c.final_label is None


def test_a_cancelled_report_or_one_sent_as_read_keeps_nothing(chat, assistant):
    me = chat()
    to_the_summary_and_change_the_category(me)
    me("Batal")
    assert ticket_ids(assistant) == [] and corrections(assistant) == []
    me(POTHOLE)
    me("Lewati")
    me("Biasa")
    me("Kirim")
    assert len(ticket_ids(assistant)) == 1
    assert corrections(assistant) == []


def answer_until_sent(me, category: str) -> None:
    """Answer whatever the report asks, picking `category` if asked, until it is sent."""
    for reply in [category, "di Jl. Paus", "Lewati", "Biasa", "Kirim"]:
        me(reply)


def test_a_choice_after_the_nlu_was_unsure_is_kept_as_a_fallback(chat, assistant, parser):
    vague = "lampu"
    parse = parser.parse(vague)
    assert parse.fallback, "the test needs a message the NLU is unsure of"
    me = chat()
    me(vague)
    me("Bertanya")
    (c,) = corrections(assistant)
    assert c.source is CorrectionSource.FALLBACK and c.text == vague
    assert c.predicted == parse.label and c.corrected.startswith("tanya/")
    assert c.ticket_id is None

    me(vague)
    me("Lapor masalah")
    me("/batal")
    assert len(corrections(assistant)) == 1  # the report was not sent: nothing more

    me(vague)
    me("Lapor masalah")
    answer_until_sent(me, "Lampu jalan")
    (ticket_id,) = ticket_ids(assistant)
    last = corrections(assistant)[-1]
    assert last.source is CorrectionSource.FALLBACK and last.ticket_id == ticket_id
    assert last.predicted == parse.label and last.corrected.startswith("lapor/")


def test_no_phone_number_or_nik_is_kept(session):
    phone, nik = "0812-3456-7890", "1471020304050607"
    row = record_correction(
        session,
        text=f"sampah numpuk, hubungi sy di {phone}, NIK {nik}",
        predicted="lapor/jalan",
        corrected="lapor/sampah",
        source=CorrectionSource.RESIDENT_EDIT,
        now=utcnow(),
    )
    session.commit()
    stored = session.scalars(select(NluCorrection.text)).one()
    assert row is not None and stored.startswith("sampah numpuk")
    assert "3456" not in stored and nik not in stored and nik[4:] not in stored


def test_the_same_label_confirmed_is_no_correction_unless_the_nlu_was_unsure(session):
    args = {"text": "jalan rusak", "predicted": "lapor/jalan", "corrected": "lapor/jalan"}
    now = utcnow()
    edit = CorrectionSource.RESIDENT_EDIT
    assert record_correction(session, **args, source=edit, now=now) is None
    assert record_correction(session, **args, source=CorrectionSource.FALLBACK, now=now)

"""Residents talk to the bot through the terminal channel, with scripted input."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from actions.domain import Audience, Privacy, TicketKind, TicketStatus
from actions.models import Outbox, Ticket, TicketFollower, TicketPhoto
from actions.tickets import Action, transition
from bot.messages import Incoming

POTHOLE = "jalan berlubang besar di Jl. Paus depan SD 12, Tangkerang Barat, bahaya min"
SAME_POTHOLE = "ada lubang gede di jalan paus, tangkerang barat, hampir jatuh tadi"


def first_line(text: str) -> str:
    return text.strip().splitlines()[0]


def tickets(assistant) -> list[Ticket]:
    with assistant.sessions() as s:
        return list(
            s.scalars(
                select(Ticket)
                .order_by(Ticket.id)
                .options(
                    selectinload(Ticket.category),
                    selectinload(Ticket.agency),
                    selectinload(Ticket.area),
                    selectinload(Ticket.photos),
                )
            )
        )


def report_pothole(me) -> str:
    """Report a pothole through to the ticket number; return the last reply."""
    out = me(POTHOLE)
    assert me.t("id", "report.ask_photo") in out  # the place was in the message: not asked
    out = me("/foto lubang-paus")
    assert first_line(me.t("id", "report.ask_privacy")) in out
    out = me("2")  # anonim
    assert (
        first_line(
            me.t(
                "id",
                "report.summary",
                category="",
                description="",
                place="",
                photos="",
                privacy="",
            )
        )
        in out
    )
    return me("Kirim")


def test_a_report_with_its_place_asks_only_for_photo_and_privacy_then_gives_the_number(
    chat, assistant
):
    me = chat()
    out = report_pothole(me)
    (ticket,) = tickets(assistant)
    assert ticket.number == "PKU-2026-000001" and ticket.number in out
    assert "Dinas Pekerjaan Umum dan Penataan Ruang" in out
    assert "Kamis, 3 Desember 2026" in out  # 3 working days after Monday 30 November
    assert ticket.kind is TicketKind.LAPOR and ticket.privacy is Privacy.ANONIM
    assert ticket.status is TicketStatus.ROUTED
    assert "paus" in ticket.location_text.lower()
    with assistant.sessions() as s:
        (photo,) = s.scalars(select(TicketPhoto)).all()
    assert photo.file_id == "console:lubang-paus"


def test_a_report_without_a_place_asks_where_and_takes_a_location_pin(chat, assistant):
    me = chat()
    out = me("sampah numpuk udah seminggu ga diangkut, bau bgt")
    assert me.t("id", "report.ask_location") in out
    assert me.t("id", "console.location_hint") in out
    out = me("/lokasi 0.50713,101.44775")
    assert me.t("id", "report.ask_photo") in out
    me("Lewati")
    me("Biasa")
    assert "PKU-2026-000001" in me("Kirim")
    (ticket,) = tickets(assistant)
    assert (ticket.latitude, ticket.longitude) == (0.50713, 101.44775)
    assert ticket.category.code == "sampah" and ticket.privacy is Privacy.BIASA


def test_a_kelurahan_named_in_the_report_routes_by_its_kecamatan(chat, assistant):
    me = chat()
    out = me("sampah di kelurahan lembah sari udah 5 hari ga diangkut")
    assert me.t("id", "report.ask_photo") in out
    me("Lewati")
    me("Rahasia")
    me("Kirim")
    (ticket,) = tickets(assistant)
    assert ticket.area is not None and ticket.area.name == "Lembah Sari"
    assert ticket.agency.code == "KEC-RUMBAI-TIMUR"  # the per-kecamatan override
    assert ticket.privacy is Privacy.RAHASIA


def test_the_summary_can_be_changed_before_sending(chat, assistant):
    me = chat()
    me(POTHOLE)
    me("Lewati")
    me("Biasa")
    assert me.t("id", "report.edit_what") in me("Ubah")
    me("Kategori")
    out = me("Lalu lintas & parkir")
    assert "Lalu lintas & parkir" in out  # back at the summary with the new category
    me("Ubah")
    me("Keterangan")
    out = me("lubang besar sekali, motor sudah dua kali jatuh")
    assert "motor sudah dua kali jatuh" in out
    me("Kirim")
    (ticket,) = tickets(assistant)
    assert ticket.category.code == "transportasi"
    assert ticket.description == "lubang besar sekali, motor sudah dua kali jatuh"


def test_cancel_abandons_the_form_and_sends_nothing(chat, assistant):
    me = chat()
    me(POTHOLE)
    assert me.t("id", "batal.done") in me("batal")
    assert tickets(assistant) == []
    assert me.t("id", "batal.nothing") in me("/batal")
    me(POTHOLE)
    me("Lewati")
    me("Biasa")
    assert me.t("id", "batal.done") in me("Batal")  # the summary's button
    assert tickets(assistant) == []


def test_a_similar_open_report_nearby_is_offered_and_can_be_joined(chat, assistant, clock):
    report_pothole(chat("budi", "Budi"))
    siti = chat("siti", "Siti")
    out = siti(SAME_POTHOLE)
    assert "PKU-2026-000001" in out and me_button(siti, "button.join") in out
    out = siti("Ikut laporan ini")
    assert siti.t("id", "report.joined", number="PKU-2026-000001") in out
    assert len(tickets(assistant)) == 1
    with assistant.sessions.begin() as s:
        ticket = s.scalar(select(Ticket))
        assert s.scalar(select(func.count()).select_from(TicketFollower)) == 1
        transition(s, ticket, Action.START, actor=None, note="tim sudah dijadwalkan", now=clock[0])
    with assistant.sessions() as s:
        told = s.scalars(
            select(Outbox.resident_id).where(Outbox.template == "ticket.status.in_progress")
        ).all()
    assert len(told) == 2  # the reporter and the resident who joined
    # Both hear it in their chat.
    out = siti("laporan saya")
    assert "PKU-2026-000001" in out


def me_button(me, key: str) -> str:
    return me.t("id", key)


def test_a_similar_report_can_be_ignored_for_a_new_one(chat, assistant):
    report_pothole(chat("budi", "Budi"))
    siti = chat("siti", "Siti")
    siti(SAME_POTHOLE)
    assert siti.t("id", "report.ask_photo") in siti("Kirim laporan baru")
    siti("Lewati")
    siti("Biasa")
    siti("Kirim")
    assert [t.number for t in tickets(assistant)] == ["PKU-2026-000001", "PKU-2026-000002"]


def test_an_old_or_closed_report_is_not_offered(chat, assistant, clock):
    report_pothole(chat("budi", "Budi"))
    clock[0] += timedelta(days=31)
    siti = chat("siti", "Siti")
    out = siti(SAME_POTHOLE)
    assert "PKU-2026-000001" not in out
    assert siti.t("id", "report.ask_photo") in out


def test_a_question_is_answered_from_the_faq_with_the_agency(chat):
    me = chat()
    out = me("syarat bikin ktp el apa aja min?")
    assert "KTP" in out
    assert "Dinas Kependudukan dan Pencatatan Sipil Kota Pekanbaru" in out


def test_a_question_without_a_good_answer_can_be_forwarded_as_a_tanya_ticket(chat, assistant):
    me = chat()
    out = me("min mau tanya, kapan jadwal uji emisi kendaraan gratis tahun depan?")
    assert me.t("id", "button.forward") in out
    out = me("Ya, teruskan")
    (ticket,) = tickets(assistant)
    assert ticket.kind is TicketKind.TANYA and ticket.number in out
    assert "uji emisi" in ticket.description


def test_a_proposal_becomes_an_aspirasi_ticket_and_is_acknowledged(chat, assistant):
    me = chat()
    out = me("usul min, tolong dibangun taman bermain anak di Tuah Madani, belum ada sama sekali")
    (ticket,) = tickets(assistant)
    assert ticket.kind is TicketKind.ASPIRASI and ticket.number in out
    assert first_line(me.t("id", "aspirasi.created", number="", agency="", due="")) in out


def test_status_by_number_in_any_form_and_my_reports(chat, assistant):
    me = chat()
    report_pothole(me)
    for form in (
        "status PKU-2026-000001",
        "cek laporan pku2026000001",
        "/status #1",
        "gmn laporan no 000001 min?",
    ):
        out = me(form)
        assert "PKU-2026-000001: " + me.t("id", "status.routed") in out, form
    out = me("laporan saya")
    assert "PKU-2026-000001" in out and me.t("id", "status.routed") in out


def test_a_resident_cannot_see_someone_elses_report(chat):
    report_pothole(chat("budi", "Budi"))
    siti = chat("siti", "Siti")
    out = siti("status PKU-2026-000001")
    assert siti.t("id", "status.not_found", number="PKU-2026-000001") in out
    assert "Dinas PUPR" not in out and "lubang" not in out
    assert siti.t("id", "status.none") in siti("laporan saya")


def test_an_emergency_is_answered_at_once_with_112_first_even_mid_form(chat, assistant):
    me = chat()
    me(POTHOLE)
    out = me("kebakaran tolong")
    lines = [line for line in out.splitlines() if line.startswith("📞")]
    assert lines[0].startswith("📞 112") and any("113" in line for line in lines)
    assert tickets(assistant) == []
    assert me.t("id", "report.ask_privacy").splitlines()[0] in me("Lewati")  # form kept


def test_simple_intents_get_short_kind_answers(chat):
    me = chat()
    assert me.t("id", "terima_kasih.reply") in me("makasih banyak min 🙏")
    assert first_line(me.t("id", "bantuan.reply", city="")) in me("bot ini bisa apa aja?")
    assert me.t("id", "luar_topik.reply") in me("min udah makan belum? 😂")
    kelurahan = me.t("id", "ikuti.level.kelurahan", name="Sidomulyo Timur")
    assert me.t("id", "ikuti.done", name=kelurahan) in me(
        "mau langganan info kelurahan sidomulyo timur"
    )
    assert me.t("id", "berhenti.done", name=kelurahan) in me("stop kirim pengumuman")
    assert me.t("id", "nilai.thanks") in me("pelayanannya mantap, bintang 5 ⭐⭐⭐⭐⭐")
    out = me("assalamualaikum")
    assert "Siti" in out and me.t("id", "button.report") in out


def test_when_unsure_it_asks_lapor_or_tanya_and_follows_the_choice(chat, assistant, parser):
    vague = "lampu"
    assert parser.parse(vague).fallback, "the test needs a message the NLU is unsure of"
    me = chat()
    assert me.t("id", "clarify.ask") in me(vague)
    out = me("Lapor masalah")
    asked = [me.t("id", k) for k in ("report.ask_category", "report.ask_location")]
    assert any(question in out for question in asked)
    assert me.t("id", "batal.done") in me("/batal")
    me(vague)
    out = me("Bertanya")  # answered from the FAQ, or offered to the agency
    answered = me.t("id", "tanya.contact", agency="", details="").split(":")[0]
    assert answered in out or me.t("id", "button.forward") in out


def test_commands_always_work(chat):
    me = chat()
    assert "Siti" in me("/start")
    assert first_line(me.t("id", "bantuan.reply", city="")) in me("/bantuan")
    assert me.t("id", "report.ask_description") in me("/lapor")
    assert me.t("id", "batal.done") in me("/batal")
    assert me.t("id", "status.none") in me("/status")
    assert me.t("id", "command.unknown", command="terbang") in me("/terbang")


def test_a_resident_writing_english_gets_english(chat):
    me = chat()
    out = me("hello, how do I report a broken street light?")
    assert first_line(me.t("en", "bantuan.reply", city="")) in out
    out = me("the street light in front of my house on Jl. Durian has been dark for a week")
    assert me.t("en", "report.ask_photo") in out
    assert me.t("en", "terima_kasih.reply") in me("thank you so much")


def test_a_photo_first_then_the_story(chat, assistant):
    me = chat()
    out = me("/foto kabel-jatuh")
    assert me.t("id", "report.ask_description_after_attachment") in out
    me("kabel telkom putus menjuntai ke jalan di Jl. Delima dekat simpang Garuda Sakti")
    me("Biasa")
    me("Kirim")
    (ticket,) = tickets(assistant)
    assert ticket.category.code == "telekomunikasi"
    assert [p.file_id for p in ticket.photos] == ["console:kabel-jatuh"]


def test_the_form_survives_a_restart(chat, assistant):
    me = chat()
    me(POTHOLE)
    me("Lewati")
    again = chat()  # a new process: nothing in memory, the state is in the database
    out = again("Anonim")
    assert "Anonim (nama disembunyikan)" in out and again.t("id", "button.send") in out
    again("Kirim")
    assert len(tickets(assistant)) == 1


def test_a_redelivered_update_is_handled_once(assistant):
    incoming = Incoming(channel="console", user_id="siti", update_id="u-1", text=POTHOLE)
    assert assistant.handle(incoming)
    assert assistant.handle(incoming) == []
    again = Incoming(channel="console", user_id="siti", update_id="u-2", text="Lewati")
    assert assistant.handle(again)
    assert assistant.handle(again) == []


def test_a_stale_button_says_so_kindly(chat, assistant):
    me = chat()
    out = assistant.handle(
        Incoming(channel="console", user_id="siti", update_id="x", payload="confirm:send")
    )
    assert out[0].text == me.t("id", "form.expired")
    assert tickets(assistant) == []


def test_status_updates_reach_the_resident_in_the_terminal(chat, assistant, clock):
    me = chat()
    report_pothole(me)
    with assistant.sessions.begin() as s:
        ticket = s.scalar(select(Ticket))
        transition(s, ticket, Action.RESOLVE, actor=None, note="sudah ditambal", now=clock[0])
    out = me("laporan saya")
    assert "🔔" in out and "sudah ditambal" in out
    with assistant.sessions() as s:
        sent = s.scalars(select(Outbox).where(Outbox.audience == Audience.RESIDENT)).all()
    assert all(row.sent_at is not None for row in sent)


def test_a_photo_with_a_caption_is_a_report_that_keeps_the_photo(chat, assistant):
    me = chat()
    out = me("/foto lubang-besar jalan berlubang besar di Jl. Paus depan SD 12, Tangkerang Barat")
    assert me.t("id", "report.ask_privacy").splitlines()[0] in out  # the photo is already here
    me("Biasa")
    me("Kirim")
    (ticket,) = tickets(assistant)
    assert [p.file_id for p in ticket.photos] == ["console:lubang-besar"]
    assert ticket.description.startswith("jalan berlubang besar")


def test_a_photo_with_a_caption_inside_a_report_is_added_to_it(chat, assistant):
    me = chat()
    me(POTHOLE)
    out = me("/foto lubang-dekat ini fotonya min")
    assert me.t("id", "report.ask_privacy").splitlines()[0] in out
    me("Anonim")
    me("Kirim")
    (ticket,) = tickets(assistant)
    assert [p.file_id for p in ticket.photos] == ["console:lubang-dekat"]
    assert ticket.description == POTHOLE

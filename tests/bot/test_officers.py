"""Officers, supervisors and admins work tickets from chat; residents hear back and rate."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from actions import desk
from actions.domain import Audience, EventKind, OfficerRole, TicketStatus
from actions.models import Outbox, Resident, Ticket, TicketEvent
from actions.people import add_officer
from bot.messages import Incoming

POTHOLE = "jalan berlubang besar di Jl. Paus depan SD 12, Tangkerang Barat, bahaya min"
OFFICER_COMMANDS = [
    "antrian",
    "tiket",
    "ambil",
    "balas",
    "proses",
    "selesai",
    "tolak",
    "alihkan",
    "catatan",
    "statistik",
    "petugas",
]


@pytest.fixture
def staff(assistant):
    """PUPR officers Budi and Rina, PUPR supervisor Sari, DLHK officer Dedi, admin Ani."""
    with assistant.sessions.begin() as s:
        for uid, name, role, agency in [
            ("budi", "Budi", OfficerRole.OFFICER, "PUPR"),
            ("rina", "Rina", OfficerRole.OFFICER, "PUPR"),
            ("sari", "Sari", OfficerRole.SUPERVISOR, "PUPR"),
            ("dedi", "Dedi", OfficerRole.OFFICER, "DLHK"),
            ("ani", "Ani", OfficerRole.ADMIN, None),
        ]:
            add_officer(
                s,
                channel="console",
                platform_user_id=uid,
                role=role,
                agency_code=agency,
                display_name=name,
            )


def report(chat, who: str = "siti", privacy: str = "Anonim", text: str = POTHOLE) -> str:
    me = chat(who, who.capitalize())
    me(text)
    me("Lewati")
    me(privacy)
    out = me("Kirim")
    return [w for w in out.split() if w.startswith("PKU-")][0]


def ticket(assistant, number: str) -> Ticket:
    with assistant.sessions() as s:
        t = s.scalar(select(Ticket).where(Ticket.number == number))
        s.expunge(t)
        return t


def outbox(assistant, template: str) -> list[Outbox]:
    with assistant.sessions() as s:
        return list(s.scalars(select(Outbox).where(Outbox.template == template)))


def test_a_resident_using_officer_commands_learns_nothing(chat, staff):
    number = report(chat)
    siti = chat("siti")
    for command in OFFICER_COMMANDS:
        expected = siti.t("id", "command.officer_only", command=command)
        assert expected in siti(f"/{command} {number} x")
        assert expected in siti(f"/{command} PKU-2026-999999 x")


def test_an_officer_of_another_agency_cannot_tell_a_ticket_exists(chat, staff):
    number = report(chat)
    dedi = chat("dedi", "Dedi")
    refusal = dedi("/tiket " + number)
    assert dedi.t("id", "officer.not_found") in refusal
    assert refusal == dedi("/tiket PKU-2026-999999")
    assert dedi.t("id", "officer.not_found") in dedi("/ambil " + number)
    assert number not in dedi("/antrian")


def test_the_queue_is_oldest_first_paged_filtered_and_marks_the_overdue(
    chat, staff, assistant, clock
):
    first = report(chat, "siti")
    clock[0] += timedelta(days=6)  # the first report's first-response deadline has passed
    numbers = [first] + [
        report(chat, f"warga{i}", text=f"jalan rusak parah di Jl. Durian no {i}") for i in range(6)
    ]
    budi = chat("budi", "Budi")
    out = budi("/antrian")
    assert budi.t("id", "officer.queue.header", total=7, page=1, pages=2) in out
    assert out.index(numbers[0]) < out.index(numbers[1])
    late = budi.t("id", "officer.queue.late")
    assert f"{numbers[0]}{late}" in out and f"{numbers[1]}{late}" not in out
    page2 = budi(budi.t("id", "button.next_page"))
    assert numbers[6] in page2 and numbers[0] not in page2
    overdue = budi("/antrian terlambat")
    assert numbers[0] in overdue and numbers[1] not in overdue
    assert numbers[0] in budi("/antrian jalan")
    assert budi.t("id", "officer.queue.empty") in budi("/antrian sampah")
    assert budi.t("id", "officer.usage.antrian") in budi("/antrian entah")
    assert budi.t("id", "officer.queue.empty") in chat("dedi", "Dedi")("/antrian")
    assert "7 tiket" in chat("ani", "Ani")("/antrian")


def test_ticket_details_show_history_place_and_hide_an_anonymous_reporter_outside_the_agency(
    chat, staff
):
    siti = chat("siti", "Siti")
    siti("/lokasi 0.50713,101.44775")
    siti(
        "/foto bukti-lubang jalan berlubang dalam di depan rumah, motor jatuh, hub 0812-3456-7890"
    )
    siti("Jalan & jembatan")
    siti("Anonim")
    number = [w for w in siti("Kirim").split() if w.startswith("PKU-")][0]
    budi = chat("budi", "Budi")
    inside = budi("/tiket " + number)
    assert "Siti" in inside and "0812-3456-7890" in inside and "📍 0.50713, 101.44775" in inside
    assert budi.t("id", "officer.history.created") in inside
    outside = chat("ani", "Ani")("/tiket " + number)
    assert number in outside
    assert "Siti" not in outside and "siti" not in outside and "0812-3456-7890" not in outside
    assert budi.t("id", "privacy.anonim") in outside


def test_of_two_officers_taking_a_ticket_one_wins_and_the_other_is_told_who(chat, staff):
    number = report(chat)
    budi, rina = chat("budi", "Budi"), chat("rina", "Rina")
    assert budi.t("id", "officer.taken", number=number) in budi("/ambil " + number)
    out = rina("/ambil " + number)
    assert rina.t("id", "officer.already_taken", number=number, holder="Budi") in out
    # Rina may not change Budi's ticket; their supervisor may.
    assert rina.t("id", "officer.not_allowed") in rina(f"/proses {number} saya cek")
    sari = chat("sari", "Sari")
    assert sari.t("id", "status.in_progress") in sari(f"/proses {number} tim dikirim besok")


def test_two_officers_taking_at_the_same_instant_exactly_one_wins(assistant, staff, chat, clock):
    number = report(chat)
    barrier = threading.Barrier(2)
    results: dict[str, str] = {}

    def take(uid: str) -> None:
        barrier.wait(timeout=10)  # both start together; each in its own transaction
        with assistant.sessions() as s:
            resident = s.scalar(select(Resident).where(Resident.platform_user_id == uid))
            officer = desk.officer_of(s, resident)
            t = desk.ticket_for(s, officer=officer, number=number)
            try:
                desk.take(s, officer=officer, ticket=t, now=clock[0])
                s.commit()
                results[uid] = "won"
            except desk.AlreadyTaken as exc:
                s.rollback()
                results[uid] = f"lost to {exc.holder.display_name}"

    threads = [threading.Thread(target=take, args=(u,)) for u in ("budi", "rina")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results.values()) in (["lost to Budi", "won"], ["lost to Rina", "won"])
    winner = [uid for uid, result in results.items() if result == "won"][0]
    with assistant.sessions() as s:
        holder = s.get(Resident, ticket(assistant, number).assignee_id)
    assert holder.platform_user_id == winner


def test_a_reply_reaches_the_reporter_and_every_follower(chat, staff, assistant):
    number = report(chat, "siti")
    warga = chat("joko", "Joko")
    warga("ada lubang gede di jalan paus, tangkerang barat, hampir jatuh tadi")
    warga("Ikut laporan ini")
    budi = chat("budi", "Budi")
    out = budi(f"/balas {number} Tim kami survei hari Kamis, terima kasih laporannya")
    assert budi.t("id", "officer.replied", number=number) in out
    rows = outbox(assistant, "ticket.reply")
    assert len(rows) == 2
    assert ticket(assistant, number).first_response_at is not None
    assert "Tim kami survei hari Kamis" in chat("siti")("laporan saya")  # delivered as 🔔


def test_the_reply_button_asks_for_the_text_first(chat, staff, assistant):
    number = report(chat)
    budi = chat("budi", "Budi")
    tap = Incoming(
        channel="console", user_id="budi", update_id="tap-1", payload=f"officer:reply:{number}"
    )  # "Balas" in the new-ticket message
    replies = assistant.handle(tap)
    assert replies[0].text == budi.t("id", "officer.ask_reply", number=number)
    assert budi.t("id", "officer.replied", number=number) in budi("Sudah kami jadwalkan")
    assert len(outbox(assistant, "ticket.reply")) == 1


def test_an_internal_note_is_never_sent_to_the_resident(chat, staff, assistant):
    number = report(chat)
    budi = chat("budi", "Budi")
    before = len(outbox(assistant, "ticket.reply"))
    assert budi.t("id", "officer.noted", number=number) in budi(
        f"/catatan {number} pelapor minta tidak dihubungi malam"
    )
    assert "pelapor minta tidak dihubungi malam" in budi("/tiket " + number)
    assert len(outbox(assistant, "ticket.reply")) == before
    assert "tidak dihubungi malam" not in chat("siti")(f"status {number}")


def test_reject_needs_a_reason_and_reroute_hands_over_to_the_other_agency(chat, staff, assistant):
    number = report(chat)
    budi = chat("budi", "Budi")
    assert budi.t("id", "officer.usage.tolak") in budi(f"/tolak {number}")
    assert budi.t("id", "officer.usage.alihkan") in budi(f"/alihkan {number} DISHUB")
    out = budi(f"/alihkan {number} DISHUB rambu lalu lintas, bukan jalan")
    assert budi.t("id", "officer.rerouted", number=number, agency="Dishub") in out
    assert ticket(assistant, number).status is TicketStatus.ROUTED
    assert budi.t("id", "officer.not_found") in budi("/tiket " + number)
    told = [
        r.agency_id
        for r in outbox(assistant, "agency.ticket_routed")
        if r.audience is Audience.AGENCY
    ]
    assert len(told) == 2 and told[0] != told[1]  # PUPR when it came in, Dishub now


def test_resolving_asks_the_resident_to_rate_and_stars_close_the_ticket(chat, staff, assistant):
    number = report(chat)
    budi = chat("budi", "Budi")
    budi("/ambil " + number)
    assert budi.t("id", "officer.usage.selesai") in budi(f"/selesai {number}")
    out = budi(f"/selesai {number} lubang sudah ditambal aspal")
    assert budi.t("id", "status.resolved") in out
    siti = chat("siti")
    delivered = siti("laporan saya")
    assert "lubang sudah ditambal aspal" in delivered
    assert siti.t("id", "button.not_fixed") in delivered
    out = siti("4")  # the fourth button: four stars
    assert siti.t("id", "rating.thanks", number=number, stars=4) in out
    t = ticket(assistant, number)
    assert t.status is TicketStatus.CLOSED
    with assistant.sessions() as s:
        (rating,) = s.scalars(select(TicketEvent).where(TicketEvent.kind == EventKind.RATING))
    assert rating.data == {"stars": 4}


def test_not_fixed_reopens_within_the_window_and_tells_the_assignee(chat, staff, assistant, clock):
    number = report(chat)
    budi = chat("budi", "Budi")
    budi("/ambil " + number)
    budi(f"/selesai {number} sudah ditambal")
    siti = chat("siti")
    siti("laporan saya")
    clock[0] += timedelta(days=3)
    out = siti(siti.t("id", "button.not_fixed"))
    assert siti.t("id", "reopen.done", number=number) in out
    assert ticket(assistant, number).status is TicketStatus.REOPENED
    told = outbox(assistant, "officer.ticket_reopened")
    assert len(told) == 1 and told[0].audience is Audience.OFFICER


def test_not_fixed_after_the_window_asks_for_a_new_report(chat, staff, assistant, clock):
    number = report(chat)
    chat("budi", "Budi")(f"/selesai {number} sudah ditambal")
    siti = chat("siti")
    siti("laporan saya")
    clock[0] += timedelta(days=15)
    out = siti(siti.t("id", "button.not_fixed"))
    assert siti.t("id", "reopen.too_late", number=number, days=14) in out
    assert ticket(assistant, number).status is TicketStatus.RESOLVED


def test_statistics_for_the_agency_and_for_admins_all(chat, staff):
    number = report(chat)
    report(chat, "joko", text="sampah numpuk di Jl. Durian udah seminggu ga diangkut")
    budi = chat("budi", "Budi")
    budi(f"/selesai {number} sudah ditambal")
    out = budi("/statistik 30")
    assert "PUPR" in out and "Masuk: 1" in out and "selesai: 1" in out
    assert "Masuk: 2" in chat("ani", "Ani")("/statistik")


def test_admins_add_and_remove_officers_from_chat_and_others_cannot(chat, staff, assistant):
    ani = chat("ani", "Ani")
    assert ani.t("id", "officer.usage.petugas") in ani("/petugas")
    out = ani("/petugas tambah tono DLHK supervisor")
    assert ani.t("id", "officer.staff.added", user="tono", role="supervisor", agency="DLHK") in out
    assert "tono" in ani("/petugas daftar")
    budi = chat("budi", "Budi")
    assert budi.t("id", "officer.admin_only") in budi("/petugas tambah eko PUPR")
    assert ani.t("id", "officer.staff.removed", user="tono") in ani("/petugas hapus tono")
    tono = chat("tono", "Tono")
    assert tono.t("id", "command.officer_only", command="antrian") in tono("/antrian")


def test_every_action_is_an_event_with_its_actor(chat, staff, assistant):
    number = report(chat)
    budi = chat("budi", "Budi")
    for line in (
        f"/ambil {number}",
        f"/proses {number} dicek",
        f"/balas {number} segera",
        f"/catatan {number} butuh alat berat",
        f"/selesai {number} beres",
    ):
        budi(line)
    with assistant.sessions() as s:
        t = s.scalar(select(Ticket).where(Ticket.number == number))
        kinds = [(e.kind, e.actor.platform_user_id if e.actor else None) for e in t.events]
    assert kinds[-5:] == [
        (EventKind.ASSIGNED, "budi"),
        (EventKind.STATUS_CHANGED, "budi"),
        (EventKind.REPLY, "budi"),
        (EventKind.NOTE, "budi"),
        (EventKind.STATUS_CHANGED, "budi"),
    ]


def test_officers_see_their_commands_in_help(chat, staff):
    budi = chat("budi", "Budi")
    assert "/antrian" in budi("/bantuan")
    assert "/antrian" not in chat("siti")("/bantuan")


def test_a_new_ticket_reaches_the_agencys_officers_with_buttons(chat, staff, assistant):
    number = report(chat)
    out = chat("budi", "Budi")("/antrian")  # any line runs the dispatcher for its own user
    with assistant.sessions() as s:
        rows = s.execute(
            select(Outbox, Resident)
            .join(Resident, Outbox.resident_id == Resident.id)
            .where(Outbox.audience == Audience.OFFICER, Outbox.template == "agency.ticket_routed")
        ).all()
    assert sorted(r.platform_user_id for _, r in rows) == ["budi", "rina", "sari"]
    assert {r.platform_user_id for o, r in rows if o.sent_at is not None} == {"budi"}
    assert "🔔" in out and number in out
    assert rows[0][0].params["buttons"][0][0] == ["button.take", f"officer:take:{number}"]


# What each role gets from each command on a ticket of PUPR that Rina has taken.
COMMAND_LINES = {
    "tiket": "",
    "ambil": "",
    "balas": "segera kami cek",
    "proses": "dicek",
    "selesai": "beres",
    "tolak": "duplikat",
    "alihkan": "DISHUB rambu",
    "catatan": "butuh alat",
}


def _success(me, command: str, number: str) -> str:
    t = me.t
    return {
        "tiket": t("id", "officer.history.created"),
        "ambil": t("id", "officer.already_taken", number=number, holder="Rina"),
        "balas": t("id", "officer.replied", number=number),
        "proses": t("id", "officer.moved", number=number, status=t("id", "status.in_progress")),
        "selesai": t("id", "officer.moved", number=number, status=t("id", "status.resolved")),
        "tolak": t("id", "officer.moved", number=number, status=t("id", "status.rejected")),
        "alihkan": t("id", "officer.rerouted", number=number, agency="Dishub"),
        "catatan": t("id", "officer.noted", number=number),
    }[command]


@pytest.mark.parametrize("command", list(COMMAND_LINES))
@pytest.mark.parametrize(
    "who",
    ["siti", "dedi", "budi", "rina", "sari", "ani"],
)
def test_every_command_in_every_role(chat, staff, command, who):
    """Siti is a resident; Dedi an officer of DLHK; Budi and Rina officers of PUPR (Rina has
    taken the ticket); Sari PUPR's supervisor; Ani an admin."""
    number = report(chat, "warga")
    chat("rina", "Rina")(f"/ambil {number}")
    me = chat(who, who.capitalize())
    out = me(f"/{command} {number} {COMMAND_LINES[command]}".strip())
    if who == "siti":
        expected = me.t("id", "command.officer_only", command=command)
    elif who == "dedi":
        expected = me.t("id", "officer.not_found")
    elif who == "rina" and command == "ambil":
        expected = me.t("id", "officer.taken", number=number)
    elif who == "budi" and command not in ("tiket", "ambil"):
        expected = me.t("id", "officer.not_allowed")
    else:
        expected = _success(me, command, number)
    assert expected in out, (who, command, out)


def test_a_proof_photo_can_come_with_selesai(chat, staff, assistant):
    number = report(chat)
    budi = chat("budi", "Budi")
    out = budi(f"/foto tambalan-baru /selesai {number} sudah ditambal, lihat foto")
    assert budi.t("id", "status.resolved") in out
    with assistant.sessions() as s:
        t = s.scalar(select(Ticket).where(Ticket.number == number))
        assert [(p.file_id, p.added_by_id is not None) for p in t.photos] == [
            ("console:tambalan-baru", True)
        ]


def test_still_broken_in_the_residents_own_words_reopens_the_ticket_resolved_last(
    chat, staff, assistant, clock
):
    # Typed, not tapped, in a later session (no question pending), in several ways.
    cases = [
        ("belum beres", "jalan berlubang besar di Jl. Paus, Tangkerang Barat"),
        ("blm beres pak", "jalan rusak parah di Jl. Durian, kelurahan Labuh Baru Timur"),
        ("lubangnya masih belum diperbaiki", "aspal jalan hancur di Jl. Kuini, Sukajadi"),
    ]
    for n, (words, problem) in enumerate(cases):
        number = report(chat, f"warga{n}", text=problem)
        chat("budi", "Budi")(f"/selesai {number} sudah ditambal")
        me = chat(f"warga{n}")
        clock[0] += timedelta(days=1)
        out = me(words)
        assert me.t("id", "reopen.done", number=number) in out, words
        assert ticket(assistant, number).status is TicketStatus.REOPENED


def test_still_broken_without_a_resolved_ticket_or_about_something_else_reopens_nothing(
    chat, staff, assistant
):
    me = chat("siti")
    assert me.t("id", "reopen.done", number="")[:20] not in me("belum beres")
    number = report(chat)
    chat("budi", "Budi")(f"/selesai {number} sudah ditambal")
    out = me("sampah di jl durian masih belum diangkut seminggu ini")  # another problem
    assert ticket(assistant, number).status is TicketStatus.RESOLVED, out


def test_an_officers_note_starts_its_own_line_wherever_it_is_joined(chat, staff):
    """The note is a piece of its own in the responses ("\\nCatatan: …"), joined to a sentence
    that ends with a full stop or a date: its line break must survive loading the files."""
    number = report(chat)
    budi = chat("budi", "Budi")
    budi(f"/proses {number} tim survei besok pagi")
    siti = chat("siti")
    delivered = siti("laporan saya")  # the notification arrives (🔔) before the list
    assert "oleh Dinas PUPR.\nCatatan: tim survei besok pagi" in delivered
    status = siti(f"status {number}")
    assert "\nCatatan petugas: tim survei besok pagi" in status
    queue = budi("/antrian")
    assert f"{number} ⏰" not in queue  # not overdue: nothing joined
    t = budi.t
    for lang, key in [("id", "notify.ticket.note"), ("id", "status.note"), ("en", "status.note")]:
        assert t(lang, key, note="x").startswith("\n"), key
    assert t("id", "officer.queue.late").startswith(" ")
    assert t("id", "umumkan.poll_line", answer="Pagi", votes=1).startswith("  • ")


def test_officers_read_category_names_in_their_language_never_codes(
    chat, staff, assistant, city, clock
):
    from actions.sla import run_sla_check

    with assistant.sessions.begin() as s:
        rina = s.scalar(select(Resident).where(Resident.platform_user_id == "rina"))
        rina.language = "en"
    flood = "got mampet banjir setinggi lutut di Jl. Paus depan SD 12, Tangkerang Barat"
    number = report(chat, text=flood)
    with assistant.sessions() as s:
        t = s.scalar(select(Ticket).where(Ticket.number == number))
        assert t.category.code == "drainase_banjir"
    budi, rina = chat("budi", "Budi"), chat("rina", "Rina")
    told = budi("/antrian")  # the new-ticket message arrives first (🔔), then the queue
    assert f"{number} (lapor, Drainase & banjir)" in told
    assert f"{number} (lapor, Drains & floods)" in rina("/antrian")
    assert "Drainase & banjir" in budi(f"/tiket {number}")
    budi(f"/ambil {number}")
    with assistant.sessions.begin() as s:  # an hour before the deadline: a reminder
        due = s.scalar(select(Ticket.resolution_due_at).where(Ticket.number == number))
        clock[0] = due - timedelta(hours=1)
        result = run_sla_check(s, city=city.config, now=clock[0])
    assert result.reminded
    reminder = budi("/statistik")
    assert f"{number} (Drainase & banjir, " in reminder
    for out in (told, reminder):
        assert "drainase_banjir" not in out

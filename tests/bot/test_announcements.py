"""Following and announcing from chat, driven through the terminal channel."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from actions import broadcasts
from actions.domain import GroupKind, OfficerRole
from actions.models import Broadcast, Resident
from actions.people import add_officer, get_or_create_resident
from bot.messages import Incoming

DELIMA_REPORT = "sampah numpuk di jl delima kelurahan delima udah seminggu"


def follows(assistant, user: str) -> list[str]:
    with assistant.sessions() as s:
        rid = s.scalar(select(Resident.id).where(Resident.platform_user_id == user))
        return [f.name for f in broadcasts.follows_of(s, rid)] if rid else []


@pytest.fixture
def rw(assistant):
    """RW 05 Delima, managed by console user "ketua"; admin "ani"."""
    with assistant.sessions.begin() as s:
        group = broadcasts.add_group(
            s,
            code="rw05-delima",
            name="RW 05 Delima",
            kind=GroupKind.RT_RW,
            area_codes=["kelurahan Delima"],
        )
        ketua = get_or_create_resident(s, channel="console", platform_user_id="ketua")
        broadcasts.add_manager(s, group=group, resident=ketua)
        add_officer(
            s, channel="console", platform_user_id="ani", role=OfficerRole.ADMIN, agency_code=None
        )
        return group.id


def test_residents_follow_by_button_or_by_name_list_and_stop(chat, assistant, rw):
    me = chat()
    menu = me("/ikuti")
    assert (
        me.t("id", "ikuti.city_button", city="Kota Pekanbaru") in menu and "RW 05 Delima" in menu
    )
    kota = me.t("id", "ikuti.level.kota", name="Kota Pekanbaru")
    assert me.t("id", "ikuti.done", name=kota) in me("1")
    # After the menu, a typed name is enough.
    me("/ikuti")
    sidomulyo = me.t("id", "ikuti.level.kelurahan", name="Sidomulyo Timur")
    assert me.t("id", "ikuti.done", name=sidomulyo) in me("sidomulyo timur")
    assert me.t("id", "ikuti.done", name="RW 05 Delima") in me("/ikuti rw05-delima")
    assert me.t("id", "ikuti.already", name="RW 05 Delima") in me("/ikuti RW 05 Delima")
    me("/ikuti")
    assert me.t("id", "ikuti.not_found", words="atlantis") in me("atlantis")
    assert sorted(follows(assistant, "siti")) == [
        "Kota Pekanbaru",
        "RW 05 Delima",
        "Sidomulyo Timur",
    ]

    listing = me("/langganan")
    assert kota in listing and sidomulyo in listing and "RW 05 Delima" in listing
    choose = me("/berhenti")
    assert me.t("id", "berhenti.choose") in choose
    assert me.t("id", "berhenti.done", name=kota) in me(me.t("id", "berhenti.button", name=kota))
    me("/berhenti")
    assert me.t("id", "berhenti.all_done") in me(me.t("id", "berhenti.all_button"))
    assert follows(assistant, "siti") == []
    me("/ikuti seluruh kota")
    me("/ikuti delima")
    assert me.t("id", "berhenti.all_done") in me("berhenti semua pengumuman")  # all, not the city
    assert follows(assistant, "siti") == []
    assert me.t("id", "berhenti.none") in me("/berhenti")
    assert me.t("id", "langganan.none") in me("/langganan")


def test_the_first_report_naming_a_kelurahan_offers_to_follow_it_once(chat, assistant):
    me = chat()
    me(DELIMA_REPORT)
    me("Lewati")
    me("Anonim")
    out = me("Kirim")
    delima = me.t("id", "ikuti.level.kelurahan", name="Delima")
    assert "PKU-" in out and me.t("id", "ikuti.offer", name=delima) in out
    assert me.t("id", "ikuti.done", name=delima) in me(me.t("id", "ikuti.offer_yes"))
    assert follows(assistant, "siti") == ["Delima"]
    other = chat("budi", "Budi")
    lamp = "lampu jalan mati di jl kartama kelurahan maharatu, gelap banget"
    other(lamp)
    other("Lewati")
    other("Anonim")
    maharatu = other.t("id", "ikuti.level.kelurahan", name="Maharatu")
    assert other.t("id", "ikuti.offer", name=maharatu) in other("Kirim")  # his first
    assert other.t("id", "ikuti.declined") in other(other.t("id", "ikuti.offer_no"))
    other("jalan berlubang di jl kartama kelurahan maharatu")
    other("Lewati")
    other("Anonim")
    out = other("Kirim")
    assert "PKU-" in out and "ikuti" not in out  # asked once only
    assert follows(assistant, "budi") == []


def test_a_manager_composes_previews_and_queues_an_announcement_with_a_poll(
    chat, assistant, rw, clock
):
    with assistant.sessions.begin() as s:
        delima = broadcasts.find_area(s, "kelurahan Delima")
        for user in ("a", "b", "c"):
            r = get_or_create_resident(s, channel="telegram", platform_user_id=user)
            broadcasts.follow_area(s, resident_id=r.id, area=delima)
    ketua = chat("ketua", "Pak RW")
    assert ketua.t("id", "umumkan.ask_text", group="RW 05 Delima") in ketua("/umumkan")
    text = "Kerja bakti <b>Minggu</b> 07:00, info: https://contoh.id/kb <script>"
    audience = ketua(text)
    assert ketua.t("id", "umumkan.ask_audience") in audience
    when = ketua(ketua.t("id", "ikuti.level.kelurahan", name="Delima"))
    assert ketua.t("id", "umumkan.ask_when") in when
    assert ketua.t("id", "umumkan.ask_time") in ketua(ketua.t("id", "umumkan.when_later"))
    assert ketua.t("id", "umumkan.error_time") in ketua("besok pagi")
    assert ketua.t("id", "umumkan.ask_poll") in ketua("1/12 08:00")
    ketua(ketua.t("id", "umumkan.poll_yes"))
    assert ketua.t("id", "umumkan.error_poll") in ketua("cuma satu")
    preview = ketua("Ikut\nTidak bisa")
    assert text in preview  # shown as the residents will see it, unchanged
    assert "3 warga" in preview and "1 Desember 2026 pukul 08:00" in preview
    done = ketua("Kirim")
    with assistant.sessions() as s:
        b = s.scalars(select(Broadcast)).one()
        assert ketua.t("id", "umumkan.queued", id=b.id) in done
        assert b.text == text and b.link == "https://contoh.id/kb"
        assert b.area_id == delima.id and b.poll_options == ["Ikut", "Tidak bisa"]
        assert b.scheduled_at == datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 08:00 WIB
        assert b.author_id is not None and b.state.value == "scheduled"
    status = ketua("/umumkan status")
    assert f"#{b.id} RW 05 Delima" in status and ketua.t("id", "umumkan.state.scheduled") in status


def test_people_who_manage_no_group_cannot_announce_and_only_admins_register_groups(
    chat, assistant, rw
):
    me = chat()
    assert me.t("id", "umumkan.not_manager") in me("/umumkan")
    assert me.t("id", "umumkan.not_manager") in me("/umumkan status")
    assert me.t("id", "command.officer_only", command="grup") in me("/grup")
    with assistant.sessions.begin() as s:
        b = broadcasts.create_broadcast(
            s, group=broadcasts.get_group(s, "rw05-delima"), author=None, text="x"
        )
        broadcast_id = b.id
    # Not hers to cancel: the same answer as a number that does not exist.
    assert me.t("id", "umumkan.not_manager") in me("/umumkan")
    ani = chat("ani", "Ani")
    added = ani("/grup tambah karang-taruna | Karang Taruna Tampan | komunitas | 14.71.11.1001")
    assert ani.t("id", "grup.added", code="karang-taruna", name="Karang Taruna Tampan") in added
    assert ani.t("id", "grup.usage").splitlines()[0] in ani("/grup tambah kurang | lengkap")
    ambiguous = ani("/grup tambah x1 | X | komunitas | Binawidya")
    assert ambiguous.startswith(
        ani.t("id", "grup.error_area_ambiguous", area="Binawidya", choices="")[:12]
    )
    assert "14.71.08" in ambiguous and "ambiguous" not in ambiguous  # in Indonesian
    ani("/grup pengelola karang-taruna siti")
    assert "Karang Taruna Tampan" in ani("/grup")
    assert me.t("id", "umumkan.ask_text", group="Karang Taruna Tampan") in me("/umumkan")
    me("/batal")
    assert me.t("id", "umumkan.not_found", id=broadcast_id) in me(f"/umumkan batal {broadcast_id}")
    assert ani.t("id", "umumkan.cancelled", id=broadcast_id, count=0) in ani(
        f"/umumkan batal {broadcast_id}"
    )


def test_a_recipient_votes_with_a_tap_and_the_manager_sees_the_count(chat, assistant, rw):
    with assistant.sessions.begin() as s:
        delima = broadcasts.find_area(s, "kelurahan Delima")
        voter = get_or_create_resident(s, channel="console", platform_user_id="voter")
        broadcasts.follow_area(s, resident_id=voter.id, area=delima)
        b = broadcasts.create_broadcast(
            s,
            group=broadcasts.get_group(s, "rw05-delima"),
            author=None,
            text="Posyandu pagi atau sore?",
            poll_options=["Pagi", "Sore"],
            area=delima,
            now=datetime(2026, 11, 30, 3, 0, tzinfo=UTC),
        )
        broadcasts.start_due(s, now=datetime(2026, 11, 30, 3, 0, tzinfo=UTC))
        broadcast_id = b.id
    tap = Incoming(
        channel="console", user_id="voter", update_id="tap-1", payload=f"poll:{broadcast_id}:1"
    )
    [reply] = assistant.handle(tap)
    assert reply.text == assistant.responses.get("id", "poll.thanks", answer="Sore")
    stranger = Incoming(
        channel="console", user_id="stranger", update_id="tap-2", payload=f"poll:{broadcast_id}:0"
    )
    [refused] = assistant.handle(stranger)
    assert refused.text == assistant.responses.get("id", "form.expired")
    status = chat("ketua", "Pak RW")("/umumkan status")
    assert assistant.responses.get("id", "umumkan.poll_line", answer="Sore", votes=1) in status
    assert assistant.responses.get("id", "umumkan.poll_line", answer="Pagi", votes=0) in status


def test_a_resident_who_blocked_the_bot_is_back_in_the_audience_when_they_write_again(
    chat, assistant, rw
):
    me = chat()
    me("/ikuti rw05-delima")
    with assistant.sessions.begin() as s:
        r = s.scalar(select(Resident).where(Resident.platform_user_id == "siti"))
        r.blocked_at = datetime(2026, 11, 1, tzinfo=UTC)
    with assistant.sessions() as s:
        assert broadcasts.count_audience(s, group_id=rw, area_id=None) == 0
    me("halo")
    with assistant.sessions() as s:
        assert broadcasts.count_audience(s, group_id=rw, area_id=None) == 1


def test_on_a_channel_without_announcements_following_is_not_offered(assistant, rw):
    def say(text: str, n: int) -> str:
        incoming = Incoming(channel="whatsapp", user_id="62811", update_id=f"wa-{n}", text=text)
        return "\n".join(r.text for r in assistant.handle(incoming))

    assert say("/ikuti rw05-delima", 1) == assistant.responses.get("id", "ikuti.not_on_channel")
    with assistant.sessions() as s:
        wa = s.scalar(select(Resident).where(Resident.platform_user_id == "62811"))
        assert broadcasts.follows_of(s, wa.id) == []


def test_in_the_terminal_an_announcement_reaches_a_follower_at_once(chat, assistant, rw):
    siti = chat()
    siti("/ikuti rw05-delima")
    ketua = chat("ketua", "Pak RW")
    ketua("/umumkan")
    ketua("Air PDAM mati besok <pagi>")
    ketua(ketua.t("id", "umumkan.to_followers", group="RW 05 Delima"))
    ketua(ketua.t("id", "umumkan.when_now"))
    ketua(ketua.t("id", "umumkan.poll_no"))
    out = ketua("Kirim")
    # The terminal prints what others receive, marked with their id.
    assert "🔔 → siti" in out and "Air PDAM mati besok <pagi>" in out
    assert ketua.t("id", "umumkan.header", group="RW 05 Delima") in out
    with assistant.sessions() as s:
        b = s.scalars(select(Broadcast)).one()
        assert broadcasts.progress(s, b).counts["sent"] == 1


def test_a_photo_sent_first_makes_the_caption_limit_apply_and_the_form_goes_on(
    chat, assistant, rw
):
    ketua = chat("ketua", "Pak RW")
    ketua("/umumkan")
    ketua("/foto poster-kerja-bakti")
    too_long = ketua("x" * 1400)
    assert ketua.t("id", "umumkan.error_too_long", limit=1000, length=1400) in too_long
    assert ketua.t("id", "umumkan.ask_audience") in ketua("Kerja bakti Minggu pagi")
    ketua(ketua.t("id", "umumkan.to_followers", group="RW 05 Delima"))
    ketua(ketua.t("id", "umumkan.when_now"))
    preview = ketua(ketua.t("id", "umumkan.poll_no"))
    assert "[foto: console:poster-kerja-bakti]" in preview
    done = ketua("Kirim")
    with assistant.sessions() as s:
        b = s.scalars(select(Broadcast)).one()
    assert ketua.t("id", "umumkan.queued", id=b.id) in done
    assert b.photo == "console:poster-kerja-bakti" and b.text == "Kerja bakti Minggu pagi"

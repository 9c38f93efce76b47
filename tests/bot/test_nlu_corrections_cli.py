"""`warga nlu review` and `warga nlu export` on real corrections in SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from actions import migrate
from actions.corrections import record_correction
from actions.db import make_engine, make_session_factory
from actions.domain import CorrectionSource, ReviewState
from actions.models import NluCorrection
from bot.cli import cli
from nlu.check import check_file
from nlu.rasa_yaml import read_nlu, read_nlu_text

DATA = Path(__file__).resolve().parents[2] / "data"
PHONE, NIK = "0812-7654-3210", "1471091203880004"
TEXTS = [
    f"tiang kabel optik miring mau rubuh di gg. kenanga ujung, wa sy {PHONE}",
    f"bantuan sembako blm cair2 pdhl udh didata, nik sy {NIK}",
    "parkir liar tiap sore di depan ruko nangka bikin macet panjang",
]


@pytest.fixture
def db(empty_url: str):
    engine = make_engine(empty_url)
    migrate.upgrade(engine)
    yield empty_url, make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def env(db, tmp_path) -> dict[str, str]:
    url, _ = db
    return {"DATABASE_URL": url, "WARGA_CITY": "pekanbaru", "WARGA_VAR_DIR": str(tmp_path)}


def warga(env: dict[str, str], *args: str, input: str | None = None, ok: bool = True) -> str:
    result = CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)
    assert (result.exit_code == 0) is ok, result.output
    return result.output


def add(sessions, *labels: tuple[str, str, str], when: datetime | None = None) -> None:
    when = when or datetime(2026, 12, 1, 8, tzinfo=UTC)
    with sessions.begin() as s:
        for text, predicted, corrected in labels:
            record_correction(
                s,
                text=text,
                predicted=predicted,
                corrected=corrected,
                source=CorrectionSource.RESIDENT_EDIT,
                now=when,
            )


def reviewed(sessions) -> list[tuple[ReviewState, str | None]]:
    with sessions() as s:
        rows = s.scalars(select(NluCorrection).order_by(NluCorrection.id))
        return [(c.review, c.final_label) for c in rows]


def test_review_accepts_relabels_with_a_known_label_skips_and_quits(db, env):
    _, sessions = db
    add(
        sessions,
        (TEXTS[0], "lapor/listrik", "lapor/telekomunikasi"),
        (TEXTS[1], "lapor/adminduk", "lapor/adminduk_x"),
        (TEXTS[2], "lapor/jalan", "lapor/lainnya"),
        ("lampu", "lapor/lampu_jalan", "tanya/lampu_jalan"),
    )
    out = warga(env, "nlu", "review", input="a\nx\nr\nlapor/bansos\nlapor/sosial\ns\nq\n")
    assert "lapor/listrik" in out and "lapor/telekomunikasi" in out  # predicted and corrected
    assert PHONE not in out and "7654" not in out
    assert "unknown key 'x'" in out and "unknown label 'lapor/bansos'" in out
    assert "accepted 1, relabelled 1, skipped 1" in out
    assert reviewed(sessions) == [
        (ReviewState.ACCEPTED, "lapor/telekomunikasi"),
        (ReviewState.RELABELLED, "lapor/sosial"),
        (ReviewState.SKIPPED, None),
        (ReviewState.PENDING, None),  # quit before it
    ]
    out = warga(env, "nlu", "review", input="a\n")  # only what is still pending
    assert "[1/1]" in out and "lampu" in out
    assert reviewed(sessions)[-1] == (ReviewState.ACCEPTED, "tanya/lampu_jalan")
    assert "no corrections waiting" in warga(env, "nlu", "review", input="")


def test_export_is_rasa_yaml_without_personal_data_that_merges_into_the_nlu_data(
    db, env, tmp_path
):
    _, sessions = db
    add(
        sessions,
        (TEXTS[0], "lapor/listrik", "lapor/telekomunikasi"),
        (TEXTS[1], "lapor/adminduk", "lapor/pelayanan_publik"),
        (TEXTS[2], "lapor/jalan", "lapor/ketertiban"),
        (TEXTS[0].upper(), "lapor/listrik", "lapor/telekomunikasi"),  # the same text again
        ("jalan rusak", "lapor/lainnya", "lapor/jalan"),  # already in data/nlu.yml
        ("antrian ktp lama [bgt]", "tanya/adminduk", "lapor/pelayanan_publik"),
    )
    add(sessions, ("pohon tumbang nimpa pagar", "lapor/jalan", "lapor/lingkungan"))
    add(  # recorded before --since: left out
        sessions,
        ("got mampet depan rumah", "lapor/jalan", "lapor/drainase_banjir"),
        when=datetime(2026, 11, 1, tzinfo=UTC),
    )
    # all accepted but the second, relabelled, and the tree, skipped
    warga(env, "nlu", "review", input="a\nr\nlapor/sosial\na\na\na\na\ns\na\n")
    out_file = tmp_path / "corrections.yml"
    warga(env, "nlu", "export", "--since", "2026-11-15", "--out", str(out_file))
    exported = out_file.read_text(encoding="utf-8")
    assert exported.startswith('version: "3.1"\nnlu:\n- intent: ')
    assert PHONE not in exported and "7654" not in exported
    assert NIK not in exported and NIK[4:] not in exported

    data = read_nlu_text(exported)
    assert data.problems == []
    got = sorted((e.label, e.text) for e in data.examples)
    assert [label for label, _ in got] == [
        "lapor/ketertiban",
        "lapor/pelayanan_publik",
        "lapor/sosial",
        "lapor/telekomunikasi",
    ]  # each text once; not what is already in the data, skipped or older
    assert ("lapor/pelayanan_publik", "antrian ktp lama (bgt)") in got
    assert all(e.entities == () for e in data.examples)

    # Appended to the project's data, `warga nlu check` still passes.
    merged_dir = tmp_path / "data"
    merged_dir.mkdir()
    for item in DATA.iterdir():
        if item.name != "nlu.yml":
            (merged_dir / item.name).symlink_to(item)
    original = (DATA / "nlu.yml").read_text(encoding="utf-8")
    items = exported.split("nlu:\n", 1)[1]
    (merged_dir / "nlu.yml").write_text(original.rstrip("\n") + "\n" + items, encoding="utf-8")
    merged = read_nlu(merged_dir / "nlu.yml")
    assert len(merged.examples) == len(read_nlu(DATA / "nlu.yml").examples) + 4
    _, problems = check_file(merged_dir / "nlu.yml", DATA / "taxonomy.yml")
    assert problems == []
    out = warga({**env, "WARGA_DATA_DIR": str(merged_dir)}, "nlu", "check")
    assert "no problems" in out

    # Without --out it goes to standard output, everything accepted since the beginning.
    assert "drainase_banjir" in warga(env, "nlu", "export")

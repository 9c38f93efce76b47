import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from nlu.cli import build_group
from nlu.evaluate import SimpleEntity, SimpleResult, evaluate
from nlu.rasa_yaml import read_nlu_text

GOLD = """\
version: "3.1"
nlu:
- intent: lapor/jalan
  examples: |
    - jalan rusak di [Jl. Paus](lokasi)
- intent: lapor/sampah
  examples: |
    - sampah numpuk
- intent: darurat
  examples: |
    - kebakaran tolong
- intent: lapor/drainase_banjir
  examples: |
    - banjir selutut di [Simpang Baru](kelurahan)
- intent: cek_status
  examples: |
    - cek [#12]{"entity": "nomor_tiket", "value": "PKU-2026-000012"}
- intent: salam
  examples: |
    - halo
"""

PREDICTED = {
    "jalan rusak di Jl. Paus": SimpleResult(
        "lapor", "jalan", "lapor/jalan", [SimpleEntity("lokasi", "Jl. Paus")]
    ),
    "sampah numpuk": SimpleResult("tanya", "sampah", "tanya/sampah", []),
    "kebakaran tolong": SimpleResult("darurat", None, "darurat", []),
    "banjir selutut di Simpang Baru": SimpleResult(
        "darurat", None, "darurat", [SimpleEntity("kelurahan", "Simpangbaru")]
    ),
    "cek #12": SimpleResult(
        "cek_status", None, "cek_status", [SimpleEntity("nomor_tiket", "PKU-2026-000013")]
    ),
    "halo": SimpleResult("salam", None, "salam", [SimpleEntity("telepon", "+628123")]),
}


def test_eval_computes_the_metrics_worked_out_by_hand():
    examples = read_nlu_text(GOLD).examples
    known = {"lapor/jalan", "lapor/sampah", "darurat", "lapor/drainase_banjir", "cek_status"}
    m = evaluate(PREDICTED.__getitem__, examples, known_labels=known)
    assert m["n"] == 6
    assert m["intent_accuracy"] == pytest.approx(4 / 6, abs=1e-4)
    assert m["category_accuracy"] == pytest.approx(2 / 3, abs=1e-4)  # sampah counts
    assert m["label_accuracy"] == pytest.approx(4 / 6, abs=1e-4)
    assert m["darurat_recall"] == 1.0
    assert m["darurat_precision"] == 0.5
    # gold: (lokasi, jl. paus), (kelurahan, simpangbaru), (nomor_tiket, ...012): tp 2 fp 1 fn 1
    assert m["entity_f1"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["per_intent"]["lapor"] == {
        "support": 3,
        "precision": 1.0,
        "recall": pytest.approx(1 / 3, abs=1e-4),
        "f1": 0.5,
    }
    assert m["per_intent"]["darurat"]["precision"] == 0.5
    assert m["per_intent"]["darurat"]["f1"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["per_intent"]["tanya"] == {"support": 0, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert {(c["gold"], c["predicted"]) for c in m["confusions"]} == {
        ("lapor/sampah", "tanya/sampah"),
        ("lapor/drainase_banjir", "darurat"),
    }
    assert m["missing_labels"] == {"salam": 1}
    assert m["per_category"]["jalan"] == {"support": 1, "accuracy": 1.0}
    assert m["per_category"]["drainase_banjir"] == {"support": 1, "accuracy": 0.0}
    assert m["latency_ms_p50"] >= 0 and m["latency_ms_p99"] >= m["latency_ms_p50"]


def test_eval_breaks_the_entity_scores_down_by_type():
    m = evaluate(PREDICTED.__getitem__, read_nlu_text(GOLD).examples)
    per = m["per_entity"]
    assert per["lokasi"] == {
        "support": 1,
        "predicted": 1,
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
    }
    assert per["kelurahan"]["f1"] == 1.0
    assert per["nomor_tiket"] == {
        "support": 1,
        "predicted": 1,
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
    }
    # Nothing expected and nothing found is a perfect score, as for the overall F1.
    assert per["kecamatan"]["support"] == 0 and per["kecamatan"]["f1"] == 1.0


@pytest.fixture()
def cli(tiny_yaml: Path, tmp_path: Path):
    taxonomy = Path(__file__).resolve().parents[2] / "data" / "taxonomy.yml"

    def options() -> dict:
        return {"path": str(tiny_yaml), "taxonomy": str(taxonomy), "cache_dir": tmp_path / "c"}

    return build_group(options)


def test_cli_train_says_what_it_trained(cli):
    res = CliRunner().invoke(cli, ["train"])
    assert res.exit_code == 0, res.output
    assert "trained 4 labels on 24 examples" in res.output


def test_cli_parse_prints_the_parse_as_json(cli):
    res = CliRunner().invoke(cli, ["parse", "sampah numpuk di tps"])
    assert res.exit_code == 0
    assert json.loads(res.output)["label"] == "lapor/sampah"


def test_cli_eval_json_scores_each_file_and_reports_missing_labels(cli, tmp_path):
    test_file = tmp_path / "gold.yml"
    test_file.write_text(GOLD, encoding="utf-8")
    res = CliRunner().invoke(cli, ["eval", str(test_file), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    m = out["files"]["gold.yml"]
    assert m["n"] == 6 and 0 <= m["intent_accuracy"] <= 1
    assert m["missing_labels"] == {"cek_status": 1, "lapor/drainase_banjir": 1}
    assert set(m["per_entity"]) == {"lokasi", "kecamatan", "kelurahan", "nomor_tiket"}


def test_cli_eval_prints_the_scores_of_each_entity_type(cli, tmp_path):
    test_file = tmp_path / "gold.yml"
    test_file.write_text(GOLD, encoding="utf-8")
    res = CliRunner().invoke(cli, ["eval", str(test_file)])
    assert res.exit_code == 0, res.output
    assert "per entity (support predicted precision recall f1):" in res.output
    assert any(line.split()[:2] == ["lokasi", "1"] for line in res.output.splitlines())


def test_cli_check_reports_thin_data_and_fails(cli):
    res = CliRunner().invoke(cli, ["check"])
    assert res.exit_code == 1
    assert "salam: 6 examples, needs at least 40" in res.output


def test_cli_errors_are_one_line_without_traceback(cli, tmp_path):
    res = CliRunner().invoke(cli, ["eval", str(tmp_path / "missing.yml")])
    assert res.exit_code != 0
    assert "no such file" in res.stderr and "Traceback" not in res.output + res.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text("nlu: [unclosed", encoding="utf-8")
    res = CliRunner().invoke(cli, ["eval", str(broken)])
    assert res.exit_code != 0 and "Traceback" not in res.stderr

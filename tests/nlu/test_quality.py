"""Quality gate: the engine trained from data/ meets the targets on the held-out messages."""

from pathlib import Path

import pytest

from nlu.evaluate import evaluate
from nlu.rasa_yaml import read_nlu

HELDOUT = Path(__file__).resolve().parents[1] / "data" / "nlu_heldout.yml"


@pytest.fixture(scope="module")
def scores(parser) -> dict:
    data = read_nlu(HELDOUT)
    assert len(data.examples) >= 300
    return evaluate(
        parser.parse, data.examples, known_labels=set(parser.labels), canon=parser.canonical
    )


def test_heldout_intent_accuracy_meets_the_target(scores):
    assert scores["intent_accuracy"] >= 0.90


def test_heldout_category_accuracy_meets_the_target(scores):
    assert scores["category_accuracy"] >= 0.85


def test_heldout_darurat_is_not_missed_and_rarely_false(scores):
    assert scores["darurat_recall"] >= 0.98
    assert scores["darurat_precision"] >= 0.90


def test_heldout_entity_f1_meets_the_target(scores):
    assert scores["entity_f1"] >= 0.80


def test_every_heldout_label_is_known_to_the_model(scores):
    assert scores["missing_labels"] == {}

"""Cleaning text at the edge: what PostgreSQL, UTF-8 and XML cannot take never gets in."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET  # noqa: N817

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actions.text import REPLACEMENT, TooDeep, clean, clean_json, is_clean


def test_clean_takes_out_nul_controls_and_surrogates() -> None:
    assert clean("a\x00b\x01c\x0b\x0c\x1bd\x7f") == "abcd"
    assert clean("tab\tnew\nline\r") == "tab\tnew\nline\r"
    assert clean("x\ud800y\udfffz") == f"x{REPLACEMENT}y{REPLACEMENT}z"
    assert clean("Jl. Paus 😀 ﷽") == "Jl. Paus 😀 ﷽"
    assert clean("abcdef", 3) == "abc"


@given(st.text())
def test_clean_text_is_storable_and_xml_safe(text: str) -> None:
    cleaned = clean(text)
    assert is_clean(cleaned)
    cleaned.encode("utf-8")  # no lone surrogate left
    assert "\x00" not in cleaned
    element = ET.Element("d")
    element.text = cleaned
    ET.fromstring(ET.tostring(element, encoding="unicode"))  # noqa: S314 - our own output


def test_clean_json_cleans_keys_and_values_and_keeps_the_rest() -> None:
    raw = json.loads('{"a\\u0000": ["x\\ud800", 1, 2.5, true, null, {"k": "\\u0001v"}]}')
    assert clean_json(raw) == {"a": [f"x{REPLACEMENT}", 1, 2.5, True, None, {"k": "v"}]}


def test_clean_json_refuses_hostile_nesting_without_recursion() -> None:
    deep: object = "x"
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(TooDeep):
        clean_json(deep)
    assert clean_json([[["ok"]]], max_depth=3) == [[["ok"]]]

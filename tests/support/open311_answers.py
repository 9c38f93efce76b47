"""The properties every answer of our Open311 API has, whoever sent the request: checked by the
fuzz test (tests/bot/test_open311_fuzz.py) and by schemathesis in scripts/fuzz-open311."""

from __future__ import annotations

import json
from collections.abc import Collection
from urllib.parse import unquote
from xml.etree import ElementTree as ET  # noqa: N817 - the usual name

import xmltodict

MARKER = "PENANDA-RAHASIA-7731"  # the description of a rahasia ticket: never in an answer


def parse_xml(content: bytes) -> ET.Element:
    return ET.fromstring(content)  # noqa: S314 - our own server's answer, which is the point


def check_answer(
    method: str,
    raw_path: str,
    status: int,
    ctype: str,
    content: bytes,
    rahasia: Collection[str] = (),
) -> None:
    """Raise AssertionError unless the answer is what the API promises.

    Never a 5xx; an error is the spec's array in the URL's format (XML for .xml, else JSON), its
    code the answer's status; XML is well-formed (ElementTree and xmltodict); neither a rahasia
    ticket's description nor, in an answer to GET, its number.
    """
    where = f"{method} {raw_path}"
    assert status < 500, f"{status} for {where}: {content!r:.500}"
    root = None
    if ctype.startswith("text/xml") and method != "HEAD":  # HEAD: headers only
        root = parse_xml(content)  # well-formed, or this raises
        xmltodict.parse(content)
    path = unquote(raw_path)  # as the server reads it
    if status >= 400 and method != "HEAD":
        if path.lower().endswith(".xml"):
            assert root is not None, f"{ctype} for {where}: {content!r:.300}"
            assert root.tag == "errors" and len(root), content
            assert all([c.tag for c in e] == ["code", "description"] for e in root), content
            errors = [(e.findtext("code"), e.findtext("description")) for e in root]
        else:
            assert ctype.startswith("application/json"), f"{ctype} for {where}: {content!r:.300}"
            data = json.loads(content)
            assert isinstance(data, list) and data, content
            assert all(isinstance(e, dict) and set(e) == {"code", "description"} for e in data)
            errors = [(str(e["code"]), e["description"]) for e in data]
        for code, description in errors:
            assert code == str(status), (where, content)
            assert isinstance(description, str) and description, (where, content)
    assert MARKER.encode() not in content, where
    if status < 300 and rahasia and method == "GET":  # a POST's own number goes back to it
        if root is not None:
            shown = {e.text for e in root.iter("service_request_id")}
        elif ctype.startswith("application/json"):
            data = json.loads(content)
            items = data if isinstance(data, list) else [data]
            shown = {i.get("service_request_id") for i in items if isinstance(i, dict)}
        else:
            shown = set()
        assert not shown & set(rahasia), (where, shown & set(rahasia))

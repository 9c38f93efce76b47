"""NLU_BACKEND=<url>: ask a Rasa 3 server (`rasa run --enable-api`) instead of the built-in NLU.

Rasa gives the intent, the retrieval intent's category (ResponseSelector) and its entities;
the built-in engine still gives the language and the pattern entities (ticket numbers in
canonical form, phone numbers, NIK), which are rules rather than learned. If the server cannot
be reached, the built-in parse is used, so a resident never goes unanswered.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import httpx

from nlu import Entity, Parse, Parser

log = logging.getLogger(__name__)
CATEGORY_INTENTS = frozenset({"lapor", "tanya", "aspirasi"})
PATTERN_ENTITIES = frozenset({"nomor_tiket", "telepon", "nik"})


class RasaUnderstanding:
    def __init__(self, url: str, builtin: Parser, client: httpx.Client) -> None:
        self.url = url.rstrip("/") + "/model/parse"
        self.builtin, self.client = builtin, client

    def parse(self, text: str) -> Parse:
        own = self.builtin.parse(text)
        try:
            response = self.client.post(self.url, json={"text": text})
            response.raise_for_status()
            res = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("Rasa server unavailable (%s): using the built-in NLU", exc)
            return own
        ranking = [
            (r["name"], float(r.get("confidence", 0.0)))
            for r in res.get("intent_ranking") or []
            if r["name"] != "nlu_fallback"
        ]
        top = res.get("intent") or {}
        intent, confidence = ranking[0] if ranking else (top.get("name", ""), 0.0)
        selector = (res.get("response_selector") or {}).get("default") or {}
        key = (selector.get("response") or {}).get("intent_response_key") or ""
        category = key.split("/", 1)[1] if intent in CATEGORY_INTENTS and "/" in key else None
        entities = [
            Entity(
                e["entity"],
                text[e["start"] : e["end"]],
                e["start"],
                e["end"],
                str(e.get("value", "")),
            )
            for e in res.get("entities") or []
            if e.get("entity") not in PATTERN_ENTITIES and "start" in e
        ]
        entities += [e for e in own.entities if e.type in PATTERN_ENTITIES]
        return replace(
            own,
            intent=intent,
            category=category,
            label=f"{intent}/{category}" if category else intent,
            confidence=confidence,
            category_confidence=float((selector.get("response") or {}).get("confidence") or 0)
            if category
            else None,
            ranking=ranking[:10],
            fallback=top.get("name") == "nlu_fallback" or confidence < self.builtin.threshold,
            entities=sorted(entities, key=lambda e: e.start),
            rule=None,
        )

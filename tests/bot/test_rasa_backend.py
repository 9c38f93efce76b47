"""NLU_BACKEND=<url>: a Rasa server's answers, in the shape Rasa 3 documents for /model/parse."""

from __future__ import annotations

import httpx

from bot.rasa_backend import RasaUnderstanding

TEXT = "lampu jalan mati di Jl. Paus, laporan PKU-2026-000123 gmn?"


def rasa_answer(request: httpx.Request) -> httpx.Response:
    # The documented shape of POST /model/parse with a ResponseSelector for retrieval intents.
    assert request.url.path == "/model/parse"
    return httpx.Response(
        200,
        json={
            "text": TEXT,
            "intent": {"name": "lapor", "confidence": 0.91},
            "intent_ranking": [
                {"name": "lapor", "confidence": 0.91},
                {"name": "cek_status", "confidence": 0.05},
            ],
            "entities": [
                {
                    "entity": "lokasi",
                    "start": 20,
                    "end": 28,
                    "value": "Jl. Paus",
                    "extractor": "DIETClassifier",
                    "confidence_entity": 0.98,
                }
            ],
            "response_selector": {
                "all_retrieval_intents": ["lapor", "tanya", "aspirasi"],
                "default": {
                    "response": {
                        "intent_response_key": "lapor/lampu_jalan",
                        "confidence": 0.87,
                        "responses": None,
                    },
                    "ranking": [],
                },
            },
        },
    )


def test_rasas_intent_category_and_entities_with_our_ticket_numbers(parser):
    client = httpx.Client(transport=httpx.MockTransport(rasa_answer), base_url="http://rasa")
    parse = RasaUnderstanding("http://rasa:5005", parser, client).parse(TEXT)
    assert (parse.intent, parse.category, parse.label) == (
        "lapor",
        "lampu_jalan",
        "lapor/lampu_jalan",
    )
    assert parse.confidence == 0.91 and not parse.fallback
    assert [(e.type, e.value) for e in parse.entities] == [
        ("lokasi", "Jl. Paus"),
        ("nomor_tiket", "PKU-2026-000123"),
    ]
    assert parse.language == "id"


def test_an_unreachable_server_falls_back_to_the_builtin_engine(parser):
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = httpx.Client(transport=httpx.MockTransport(down))
    parse = RasaUnderstanding("http://rasa:5005", parser, client).parse("kebakaran tolong")
    assert parse == parser.parse("kebakaran tolong")
    assert parse.intent == "darurat"


def test_rasas_fallback_intent_makes_the_bot_ask(parser):
    def unsure(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "text": "hmm",
                "intent": {"name": "nlu_fallback", "confidence": 0.3},
                "intent_ranking": [
                    {"name": "nlu_fallback", "confidence": 0.3},
                    {"name": "salam", "confidence": 0.2},
                ],
                "entities": [],
                "response_selector": {},
            },
        )

    client = httpx.Client(transport=httpx.MockTransport(unsure))
    parse = RasaUnderstanding("http://rasa:5005", parser, client).parse("hmm")
    assert parse.fallback and parse.intent == "salam"

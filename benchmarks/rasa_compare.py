"""Score Rasa 3.6 (DIET + ResponseSelector) and our engine on the same test files, side by side.

Rasa runs in its own Python 3.10 environment, never in the project's. Either point this script
at a running server (`rasa run --enable-api`), or give it a trained Rasa model and the `rasa`
executable and it starts the server itself:

    rasa train nlu --config data/rasa/config.yml --nlu data/nlu.yml \\
        --domain data/rasa/domain.yml --out /tmp/rasa-models --fixed-model-name nlu
    python benchmarks/rasa_compare.py tests/data/nlu_heldout.yml \\
        --model /tmp/rasa-models/nlu.tar.gz --rasa /path/to/rasa-venv/bin/rasa

Rasa's answer is mapped to the structure our evaluation scores: the intent is the top intent
other than `nlu_fallback` (our engine is scored on its top label too, whatever its fallback
flag); the category is the response selector's retrieval label (`lapor/jalan` -> `jalan`)
when the intent takes one; entities are Rasa's entities with their synonym-mapped values.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from nlu import load
from nlu.evaluate import HEADLINE, SimpleEntity, SimpleResult, evaluate_files

CATEGORY_INTENTS = ("lapor", "tanya", "aspirasi")
KEYS = ("n", *HEADLINE)


def _post(url: str, payload: dict, timeout: float = 30.0) -> dict:
    req = urllib.request.Request(  # noqa: S310 - a local URL given on the command line
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
        return json.loads(resp.read())


def merge_adjacent(text: str, entities: list[dict]) -> list[dict]:
    """Join entities of one type separated only by spaces or punctuation.

    Rasa's WhitespaceTokenizer drops the full stop of "Jl." and DIET then returns "Jl" and
    "Bypass" as two entities; joined, the span is the place the data annotated.
    """
    out: list[dict] = []
    for e in sorted(entities, key=lambda x: x.get("start", 0)):
        prev = out[-1] if out else None
        if (
            prev is not None
            and prev["entity"] == e["entity"]
            and "start" in e
            and not text[prev["end"] : e["start"]].strip(" .,-/")
        ):
            prev["end"] = e["end"]
            prev["value"] = text[prev["start"] : prev["end"]]
        else:
            out.append(dict(e))
    return out


def rasa_parser(base_url: str, *, merge: bool = False):
    """Return a parse function that asks a Rasa server and maps its answer."""
    url = base_url.rstrip("/") + "/model/parse"

    def parse(text: str) -> SimpleResult:
        res = _post(url, {"text": text})
        ranking = [r for r in res.get("intent_ranking") or [] if r["name"] != "nlu_fallback"]
        intent = ranking[0]["name"] if ranking else (res.get("intent") or {}).get("name", "")
        category = None
        selector = (res.get("response_selector") or {}).get("default") or {}
        key = (selector.get("response") or {}).get("intent_response_key") or ""
        if intent in CATEGORY_INTENTS and "/" in key:
            category = key.split("/", 1)[1]
        label = f"{intent}/{category}" if category else intent
        found = res.get("entities") or []
        if merge:
            found = merge_adjacent(text, found)
        ents = [SimpleEntity(e["entity"], str(e.get("value", ""))) for e in found]
        return SimpleResult(intent=intent, category=category, label=label, entities=ents)

    return parse


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_rasa(rasa: str, model: str, timeout: float = 300.0) -> tuple[subprocess.Popen, str]:
    """Start `rasa run --enable-api` on a free port and wait until it answers."""
    port = _free_port()
    log = tempfile.NamedTemporaryFile(prefix="rasa-run-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(  # noqa: S603 - the executable is given by the operator
        [rasa, "run", "--enable-api", "-m", model, "-p", str(port), "-i", "127.0.0.1"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"rasa exited with {proc.returncode}; see {log.name}")
        try:
            _post(url + "/model/parse", {"text": "halo"}, timeout=5)
            return proc, url
        except OSError:
            time.sleep(1.0)
    proc.terminate()
    raise RuntimeError(f"rasa did not answer within {timeout:.0f} s; see {log.name}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", help="Rasa-format test files")
    ap.add_argument("--url", help="a running Rasa server, e.g. http://127.0.0.1:5005")
    ap.add_argument("--model", help="a trained Rasa model (.tar.gz) to serve")
    ap.add_argument("--rasa", default="rasa", help="the rasa executable (its own venv)")
    ap.add_argument("--data", default="data/nlu.yml", help="our training data")
    ap.add_argument("--cache-dir", default=None, help="our model cache (default: a temp dir)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument(
        "--merge-adjacent",
        action="store_true",
        help="join Rasa entities of one type split at punctuation (see merge_adjacent)",
    )
    args = ap.parse_args(argv)
    if not args.url and not args.model:
        ap.error("give --url or --model")

    with tempfile.TemporaryDirectory() as tmp:
        ours = load(args.data, cache_dir=args.cache_dir or tmp)
        our_scores = evaluate_files(
            ours.parse, args.files, known_labels=set(ours.labels), canon=ours.canonical
        )
    proc = None
    try:
        url = args.url
        if not url:
            proc, url = start_rasa(args.rasa, args.model)
        rasa_scores = evaluate_files(
            rasa_parser(url, merge=args.merge_adjacent), args.files, canon=ours.canonical
        )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)

    result = {"ours": our_scores, "rasa": rasa_scores}
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    for name in our_scores["files"]:
        o, r = our_scores["files"][name], rasa_scores["files"][name]
        print(f"== {name}")
        print(f"  {'metric':22s} {'ours':>10s} {'rasa':>10s}")
        for k in KEYS:
            print(f"  {k:22s} {o[k]!s:>10s} {r[k]!s:>10s}")
        print("  per intent F1:")
        for intent in sorted(set(o["per_intent"]) | set(r["per_intent"])):
            fo = o["per_intent"].get(intent, {}).get("f1", 0.0)
            fr = r["per_intent"].get(intent, {}).get("f1", 0.0)
            print(f"    {intent:20s} {fo:>10.3f} {fr:>10.3f}")
        print("  per category accuracy (support):")
        for cat in sorted(set(o["per_category"]) | set(r["per_category"])):
            co = o["per_category"].get(cat, {})
            cr = r["per_category"].get(cat, {})
            print(
                f"    {cat:20s} {co.get('accuracy', 0.0):>10.3f} {cr.get('accuracy', 0.0):>10.3f}"
                f"  ({co.get('support', 0)})"
            )
        print("  (rasa latency includes the HTTP round trip)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

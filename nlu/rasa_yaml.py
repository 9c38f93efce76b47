"""Read Rasa 3 NLU training data (YAML) into plain Python structures."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# [text](entity) | [text](entity:value) | [text]{"entity": ..., "value": ...}
_ANNOTATION = re.compile(r"\[(?P<text>[^\]\[]+?)\](?:\((?P<paren>[^)]*)\)|(?P<brace>\{[^}]*\}))")


class RasaFormatError(ValueError):
    """The file is not readable as Rasa NLU YAML."""


@dataclass(frozen=True)
class Annotation:
    """One entity annotated inline in a training example."""

    entity: str
    value: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Example:
    """One training example: plain text, its label and its entities."""

    text: str
    label: str
    entities: tuple[Annotation, ...] = ()
    raw: str = ""
    line: int = 0

    @property
    def intent(self) -> str:
        return self.label.split("/", 1)[0]

    @property
    def category(self) -> str | None:
        parts = self.label.split("/", 1)
        return parts[1] if len(parts) == 2 else None


@dataclass
class NluData:
    """Everything an NLU YAML file holds."""

    examples: list[Example] = field(default_factory=list)
    synonyms: dict[str, str] = field(default_factory=dict)  # variant (lower) -> canonical
    regexes: dict[str, list[str]] = field(default_factory=dict)
    lookups: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # malformed annotations and the like


def parse_annotated(raw: str) -> tuple[str, list[Annotation], list[str]]:
    """Strip inline annotations from one example; return text, entities and problems."""
    out: list[str] = []
    entities: list[Annotation] = []
    problems: list[str] = []
    pos = 0
    length = 0
    for m in _ANNOTATION.finditer(raw):
        before = raw[pos : m.start()]
        out.append(before)
        length += len(before)
        surface = m.group("text")
        entity = ""
        value = surface
        if m.group("paren") is not None:
            spec = m.group("paren").strip()
            entity, _, val = spec.partition(":")
            entity = entity.strip()
            if val.strip():
                value = val.strip()
        else:
            try:
                spec_obj = json.loads(m.group("brace"))
            except json.JSONDecodeError:
                spec_obj = None
            if not isinstance(spec_obj, dict):
                problems.append(f"unreadable entity annotation {m.group(0)!r}")
            else:
                entity = str(spec_obj.get("entity", "")).strip()
                if "value" in spec_obj:
                    value = str(spec_obj["value"])
        if not entity and not problems:
            problems.append(f"annotation without entity name {m.group(0)!r}")
        if entity:
            entities.append(Annotation(entity, value, length, length + len(surface), surface))
        out.append(surface)
        length += len(surface)
        pos = m.end()
    out.append(raw[pos:])
    text = "".join(out)
    if re.search(r"\]\(|\]\{", text) or re.search(r"\[[^\]]*\]\s*$", text):
        problems.append(f"malformed entity annotation in {raw!r}")
    return text, entities, problems


def _example_lines(block: object) -> list[str]:
    if block is None:
        return []
    if isinstance(block, str):
        lines = []
        for line in block.splitlines():
            stripped = line.strip()
            if not stripped:
                continue
            if stripped.startswith("- "):
                lines.append(stripped[2:].strip())
            elif stripped == "-":
                lines.append("")
            else:
                lines.append(stripped)
        return lines
    if isinstance(block, list):
        lines = []
        for item in block:
            if isinstance(item, dict) and "text" in item:
                lines.append(str(item["text"]).strip())
            elif isinstance(item, str):
                lines.append(item.strip())
        return lines
    raise RasaFormatError("examples must be a block string or a list")


def _strip_quotes(line: str) -> str:
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'":
        return line[1:-1]
    return line


def read_nlu_text(content: str, *, source: str = "<string>") -> NluData:
    """Parse Rasa NLU YAML from a string."""
    try:
        doc = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise RasaFormatError(f"{source}: not valid YAML ({exc.__class__.__name__})") from exc
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise RasaFormatError(f"{source}: top level must be a mapping")
    items = doc.get("nlu") or []
    if not isinstance(items, list):
        raise RasaFormatError(f"{source}: 'nlu' must be a list")
    data = NluData()
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            data.problems.append(f"{source}: item {n} is not a mapping")
            continue
        block = item.get("examples")
        try:
            lines = _example_lines(block)
        except RasaFormatError as exc:
            data.problems.append(f"{source}: item {n}: {exc}")
            continue
        if "intent" in item:
            label = str(item["intent"]).strip()
            for i, raw in enumerate(lines):
                raw = _strip_quotes(raw)
                text, ents, probs = parse_annotated(raw)
                for p in probs:
                    data.problems.append(f"{source}: {label}: {p}")
                if not text.strip():
                    data.problems.append(f"{source}: {label}: empty example")
                    continue
                data.examples.append(Example(text, label, tuple(ents), raw, i))
        elif "synonym" in item:
            canonical = str(item["synonym"])
            for raw in lines:
                data.synonyms[_strip_quotes(raw).lower()] = canonical
        elif "regex" in item:
            data.regexes.setdefault(str(item["regex"]), []).extend(_strip_quotes(x) for x in lines)
        elif "lookup" in item:
            data.lookups.setdefault(str(item["lookup"]), []).extend(
                _strip_quotes(x) for x in lines
            )
        else:
            data.problems.append(f"{source}: item {n} has no intent/synonym/regex/lookup key")
    # Entity values given as {"value": ...} act as synonyms too, as in Rasa.
    for ex in data.examples:
        for ent in ex.entities:
            if ent.value != ent.text:
                data.synonyms.setdefault(ent.text.lower(), ent.value)
    return data


def read_nlu(path: str | Path) -> NluData:
    """Read one Rasa NLU YAML file."""
    p = Path(path)
    try:
        content = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RasaFormatError(f"{p}: cannot read ({exc.strerror})") from exc
    return read_nlu_text(content, source=str(p))


def example_line(text: str) -> str:
    """One message as a plain example line: one line, printable, and no brackets that would
    read as an entity annotation."""
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = text.replace("[", "(").replace("]", ")")
    return " ".join(text.split())


def write_nlu_text(examples: dict[str, list[str]]) -> str:
    """Rasa NLU YAML as data/nlu.yml writes it: `- intent: lapor/jalan` blocks of
    `examples: |`, the labels in the order given, empty lines left out."""
    out = ['version: "3.1"', "nlu:"]
    for label, texts in examples.items():
        lines = [line for line in (example_line(t) for t in texts) if line]
        if not lines:
            continue
        out.append(f"- intent: {label}")
        out.append("  examples: |")
        out.extend(f"    - {line}" for line in lines)
    return "\n".join(out) + "\n"

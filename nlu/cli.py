"""`warga nlu …` commands: train, parse, check, eval."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

DEFAULT_TAXONOMY = "data/taxonomy.yml"


def _split(options: Callable[[], dict]) -> tuple[Path, dict, Path]:
    opts = dict(options())
    if "path" not in opts:
        raise click.ClickException("no NLU data path configured")
    path = Path(opts.pop("path"))
    taxonomy = Path(opts.pop("taxonomy", DEFAULT_TAXONOMY))
    return path, opts, taxonomy


def _load(options: Callable[[], dict], **extra):
    from . import load
    from .rasa_yaml import RasaFormatError

    path, opts, _ = _split(options)
    if not path.exists():
        raise click.ClickException(f"{path}: no such file")
    opts.update(extra)
    try:
        return load(path, **opts)
    except (RasaFormatError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


class _Group(click.Group):
    """A group whose unexpected errors end as one line on stderr, not a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


def build_group(options: Callable[[], dict]) -> click.Group:
    """Build the `nlu` command group; `options()` gives `path`, `taxonomy` and `load` kwargs."""

    @click.group(name="nlu", cls=_Group, help="Train, run, check and score the Indonesian NLU.")
    def nlu() -> None:
        pass

    @nlu.command(help="Train the model from the NLU data (always retrains).")
    def train() -> None:
        t0 = time.perf_counter()
        messages: list[str] = []
        parser = _load(options, force=True, log=messages.append)
        info = parser.info
        click.echo(
            f"trained {info.get('labels')} labels on {info.get('examples')} examples "
            f"in {info.get('seconds')} s (total {time.perf_counter() - t0:.1f} s); "
            f"model {info.get('model_file')}"
        )

    @nlu.command(help="Parse TEXT and print the result as JSON.")
    @click.argument("text")
    def parse(text: str) -> None:
        parser = _load(options)
        click.echo(json.dumps(parser.parse(text).to_dict(), ensure_ascii=False, indent=2))

    @nlu.command(help="Validate the NLU data against the taxonomy.")
    def check() -> None:
        from .check import check_file
        from .rasa_yaml import RasaFormatError

        path, opts, taxonomy = _split(options)
        failed = False
        for file in (path, *opts.get("extra", ())):
            try:
                data, problems = check_file(file, taxonomy, minimums=file == path)
            except (RasaFormatError, ValueError) as exc:
                raise click.ClickException(str(exc)) from None
            for p in problems:
                click.echo(p)
            labels = len({e.label for e in data.examples})
            if problems:
                click.echo(f"{len(problems)} problem(s) in {file}", err=True)
                failed = True
            else:
                click.echo(f"{file}: {len(data.examples)} examples, {labels} labels, no problems")
        if failed:
            sys.exit(1)

    @nlu.command(name="eval", help="Score the model on Rasa-format test files.")
    @click.argument("files", nargs=-1, required=True, type=click.Path())
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def eval_(files: tuple[str, ...], as_json: bool) -> None:
        from .evaluate import HEADLINE, evaluate_files
        from .rasa_yaml import RasaFormatError

        for f in files:
            if not Path(f).exists():
                raise click.ClickException(f"{f}: no such file")
        parser = _load(options)
        try:
            result = evaluate_files(
                parser.parse, files, known_labels=set(parser.labels), canon=parser.canonical
            )
        except RasaFormatError as exc:
            raise click.ClickException(str(exc)) from None
        if as_json:
            click.echo(json.dumps(result, ensure_ascii=False))
            return
        for name, m in result["files"].items():
            click.echo(f"== {name} (n={m['n']})")
            for k in HEADLINE:
                click.echo(f"  {k:20s} {m[k]}")
            click.echo("  per intent (support precision recall f1):")
            for intent, s in m["per_intent"].items():
                click.echo(
                    f"    {intent:14s} {s['support']:4d} {s['precision']:.3f} "
                    f"{s['recall']:.3f} {s['f1']:.3f}"
                )
            click.echo("  per entity (support predicted precision recall f1):")
            for etype, s in m["per_entity"].items():
                click.echo(
                    f"    {etype:14s} {s['support']:4d} {s['predicted']:4d} {s['precision']:.3f} "
                    f"{s['recall']:.3f} {s['f1']:.3f}"
                )
            if m["confusions"]:
                click.echo("  most frequent confusions (gold -> predicted: count):")
                for c in m["confusions"]:
                    click.echo(f"    {c['gold']} -> {c['predicted']}: {c['count']}")
            if m["missing_labels"]:
                click.echo(f"  labels unknown to the model: {m['missing_labels']}")

    return nlu

"""Speed and memory of the NLU engine: training, loading, parsing (one core), peak RSS.

    python benchmarks/nlu_speed.py [--data data/nlu.yml] [--heldout tests/data/nlu_heldout.yml]

Training is cold (a fresh temporary cache). Parsing runs every held-out message several
times on one CPU. Peak RSS is reported for the training process and for a fresh process that
only loads the cached model and parses, which is what the bot runs.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pin_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"cpu {cpu}"
    return "not pinned"


def _peak_rss_mb() -> float:
    """This process's peak resident memory.

    Linux keeps ru_maxrss across exec, so a child started by a big parent would report the
    parent's peak; VmHWM belongs to the process's own memory map and starts afresh at exec.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def serve(data: str, extra: list[str], heldout: str, cache: str, rounds: int) -> None:
    """Load from the cache and parse (run in a fresh process)."""
    pinned = _pin_one_core()
    from nlu import load
    from nlu.rasa_yaml import read_nlu

    t0 = time.perf_counter()
    parser = load(data, extra=extra, cache_dir=cache)
    load_s = time.perf_counter() - t0
    texts = [e.text for e in read_nlu(heldout).examples]
    for t in texts:  # warm-up: caches and the language models
        parser.parse(t)
    times: list[float] = []
    for _ in range(rounds):
        for t in texts:
            t1 = time.perf_counter()
            parser.parse(t)
            times.append((time.perf_counter() - t1) * 1000.0)
    times.sort()
    p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
    print(f"model load:            {load_s:.3f} s")
    print(f"parse ({pinned}):       {len(times)} calls over {len(texts)} messages")
    print(f"parse p50:             {statistics.median(times):.3f} ms")
    print(f"parse p99:             {p99:.3f} ms")
    print(f"parse max:             {times[-1]:.3f} ms")
    print(f"peak RSS (serving):    {_peak_rss_mb():.0f} MB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT / "data" / "nlu.yml"))
    ap.add_argument(
        "--extra",
        action="append",
        help="further training files (default: the labelled LAPOR! reports)",
    )
    ap.add_argument("--heldout", default=str(ROOT / "tests" / "data" / "nlu_heldout.yml"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--serve", metavar="CACHE", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.extra = args.extra or [str(ROOT / "data" / "lapor" / "train.yml")]
    if args.serve:
        serve(args.data, args.extra, args.heldout, args.serve, args.rounds)
        return 0
    with tempfile.TemporaryDirectory() as cache:
        pinned = _pin_one_core()
        from nlu import load

        t0 = time.perf_counter()
        parser = load(args.data, extra=args.extra, cache_dir=cache)
        train_s = time.perf_counter() - t0
        info = parser.info
        print(
            f"training ({pinned}):   {train_s:.2f} s for {info['examples']} examples, "
            f"{info['labels']} labels (model fit {info['seconds']} s)"
        )
        print(f"peak RSS (training):   {_peak_rss_mb():.0f} MB")
        model_mb = sum(p.stat().st_size for p in Path(cache).glob("*.npz")) / 1e6
        crf_mb = sum(p.stat().st_size for p in Path(cache).glob("*.crfsuite")) / 1e6
        print(f"model file:            {model_mb:.1f} MB (+ lokasi taggers {crf_mb:.1f} MB)")
        sys.stdout.flush()
        subprocess.run(  # noqa: S603 - this same script, with the same interpreter
            [
                sys.executable,
                __file__,
                "--serve",
                cache,
                "--data",
                args.data,
                *(arg for e in args.extra for arg in ("--extra", e)),
                "--heldout",
                args.heldout,
                "--rounds",
                str(args.rounds),
            ],
            check=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

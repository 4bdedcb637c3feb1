"""Speed goals that used to be wall-clock asserts in tests/ (tests check behaviour and work; time lives here).

* `make_song` of 20 s (goal: under 1 s; the test corpora generate dozens of songs);
* a YAML alias bomb is refused (goal: under 2 s; tests/core/test_config.py checks it is refused in bounded
  memory, before any expansion);
* pathological titles (marks, emoji, zero-width, 10k characters, 5,000 nested brackets) are parsed
  (goal: under 0.5 s each; tests/discover/test_text.py checks they never raise and stay bounded);
* a decoder child past its timeout is stopped (goal: within a few seconds of `timeout_s`).

Prints each median of --repeats, its goal and OK/SLOW, and a JSON line; exits 1 if a goal is missed.

    .venv/bin/python benchmarks/bench_bounds.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

TITLES = ["\u0301\u0302\u0303", "🔥🔥🔥", "\u200b\u200c\u200d", "\u202e\u202d\u2066", "\ufeff", "x" * 10_000,
          "(" * 5000 + ")" * 5000, "- " * 5000, "Song " + "(Instrumental) " * 2000, "🎵 (Instrumental)"]
BOMB = "a: &a [" + ",".join(['"lol"'] * 9) + "]\n" + "".join(
    f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")) + "catalog: c.csv\nout: o\n"


def _median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    from pairminer.audio import run_confined
    from pairminer.discover.text import VersionDetector, original_parts
    from pairminer.errors import AudioError, ConfigError
    from pairminer.synth import make_song
    from pairminer.workflow.file import load_workflow

    make_song(0, duration_s=1.0)  # imports and first-call set-up
    results = {"make_song_20s": (_median_s(lambda: make_song(1, duration_s=20.0), args.repeats), 1.0)}

    with tempfile.TemporaryDirectory() as tmp:
        bomb = Path(tmp) / "w.yaml"
        bomb.write_text(BOMB)

        def refuse():
            try:
                load_workflow(bomb)
            except ConfigError:
                return
            raise SystemExit("the YAML bomb was accepted")

        results["yaml_bomb_refused"] = (_median_s(refuse, args.repeats), 2.0)

        def stop():
            try:
                run_confined(["sleep", "30"], timeout_s=0.5, what="x")
            except AudioError:
                return
            raise SystemExit("the decoder child was not stopped")

        results["decode_timeout_0.5s"] = (_median_s(stop, max(1, args.repeats // 2)), 5.0)

    detector = VersionDetector()
    worst = max(_median_s(lambda: (detector.parse(t), original_parts(t)), args.repeats) for t in TITLES)
    results["worst_bad_title"] = (worst, 0.5)

    ok = True
    for name, (s, goal) in results.items():
        ok &= s < goal
        print(f"{name:<22} {s:8.3f} s  (goal < {goal:g} s)  {'OK' if s < goal else 'SLOW'}")
    print(json.dumps({name: round(s, 4) for name, (s, _) in results.items()}))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

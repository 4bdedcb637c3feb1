"""Issue 8, fuzzing: seeded random mutations of a valid catalog through run_discover.

For every mutant, either the run finishes with rows_read == rows_used + rows_rejected, every rejected
row carrying a reason, and the outputs readable against their schemas; or it stops with a clean
PairminerError (a one-line message). Any other exception is a bug.
"""

from __future__ import annotations

import random

import pandas as pd
import pytest

from pairminer.discover.stage import run_discover
from pairminer.errors import PairminerError
from pairminer.storage import read_json, read_table

N_MUTANTS = 300


def _base_catalog() -> bytes:
    rng = random.Random(8)
    lines = ["track_id,artist,title,duration,genre,audio_path"]
    for i in range(12):
        artist = rng.choice(["Björk", "Daft Punk", "坂本龍一", "The Band", "فيروز"])
        dur = round(rng.uniform(120, 300), 2)
        lines.append(f'm{i},{artist},"Song {i}, part {i % 3}",{dur},Pop,audio/m{i}.flac')
        lines.append(f"v{i},{artist},Song {i} part {i % 3} (Instrumental),{dur + 0.3},Pop,audio/v{i}.flac")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """One to three random edits: byte flips, line deletions/duplications, truncation, quotes, fields."""
    for _ in range(rng.randint(1, 3)):
        lines = data.split(b"\n")
        op = rng.choice(["flip", "delete_line", "dup_line", "truncate", "quote", "drop_field", "add_field",
                         "swap_lines", "insert_bytes", "crlf", "empty_field"])
        i = rng.randrange(len(lines))
        if op == "flip" and data:
            b = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            data = bytes(b)
            continue
        if op == "delete_line":
            del lines[i]
        elif op == "dup_line":
            lines.insert(i, lines[i])
        elif op == "truncate":
            data = data[: rng.randrange(len(data) + 1)]
            continue
        elif op == "quote":
            pos = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:pos] + b'"' + lines[i][pos:]
        elif op in ("drop_field", "empty_field"):
            fields = lines[i].split(b",")
            j = rng.randrange(len(fields))
            if op == "drop_field":
                del fields[j]
            else:
                fields[j] = b""
            lines[i] = b",".join(fields)
        elif op == "add_field":
            lines[i] += b",extra"
        elif op == "swap_lines":
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "insert_bytes":
            pos = rng.randrange(len(lines[i]) + 1)
            junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
            lines[i] = lines[i][:pos] + junk + lines[i][pos:]
        elif op == "crlf":
            lines = [ln + b"\r" for ln in lines]
        data = b"\n".join(lines)
    return data


def _check_outputs(out) -> None:
    rep = read_json(out / "discover-report.json")
    c = rep["counts"]
    assert c["rows_read"] == c["rows_used"] + c["rows_rejected"], c
    rej = read_table(out / "rejects.parquet", "rejects").to_pandas()
    assert len(rej) == c["rows_rejected"]
    assert rej["reason"].notna().all() and rej["reason"].str.len().gt(0).all()
    assert rej["reason_code"].notna().all()
    assert sum(c["rejected_by_reason"].values()) == c["rows_rejected"]
    cands = read_table(out / "candidates.parquet", "candidates").to_pandas()
    assert len(cands) == c["kept"]
    assert cands["pair_id"].is_unique and cands["version_track_id"].is_unique


@pytest.mark.slow
def test_mutated_catalogs_add_up_or_fail_cleanly(tmp_path):
    base = _base_catalog()
    rng = random.Random(20240508)
    outcomes = {"ok": 0, "clean_error": 0}
    rejected = 0
    for k in range(N_MUTANTS):
        data = _mutate(base, rng)
        p = tmp_path / f"m{k % 4}.csv"
        p.write_bytes(data)
        out = tmp_path / f"out{k % 4}"
        try:
            r = run_discover(p, out, scheduler="synchronous", progress=False)
        except PairminerError as exc:
            msg = str(exc)
            assert msg and "\n" not in msg, (k, msg)
            outcomes["clean_error"] += 1
            continue
        except Exception as exc:  # pragma: no cover - the assertion message carries the reproducer
            pytest.fail(f"mutant {k} ({data[:200]!r}...) raised {type(exc).__name__}: {exc}")
        try:
            _check_outputs(out)
        except AssertionError as exc:  # pragma: no cover
            raise AssertionError(f"mutant {k}: {exc}\n{data!r}") from exc
        rejected += r.counts["rows_rejected"]
        outcomes["ok"] += 1
    # the mutations really exercised both paths
    assert outcomes["ok"] > N_MUTANTS // 2 and outcomes["clean_error"] > 0, outcomes
    assert rejected > N_MUTANTS // 4


def test_unmutated_base_finds_every_pair(tmp_path):
    p = tmp_path / "c.csv"
    p.write_bytes(_base_catalog())
    r = run_discover(p, tmp_path / "o", progress=False)
    assert r.counts["rows_rejected"] == 0 and r.counts["kept"] == 12
    c = pd.read_parquet(r.candidates_path)
    assert sorted(c["mix_track_id"]) == sorted(f"m{i}" for i in range(12))


def test_mutants_read_the_same_in_small_blocks(tmp_path):
    """Issue 15: cutting a catalog into byte-range blocks changes nothing, not even for broken files:
    same rows, same rejects with the same line numbers, or the same clean error."""
    from pairminer.discover.catalog import plan_catalog, read_catalog

    base = _base_catalog()
    rng = random.Random(77)
    multi = 0
    for k in range(150):
        data = _mutate(base, rng)
        p = tmp_path / f"b{k % 4}.csv"
        p.write_bytes(data)
        results = []
        for block_bytes in (1 << 30, 61, 200):
            try:
                cat = read_catalog(p, block_bytes=block_bytes)
                results.append((cat.table.to_pydict(), cat.rejects.to_pydict(), cat.rows_read))
            except PairminerError as exc:
                results.append(str(exc))
        assert results[0] == results[1] == results[2], (k, data)
        try:
            multi += len(plan_catalog(p, block_bytes=61).blocks) > 2
        except PairminerError:
            pass
    assert multi > 100

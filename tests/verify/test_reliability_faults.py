"""Issue 8, faults: SIGKILL mid-run and resume, a dask.distributed worker lost mid-verify, a full disk
and an unwritable output folder. The outputs after recovery must equal an uninterrupted run's, no torn
file may be left, and finished work must not be redone.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from pairminer import shards
from pairminer.cli import main
from pairminer.errors import OutputError
from pairminer.storage import read_json, read_table, write_table
from pairminer.synth import make_song, shift_and_gain, write_audio
from pairminer.testing import candidate_row

REPO = Path(__file__).resolve().parents[2]
SR = 22050
N_SONGS = 8
DUR_S = 10.0


def _candidate(i: int, folder: Path) -> dict:
    return candidate_row(i, str(folder / f"mix{i}.wav"), str(folder / f"inst{i}.wav"), duration_s=DUR_S,
                         artist=f"Artist {i}")


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> Path:
    """N_SONGS generated (mix, instrumental) pairs, their candidates.parquet and a verified.parquet."""
    d = tmp_path_factory.mktemp("songs")
    for i in range(N_SONGS):
        s = make_song(200 + i, DUR_S, sr_hz=SR)
        write_audio(d / f"mix{i}.wav", s.mix, SR)
        write_audio(d / f"inst{i}.wav", shift_and_gain(s.accompaniment, SR, 0.1 * (i % 3), -1.0), SR)
    cands = pd.DataFrame([_candidate(i, d) for i in range(N_SONGS)])
    write_table(d / "candidates.parquet", cands, "candidates")
    verified = cands.assign(status="verified", ber=0.2, offset_s=[0.1 * (i % 3) for i in range(N_SONGS)],
                            overlap_s=DUR_S, reason=None)
    verified.to_parquet(d / "verified.parquet")
    (d / "verify.yaml").write_text("verify:\n  batch_pairs: 1\n", encoding="utf-8")
    return d


def _cli(*args: str) -> list[str]:
    """`pairminer ARGS` in a fresh interpreter (the installed entry point may not be on PATH)."""
    return [sys.executable, "-c", "from pairminer.cli import main; main(prog_name='pairminer')", *args]


def _kill_when(cmd: list[str], ready, timeout_s: float = 120.0) -> bool:
    """Start `cmd`, SIGKILL it as soon as `ready()` is true. Returns False if it finished first."""
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.monotonic()
    try:
        while proc.poll() is None and time.monotonic() - t0 < timeout_s:
            if ready():
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.005)
        assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _assert_no_torn_files(folder: Path) -> None:
    tmp = [p for p in folder.rglob("*") if p.name.endswith(".tmp")]
    assert tmp == [], tmp
    for p in folder.rglob("*.parquet"):
        pq.read_table(p)  # every Parquet file under its final name is whole


def _run_ok(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- kill and resume

@pytest.mark.slow
def test_verify_killed_then_resumed_equals_uninterrupted(songs, tmp_path):
    cands = str(songs / "candidates.parquet")
    ref, out = tmp_path / "ref", tmp_path / "out"
    cfg = ["--config", str(songs / "verify.yaml"), "-q"]
    _run_ok(_cli("verify", cands, "-o", str(ref), *cfg))
    cache = out / "fingerprint-cache"

    def some_cached() -> bool:
        return len(list(cache.glob("part-*.parquet"))) >= 2

    killed = _kill_when(_cli("verify", cands, "-o", str(out), *cfg), some_cached)
    assert killed, "verify finished before it could be killed"
    assert not (out / "verify-report.json").exists()  # the completion marker is written last
    parts_before = len(list(cache.glob("part-*.parquet")))
    for p in cache.glob("part-*.parquet"):
        read_table(p, "fingerprints")  # what the killed run committed is whole
    _run_ok(_cli("verify", cands, "-o", str(out), *cfg))

    pd.testing.assert_frame_equal(pd.read_parquet(out / "verified.parquet"), pd.read_parquet(ref / "verified.parquet"))
    c = read_json(out / "verify-report.json")["counts"]
    assert c["files"] == 2 * N_SONGS and c["files_failed"] == 0
    assert c["files_cached"] >= 2 * parts_before >= 4  # fingerprints of the killed run are reused...
    assert c["files_decoded"] + c["files_cached"] == c["files"]  # ...and only the rest is decoded
    assert c["verified"] == read_json(ref / "verify-report.json")["counts"]["verified"]
    _assert_no_torn_files(out)


@pytest.mark.slow
def test_targets_killed_then_resumed_equals_uninterrupted(songs, tmp_path):
    verified = str(songs / "verified.parquet")
    ref, out = tmp_path / "ref", tmp_path / "out"
    opts = ["--shard-mb", "0.05", "-q", "--scheduler", "synchronous"]  # ~one pair per shard
    _run_ok(_cli("targets", verified, "-o", str(ref), *opts))

    def committed() -> bool:
        try:
            return len(pq.read_table(out / "manifest.parquet")) >= 2
        except (OSError, ValueError):
            return False

    assert _kill_when(_cli("targets", verified, "-o", str(out), *opts), committed), "finished before the kill"
    assert not (out / "targets-report.json").exists()
    man = shards.read_manifest(out)
    assert 2 <= len(man) < N_SONGS
    for _, row in man.iterrows():  # what the manifest names is whole and readable
        shards.read_pair_frames(out, row)
    done = set(man["pair_id"])
    _run_ok(_cli("targets", verified, "-o", str(out), *opts))

    rep = read_json(out / "targets-report.json")
    assert rep["counts"]["skipped_existing"] == len(done)  # the manifest was reused, those pairs not remade
    assert rep["counts"]["written"] == N_SONGS - len(done) and rep["counts"]["failed"] == 0
    a = shards.read_manifest(out).sort_values("pair_id").reset_index(drop=True)
    b = shards.read_manifest(ref).sort_values("pair_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(a.drop(columns=["shard", "start_frame"]), b.drop(columns=["shard", "start_frame"]))
    for (_, ra), (_, rb) in zip(a.iterrows(), b.iterrows()):
        np.testing.assert_array_equal(shards.read_pair_frames(out, ra), shards.read_pair_frames(ref, rb))
    on_disk = sorted(f"shards/{p.name}" for p in (out / "shards").iterdir())
    assert on_disk == sorted(set(a["shard"]))  # no orphan shard left
    _assert_no_torn_files(out)


# --------------------------------------------------------------------------- worker loss

@pytest.mark.slow
def test_worker_killed_mid_verify_run_completes(songs, tmp_path):
    distributed = pytest.importorskip("distributed")
    from pairminer.verify.stage import VerifyConfig, run_verify

    ref = run_verify(songs / "candidates.parquet", tmp_path / "ref", VerifyConfig(no_cache=True),
                     scheduler="synchronous", progress=False)
    killed: dict = {}

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=50) as cluster, distributed.Client(cluster) as watcher:
        pids = watcher.run(os.getpid)

        def kill_one_when_results_exist() -> None:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 120:
                held = {}
                for key, addrs in watcher.who_has().items():
                    if "verify-files" in str(key):
                        for a in addrs:
                            held.setdefault(a, []).append(key)
                if held:
                    addr = max(held, key=lambda a: len(held[a]))
                    killed.update(addr=addr, keys=held[addr])
                    os.kill(pids[addr], signal.SIGKILL)
                    return
                time.sleep(0.01)

        t = threading.Thread(target=kill_one_when_results_exist, daemon=True)
        t.start()
        r = run_verify(songs / "candidates.parquet", tmp_path / "out", VerifyConfig(no_cache=True),
                       scheduler=cluster.scheduler_address, progress=False)
        t.join(timeout=5)
    assert killed.get("keys"), "no worker was killed"  # it died holding finished fingerprints...
    # ...which were recomputed elsewhere: every pair is compared and the result equals the local run's
    pd.testing.assert_frame_equal(pd.read_parquet(r.verified_path), pd.read_parquet(ref.verified_path))
    assert r.n_error == 0 and r.n_decoded == 2 * N_SONGS


# --------------------------------------------------------------------------- disk full, unwritable folder

def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _half_then_enospc(real):
    """A writer that leaves a partial file, then fails like a full disk."""

    def write(obj, where, *args, **kwargs):
        with open(where, "wb") if isinstance(where, (str, os.PathLike)) else _nullctx(where) as f:
            f.write(b"PAR1 partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    return write


class _nullctx:
    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self.f

    def __exit__(self, *exc):
        return False


HEADER = "track_id,artist,title,duration\n"


def test_disk_full_during_discover_leaves_no_complete_looking_outputs(tmp_path, monkeypatch):
    import pairminer.storage as pio

    p = tmp_path / "c.csv"
    p.write_text(HEADER + "a,X,Song,200\nb,X,Song (Instrumental),200.2\n", encoding="utf-8")
    out = tmp_path / "o"
    monkeypatch.setattr(pio.pq, "write_table", _half_then_enospc(pq.write_table))
    res = CliRunner().invoke(main, ["discover", str(p), "-o", str(out), "--until", "discover", "-q"])
    assert res.exit_code == 1 and "Traceback" not in res.output + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "No space left on device" in lines[0] and "free disk space" in lines[0]
    # no partial file, no temp file, no report; only the run record, which says discover failed
    assert sorted(x.name for x in out.iterdir()) == ["run.json"]
    entry = json.loads((out / "run.json").read_text())["stages"][0]
    assert entry["stage"] == "discover" and entry["status"] == "failed" and "No space left" in entry["error"]
    monkeypatch.undo()
    res = CliRunner().invoke(main, ["discover", str(p), "-o", str(out), "--until", "discover", "-q"])
    assert res.exit_code == 0 and len(pd.read_parquet(out / "candidates.parquet")) == 1


def test_disk_full_on_the_report_leaves_no_report(tmp_path, monkeypatch):
    import pairminer.storage as pio
    from pairminer.discover.stage import run_discover

    p = tmp_path / "c.csv"
    p.write_text(HEADER + "a,X,Song,200\n", encoding="utf-8")
    run_discover(p, tmp_path / "o", progress=False)  # a complete earlier run
    real_write_bytes = pio.write_bytes

    def failing(path, data):
        if str(path).endswith("-report.json"):
            with pio.atomic_path(path) as tmp:
                Path(tmp).write_bytes(data[:10])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write_bytes(path, data)

    monkeypatch.setattr(pio, "write_bytes", failing)
    with pytest.raises(OutputError, match="No space left"):
        run_discover(p, tmp_path / "o", progress=False)
    # the earlier run's report must not vouch for the new, unfinished run's tables
    assert sorted(x.name for x in (tmp_path / "o").iterdir() if x.name.endswith((".json", ".tmp"))) == []


def test_disk_full_while_sealing_a_shard(songs, tmp_path, monkeypatch):
    from pairminer.targets.stage import TargetsConfig, run_targets

    cfg = TargetsConfig(shard_mb=0.05)
    ref = run_targets(songs / "verified.parquet", tmp_path / "ref", cfg, scheduler="synchronous", progress=False)
    real_save = np.save
    calls = {"n": 0}

    def save(f, arr, **kw):
        calls["n"] += 1
        if calls["n"] == 3:  # two shards go through, the third hits a full disk half-way
            f.write(b"\x93NUMPY partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(f, arr, **kw)

    monkeypatch.setattr(shards.np, "save", save)
    out = tmp_path / "out"
    with pytest.raises(OutputError, match="No space left"):
        run_targets(songs / "verified.parquet", out, cfg, scheduler="synchronous", progress=False)
    monkeypatch.undo()
    assert not (out / "targets-report.json").exists()
    man = shards.read_manifest(out)
    assert len(man) == 2 and sorted(p.name for p in (out / "shards").iterdir()) == sorted(
        Path(s).name for s in man["shard"])  # only sealed, committed shards; no partial or temp file
    res = run_targets(songs / "verified.parquet", out, cfg, scheduler="synchronous", progress=False)
    assert res.counts["skipped_existing"] == 2 and res.counts["written"] == N_SONGS - 2
    a = shards.read_manifest(out).sort_values("pair_id").reset_index(drop=True)
    b = shards.read_manifest(tmp_path / "ref").sort_values("pair_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(a.drop(columns=["shard", "start_frame"]), b.drop(columns=["shard", "start_frame"]))
    assert ref.frames == res.frames


def test_disk_full_in_verify_cache_and_output(songs, tmp_path, monkeypatch):
    import pairminer.storage as pio
    from pairminer.verify.stage import VerifyConfig, run_verify

    monkeypatch.setattr(pio.pq, "write_table", _half_then_enospc(pq.write_table))
    out = tmp_path / "o"
    res = CliRunner().invoke(main, ["verify", str(songs / "candidates.parquet"), "-o", str(out), "-q"])
    assert res.exit_code == 1 and "Traceback" not in res.output + res.stderr
    assert [ln for ln in res.stderr.splitlines() if ln.strip()][0].startswith("error: cannot write")
    assert not (out / "verified.parquet").exists() and not (out / "verify-report.json").exists()
    assert [p for p in out.rglob("*") if p.is_file()] == []
    monkeypatch.undo()
    r = run_verify(songs / "candidates.parquet", out, VerifyConfig(), progress=False)
    assert r.n_verified + r.n_too_similar + r.n_too_different == N_SONGS


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_output_folder(songs, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        for args in (["verify", str(songs / "candidates.parquet"), "-o", str(ro)],
                     ["targets", str(songs / "verified.parquet"), "-o", str(ro / "t")]):
            res = CliRunner().invoke(main, [*args, "-q"])
            assert res.exit_code == 1 and "Traceback" not in res.output + res.stderr
            assert "writable" in res.stderr or "Permission denied" in res.stderr
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("stage", ["discover", "verify", "targets"])
def test_output_path_blocked_by_a_file(songs, tmp_path, stage):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    src = {"discover": str(tmp_path / "c.csv"), "verify": str(songs / "candidates.parquet"),
           "targets": str(songs / "verified.parquet")}[stage]
    (tmp_path / "c.csv").write_text(HEADER + "a,X,S,1\n", encoding="utf-8")
    extra = ["--until", "discover"] if stage == "discover" else []
    res = CliRunner().invoke(main, [stage, src, "-o", str(blocker / "out"), "-q", *extra])
    assert res.exit_code == 1 and "Traceback" not in res.output + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot create output folder")


def test_rerun_removes_a_killed_runs_temp_files_but_not_a_live_writers(songs, tmp_path):
    from pairminer.storage import _HOST, remove_stale_temps
    from pairminer.verify.stage import VerifyConfig, run_verify

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "o"
    cache = out / "fingerprint-cache"
    cache.mkdir(parents=True)
    torn = [cache / f".part-x.parquet.{_HOST}~{dead.pid}.abc.parquet.tmp",
            out / f".verified.parquet.{_HOST}~{dead.pid}.def.parquet.tmp"]
    live = out / f".other.json.{_HOST}~{os.getpid()}.ghi.tmp"
    for p in [*torn, live]:
        p.write_bytes(b"PAR1 torn")
    run_verify(songs / "candidates.parquet", out, VerifyConfig(), progress=False)
    assert not any(p.exists() for p in torn) and live.exists()
    old = out / ".x.json.otherhost~1.jkl.tmp"
    old.write_bytes(b"")
    os.utime(old, (1, 1))  # another host's leftover: removed once it is a day old
    assert remove_stale_temps(out) == [old.name] and live.exists()

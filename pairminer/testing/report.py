"""Report fixtures: a tiny seeded OUT folder in the layouts of discover / verify / targets (`make_out`), one
with generated audio and real targets (`make_audio_out`), and headless Chromium to render the page.

Shared by the report tests (tests/report/) and the reliability tests that damage an OUT folder.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pairminer import storage


NASTY = '<script>document.title="pwned"</script> & "quotes" <b>'

# ---------------------------------------------------------------------------------------------------
# A tiny, seeded OUT folder in the layouts of discover / verify / targets
# ---------------------------------------------------------------------------------------------------

GENRES = ["Pop", " pop ", "Rap", "Hip-Hop", None, "Dance & House; Pop", "ROCK", "Rock", "Pop", ""]
STATUS = ["verified", "verified", "too_similar", "verified", "error", "verified", "too_different", "verified",
          "too_similar", "verified"]


def report_candidates(n: int = 10, seed: int = 0) -> pd.DataFrame:
    """n seeded candidate rows (the first artist is NASTY, genres cycle through GENRES)."""
    rng = np.random.default_rng(seed)
    mix_s = rng.uniform(150, 300, n).round(2)
    delta = rng.uniform(-0.9, 0.9, n).round(3)
    ids = [(f"m{i:03d}", f"v{i:03d}") for i in range(n)]
    return pd.DataFrame({
        "pair_id": [f"{m}__{v}" for m, v in ids],
        "mix_track_id": [m for m, _ in ids],
        "version_track_id": [v for _, v in ids],
        "version_kind": ["instrumental"] * (n - 2) + ["acapella"] * 2,
        "artist": [NASTY if i == 0 else f"Artist {i}" for i in range(n)],
        "artist_key": [f"artist {i}" for i in range(n)],
        "mix_title": [f"Song {i}" for i in range(n)],
        "version_title": [f"Song {i} (Instrumental)" for i in range(n)],
        "mix_match_title": [f"song {i}" for i in range(n)],
        "version_match_title": [f"song {i}" for i in range(n)],
        "genre": (GENRES * (n // len(GENRES) + 1))[:n],
        "mix_duration_s": mix_s,
        "version_duration_s": mix_s + delta,
        "duration_delta_s": delta,
        "title_score": rng.uniform(80, 100, n).round(1),
        "n_near_best": np.where(np.arange(n) == 3, 2, 1).astype("int32"),
        "mix_audio_path": [f"audio/m{i}.flac" for i in range(n)],
        "version_audio_path": [f"audio/v{i}.flac" for i in range(n)],
        "mix_row": np.arange(n) * 2 + 1,
        "version_row": np.arange(n) * 2 + 2,
    })


CATALOG_ROWS, REJECTED, N_VERSIONS = 30, 4, 12


def make_out(root: Path, stages=("discover", "verify", "targets")) -> Path:
    """Write the outputs of `stages` into root; returns root."""
    root.mkdir(parents=True, exist_ok=True)
    cands = report_candidates()
    if "discover" in stages:
        storage.write_table(root / "candidates.parquet", cands, "candidates")
        rejects = pd.DataFrame({
            "row_number": [3, 7, 8, 21], "reason_code": ["missing_title", "bad_duration", "bad_duration", "unparsable"],
            "reason": ["title is empty"] * 4, "track_id": ["t3", "t7", "t8", None], "artist": ["a"] * 4,
            "title": [None, "x", "y", None], "duration": ["1", "abc", "-1", None], "raw": [None, None, None, "x,,"],
        })
        storage.write_table(root / "rejects.parquet", rejects, "rejects")
        storage.write_json(root / "discover-report.json", {
            "stage": "discover", "config": {"max_delta_s": 1.0, "min_title_score": 80}, "versions": {"pairminer": "0"},
            "input": {"path": "catalog.csv", "format": "csv"},
            "counts": {"rows_read": CATALOG_ROWS, "rows_rejected": REJECTED, "rows_used": CATALOG_ROWS - REJECTED,
                       "rejected_by_reason": {"missing_title": 1, "bad_duration": 2, "unparsable": 1},
                       "originals": 14, "versions": N_VERSIONS, "versions_by_kind": {"instrumental": 10, "acapella": 2},
                       "blocked_pairs": 40, "within_window": 20, "above_score": 12, "kept": len(cands), "ambiguous": 1},
            "hours": {"catalog": 1.9, "kept_mix": 0.5, "kept_version": 0.5}, "timings_s": {"total": 0.1},
        })
    if "verify" in stages:
        ver = cands.copy()
        ver["status"] = STATUS
        ver["ber"] = [0.1, 0.12, 0.01, 0.2, None, 0.15, 0.45, 0.11, 0.02, 0.13]
        ver["offset_s"] = 0.0
        ver["overlap_s"] = ver["mix_duration_s"]
        ver["reason"] = [None] * 4 + ["AudioError: cannot decode"] + [None] * 5
        pq.write_table(pa.Table.from_pandas(ver, preserve_index=False), root / "verified.parquet")
        storage.write_json(root / "verify-report.json", {
            "stage": "verify", "config": {"max_ber": 0.35, "min_ber": 0.05}, "versions": {"pairminer": "0"},
            "counts": {"candidates": 10, "verified": 6, "too_similar": 2, "too_different": 1, "error": 1},
            "timings_s": {"total": 1.0},
        })
    if "targets" in stages:
        done = [pid for pid, s in zip(cands["pair_id"], STATUS) if s == "verified"][:4]
        rows = done + [done[0]]  # the first pair spans two shards
        man = pd.DataFrame({
            "pair_id": rows, "shard": [0, 0, 0, 0, 1], "start_frame": [0, 100, 200, 300, 0],
            "n_frames": [100] * 5, "sr_hz": 8192, "n_fft": 1024, "hop": 768,
            "genre": [cands.set_index("pair_id").loc[p, "genre"] for p in rows],
            "duration_s": [100.0] * 5, "vocal_energy_ratio": [0.2, 0.3, 0.25, 0.4, 0.2],
        })
        (root / "targets").mkdir(exist_ok=True)
        pq.write_table(pa.Table.from_pandas(man, preserve_index=False), root / "targets" / "manifest.parquet")
        storage.write_json(root / "targets" / "targets-report.json", {
            "stage": "targets", "config": {"sr_hz": 8192}, "versions": {"pairminer": "0"},
            "counts": {"verified_in": 6, "written": 4, "skipped_existing": 0, "failed": 2},
            "failures": [{"pair_id": "x", "reason": NASTY}],
        })
    return root


AUDIO_SR = 8192
OFFSET_S, GAIN_DB = 0.25, -3.0
VERIFY_CONFIG = {"min_ber": 0.1, "max_ber": 0.35}
# pair -> (status, BER); pairs 0-2 verified (pair 2 nearest a threshold), 3 too similar, 4 too different
PAIRS = [("verified", 0.22), ("verified", 0.20), ("verified", 0.33), ("too_similar", 0.02), ("too_different", 0.48)]


def make_audio_out(root: Path, duration_s: float = 8.0) -> tuple[Path, dict]:
    """OUT with candidates, verified.parquet (audio on disk) and real targets made by run_targets.

    Returns (root, {pair index: the song's true stems}).
    """
    from pairminer.synth import make_song, shift_and_gain, write_audio
    from pairminer.targets.stage import TargetsConfig, run_targets

    audio = root / "audio"
    stems, rows = {}, []
    for i, (status, ber) in enumerate(PAIRS):
        st = make_song(300 + i, duration_s=duration_s, sr_hz=AUDIO_SR)
        stems[i] = st
        if status == "too_similar":
            version = st.mix
        elif status == "too_different":
            version = make_song(900 + i, duration_s=duration_s, sr_hz=AUDIO_SR).accompaniment
        else:
            version = shift_and_gain(st.accompaniment, AUDIO_SR, OFFSET_S, GAIN_DB)
        write_audio(audio / f"mix{i}.flac", st.mix, AUDIO_SR)
        write_audio(audio / f"ver{i}.flac", version, AUDIO_SR)
        rows.append({
            "pair_id": f"m{i}__v{i}", "mix_track_id": f"m{i}", "version_track_id": f"v{i}",
            "version_kind": "instrumental", "artist": f"Artist {i}", "artist_key": f"artist {i}",
            "mix_title": f"Song {i}", "version_title": f"Song {i} (Instrumental)",
            "genre": ["Pop", "Rap $$ Trap", "Pop", "Rock", None][i],
            "mix_duration_s": duration_s, "version_duration_s": duration_s, "duration_delta_s": 0.0,
            "title_score": 100.0, "status": status, "ber": ber, "offset_s": OFFSET_S + 0.1, "overlap_s": duration_s,
            "version_gain_db": -GAIN_DB, "reason": None if status == "verified" else f"BER {ber}",
            "mix_audio_path": str(audio / f"mix{i}.flac"), "version_audio_path": str(audio / f"ver{i}.flac"),
        })
    ver = pd.DataFrame(rows)
    ver.to_parquet(root / "verified.parquet")
    storage.write_json(root / "verify-report.json", {"stage": "verify", "config": VERIFY_CONFIG,
                                                     "counts": ver["status"].value_counts().to_dict()})
    run_targets(root / "verified.parquet", root / "targets", TargetsConfig(sr=AUDIO_SR, shard_mb=1.0),
                scheduler="synchronous", progress=False)
    return root, stems


def chromium_path() -> str | None:
    """The Chromium executable, or None (`make test` installs Debian's chromium)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def run_chromium(args: list[str], tmp_path: Path, timeout_s: float = 90) -> subprocess.CompletedProcess:
    """Headless Chromium with a fresh profile under tmp_path; its stderr carries the page's console."""
    exe = chromium_path()
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'chrome-profile'}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)


def console_lines(stderr: str) -> list[str]:
    """The page console messages in Chromium's stderr."""
    # Chromium logs every page console message as "...:CONSOLE(line)] message"; the report has no
    # scripts, so any console message at all (an error, a blocked load) is a failure.
    return [ln for ln in stderr.splitlines() if ":CONSOLE" in ln]

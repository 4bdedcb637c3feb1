"""verify chained into targets in one audio pass (one decode per file) against the two stages run alone."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from pairminer import audio as audio_mod
from pairminer.audio import DecodeRequest, load_audio, load_audio_rates
from pairminer.audiopass.run import run_pass
from pairminer.errors import AudioError
from pairminer.storage import write_table
from pairminer.synth import make_song, shift_and_gain, write_audio
from pairminer.synth_cases import write_lossy
from pairminer.targets.stage import TargetsConfig, run_targets
from pairminer.testing import candidate_row
from pairminer.verify.stage import VerifyConfig, run_verify

SR = 22050
DUR_S = 16.0
SMALL_SHARD_MB = 0.3  # a few pairs per shard, so that several shards are sealed


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Six pairs: true instrumentals (WAV, FLAC, MP3, one shared mix), a copy of the mix, another song, a missing file."""
    d = tmp_path_factory.mktemp("chain")
    rows = []
    songs = [make_song(300 + i, DUR_S, sr_hz=SR, vocal_db=-4.0) for i in range(4)]
    for i, s in enumerate(songs[:3]):
        ext = ("wav", "flac", "mp3")[i]
        inst = shift_and_gain(s.accompaniment, SR, 0.2 * (i + 1), -1.5)
        if ext == "mp3":
            write_lossy(d / f"mix{i}.mp3", s.mix, SR, "mp3", 192)
            write_lossy(d / f"inst{i}.mp3", inst, SR, "mp3", 192)
        else:
            write_audio(d / f"mix{i}.{ext}", s.mix, SR, stereo=i == 1)
            write_audio(d / f"inst{i}.{ext}", inst, SR, stereo=i == 1)
        rows.append(candidate_row(i, str(d / f"mix{i}.{ext}"), str(d / f"inst{i}.{ext}"), duration_s=DUR_S,
                                  artist=f"Artist {i}"))
    write_audio(d / "copy0.wav", songs[0].mix * 0.9, SR)
    rows.append(candidate_row(3, str(d / "mix0.wav"), str(d / "copy0.wav"), duration_s=DUR_S, artist="Artist 0"))
    write_audio(d / "other.wav", songs[3].accompaniment, SR)
    rows.append(candidate_row(4, str(d / "mix1.flac"), str(d / "other.wav"), duration_s=DUR_S, artist="Artist 1"))
    rows.append(candidate_row(5, str(d / "mix2.mp3"), str(d / "gone.wav"), duration_s=DUR_S, artist="Artist 2"))
    cands = d / "candidates.parquet"
    write_table(cands, pd.DataFrame(rows), "candidates")
    return d, cands


def run_verify_targets(cands, out, targets_dir, vcfg, tcfg, **kw):
    return run_pass(str(cands), {"verify": str(out), "targets": str(targets_dir)}, {"verify": vcfg, "targets": tcfg},
                    **kw)


def _digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _outputs(out) -> dict[str, str]:
    files = {"verified.parquet": out / "verified.parquet", "manifest.parquet": out / "targets" / "manifest.parquet"}
    files.update({f"shards/{p.name}": p for p in sorted((out / "targets" / "shards").glob("*.npy"))})
    return {k: _digest(p) for k, p in files.items()}


def _separate(cands, out, vcfg, tcfg):
    v = run_verify(cands, out, vcfg, scheduler="synchronous", progress=False)
    t = run_targets(v.verified_path, out / "targets", tcfg, scheduler="synchronous", progress=False)
    return v, t


@pytest.mark.parametrize("scheduler", ["synchronous", "threads"])
def test_fused_outputs_are_byte_identical_to_the_separate_stages(corpus, tmp_path, scheduler):
    _, cands = corpus
    vcfg, tcfg = VerifyConfig(no_cache=True), TargetsConfig(shard_mb=SMALL_SHARD_MB)
    v, t = _separate(cands, tmp_path / "sep", vcfg, tcfg)
    got = run_verify_targets(str(cands), str(tmp_path / "fused"), str(tmp_path / "fused" / "targets"), vcfg, tcfg,
                             scheduler=scheduler, progress=False)
    sep, fused = _outputs(tmp_path / "sep"), _outputs(tmp_path / "fused")
    assert len([k for k in sep if k.startswith("shards/")]) >= 2
    assert fused == sep
    # The corpus holds every outcome, so the identity covers verified, rejected and failed pairs.
    statuses = pd.read_parquet(tmp_path / "fused" / "verified.parquet")["status"].tolist()
    assert statuses == ["verified", "verified", "verified", "too_similar", "too_different", "error"]
    fv, ft = got["verify"], got["targets"]
    assert (fv.n_verified, fv.n_error, fv.n_files, fv.n_decoded) == (v.n_verified, v.n_error, v.n_files, v.n_decoded)
    assert ft.counts == t.counts == {"verified_in": 3, "written": 3, "skipped_existing": 0, "failed": 0}
    rep = json.loads((tmp_path / "fused" / "targets" / "targets-report.json").read_text())
    assert rep["counts"] == t.counts and rep["inputs"]["not_verified"] == 3


def test_fused_path_decodes_each_file_once(corpus, tmp_path, monkeypatch):
    _, cands = corpus
    calls: list[str] = []
    real = audio_mod._decode_soundfile_rates

    def counting(path, wants):
        calls.append(path)
        return real(path, wants)

    monkeypatch.setattr(audio_mod, "_decode_soundfile_rates", counting)
    run_verify_targets(str(cands), str(tmp_path / "f"), str(tmp_path / "f" / "targets"), VerifyConfig(no_cache=True),
                       TargetsConfig(shard_mb=SMALL_SHARD_MB), scheduler="synchronous", progress=False)
    fused = list(calls)
    calls.clear()
    _separate(cands, tmp_path / "s", VerifyConfig(no_cache=True), TargetsConfig(shard_mb=SMALL_SHARD_MB))
    # Pairs 0-2 are verified: separately each of their files is read twice (verify, then targets).
    assert max(fused.count(p) for p in set(fused)) <= 2  # mix0 and mix1 belong to two pairs each
    for i, ext in enumerate(("wav", "flac", "mp3")):
        inst = next(p for p in calls if p.endswith(f"inst{i}.{ext}"))
        assert calls.count(inst) == 2 and fused.count(inst) == 1


def test_fused_rerun_uses_the_cache_and_skips_finished_pairs(corpus, tmp_path):
    _, cands = corpus
    out = tmp_path / "f"
    vcfg, tcfg = VerifyConfig(), TargetsConfig(shard_mb=SMALL_SHARD_MB)
    first = run_verify_targets(str(cands), str(out), str(out / "targets"), vcfg, tcfg, scheduler="synchronous",
                               progress=False)
    before = _outputs(out)
    again = run_verify_targets(str(cands), str(out), str(out / "targets"), vcfg, tcfg, scheduler="synchronous",
                               progress=False)
    assert first["verify"].n_decoded > 0 and again["verify"].n_decoded == 0
    assert again["targets"].counts == {"verified_in": 3, "written": 0, "skipped_existing": 3, "failed": 0}
    assert _outputs(out) == before
    # A pair that is no longer verified leaves the manifest (a min_overlap_s longer than any song rejects all).
    strict = run_verify_targets(str(cands), str(out), str(out / "targets"), VerifyConfig(min_overlap_s=3600.0), tcfg,
                                scheduler="synchronous", progress=False)
    assert strict["targets"].counts["verified_in"] == 0
    assert len(pd.read_parquet(out / "targets" / "manifest.parquet")) == 0
    assert not list((out / "targets" / "shards").glob("*.npy"))


def test_load_audio_rates_matches_load_audio_per_rate(corpus):
    d, _ = corpus
    reqs = [DecodeRequest(11025, min_seconds=5.0), DecodeRequest(8192, max_seconds=3.0), DecodeRequest(SR),
            DecodeRequest(8192, min_seconds=60.0)]
    for name in ("mix1.flac", "inst2.mp3", "copy0.wav"):
        path = str(d / name)
        got = load_audio_rates(path, reqs)
        for r, g in zip(reqs[:3], got[:3]):
            y, info = load_audio(path, r.sr_hz, max_seconds=r.max_seconds, min_seconds=r.min_seconds)
            np.testing.assert_array_equal(g[0], y)
            assert g[1] == info
        assert isinstance(got[3], AudioError) and "too short" in str(got[3])
    missing = load_audio_rates(str(d / "gone.wav"), reqs[:2])
    assert all(isinstance(e, AudioError) and "not found" in str(e) for e in missing)


def test_verify_and_targets_plan_per_batch_of_rows_with_the_same_results(corpus, tmp_path, monkeypatch):
    from pairminer import parallel
    from pairminer.audiopass import source as tstage

    _, cands = corpus
    tcfg = TargetsConfig(shard_mb=SMALL_SHARD_MB)
    whole = _separate(cands, tmp_path / "whole", VerifyConfig(no_cache=True), tcfg)
    graphs: list[int] = []
    real = parallel.Runner.compute

    def counting(self, *collections, **kw):
        graphs.append(sum(len(c) if isinstance(c, (list, tuple)) else 1 for c in collections))
        return real(self, *collections, **kw)

    monkeypatch.setattr(parallel.Runner, "compute", counting)
    monkeypatch.setattr(tstage, "READ_BATCH_ROWS", 2)
    parts = _separate(cands, tmp_path / "parts", VerifyConfig(no_cache=True, batch_pairs=2), tcfg)
    # 6 candidates in 3 batches of 2 rows: no graph holds more than one batch's files (4) or pairs (2)
    assert len(graphs) >= 6 and max(graphs) <= 4
    a = pd.read_parquet(tmp_path / "whole" / "verified.parquet")
    b = pd.read_parquet(tmp_path / "parts" / "verified.parquet")
    pd.testing.assert_frame_equal(a, b)
    sep, part = _outputs(tmp_path / "whole"), _outputs(tmp_path / "parts")
    assert {k: v for k, v in part.items() if k != "verified.parquet"} == \
        {k: v for k, v in sep.items() if k != "verified.parquet"}
    assert parts[1].counts == whole[1].counts
    rep = json.loads((tmp_path / "parts" / "verify-report.json").read_text())
    assert rep["counts"]["verified"] == 3 and rep["counts"]["errors_by_reason"] == {"file not found": 1}


def _tree(root) -> dict[str, str]:
    from pathlib import Path

    root = Path(root)
    return {str(p.relative_to(root)): _digest(p) for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith("-report.json")}


@pytest.mark.parametrize("chain", [("verify", "targets"), ("verify", "stems"), ("verify", "targets", "stems")])
def test_every_chain_of_the_audio_pass_writes_what_the_stages_write_alone(corpus, tmp_path, chain):
    """One driver, three configurations: the fused outputs are byte-identical to the stages run one by one."""
    from pairminer.stems.config import StemsConfig
    from pairminer.stems.stage import run_stems

    _, cands = corpus
    configs = {"verify": VerifyConfig(no_cache=True), "targets": TargetsConfig(shard_mb=SMALL_SHARD_MB),
               "stems": StemsConfig()}
    sep = tmp_path / "sep"
    v = run_verify(cands, sep, configs["verify"], scheduler="synchronous", progress=False)
    if "targets" in chain:
        run_targets(v.verified_path, sep / "targets", configs["targets"], scheduler="synchronous", progress=False)
    if "stems" in chain:
        run_stems(v.verified_path, sep / "stems", configs["stems"], scheduler="synchronous", progress=False)
    fused = tmp_path / "fused"
    outs = {"verify": str(fused), "targets": str(fused / "targets"), "stems": str(fused / "stems")}
    got = run_pass(str(cands), {s: outs[s] for s in chain}, {s: configs[s] for s in chain}, scheduler="threads",
                   progress=False)
    assert set(got) == set(chain)
    assert _digest(fused / "verified.parquet") == _digest(sep / "verified.parquet")
    for stage in chain[1:]:
        a, b = _tree(sep / stage), _tree(fused / stage)
        assert a == b and len(a) >= 3, stage
        assert got[stage].counts["written"] == 3

"""The targets stage on generated songs whose true voice stem is known."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pairminer import shards
from pairminer.audio import load_audio
from pairminer.errors import ConfigError, InputError
from pairminer.storage import read_table
from pairminer.schemas import json_schema, table_schema
from pairminer.synth import make_song, shift_and_gain, write_audio
from pairminer.targets.stage import TargetsConfig, assign_split, run_targets

SR_SRC = 44100
SR = 8192
TRUE_OFFSET_S = 0.3
TRUE_GAIN_DB = -2.0  # the instrumental is 2 dB quieter than the accompaniment in the mix
FP_ERRORS_S = (0.13, -0.15, 0.11)  # the fingerprint offset is off by this much
SMALL_SHARD_MB = 0.6  # ~400 frames: a few 12 s pairs per shard


def _make_dataset(folder, n=3, duration_s=12.0, kinds=None, artists=None):
    """Write n songs (mix, shifted/attenuated version, true voice) and a verified.parquet for them."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        st = make_song(100 + i, duration_s=duration_s)
        kind = (kinds or ["instrumental"] * n)[i]
        src = st.vocals if kind == "acapella" else st.accompaniment
        write_audio(folder / f"mix{i}.wav", st.mix, SR_SRC)
        write_audio(folder / f"ver{i}.wav", shift_and_gain(src, SR_SRC, TRUE_OFFSET_S, TRUE_GAIN_DB), SR_SRC)
        write_audio(folder / f"voc{i}.wav", st.vocals, SR_SRC)
        artist = (artists or [f"Artist {i}" for i in range(n)])[i]
        rows.append({
            "pair_id": f"m{i}__v{i}", "mix_track_id": f"m{i}", "version_track_id": f"v{i}", "version_kind": kind,
            "artist": artist, "artist_key": artist.lower(), "genre": "pop" if i % 2 else None,
            "mix_duration_s": duration_s, "version_duration_s": duration_s, "status": "verified",
            "ber": 0.1, "offset_s": TRUE_OFFSET_S + FP_ERRORS_S[i % len(FP_ERRORS_S)], "overlap_s": duration_s,
            "reason": None, "mix_audio_path": str(folder / f"mix{i}.wav"),
            "version_audio_path": str(folder / f"ver{i}.wav"),
        })
    path = folder / "verified.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return path, rows


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("targets")
    verified, rows = _make_dataset(folder / "in")
    cfg = TargetsConfig(shard_mb=SMALL_SHARD_MB)
    res = run_targets(verified, folder / "out", cfg, scheduler="threads", progress=False)
    return folder, verified, rows, res


@pytest.fixture(scope="module")
def built_magnitude(tmp_path_factory):
    """The same pairs with the seed's magnitude rule (`vocal_target="magnitude"`)."""
    folder = tmp_path_factory.mktemp("targets-mag")
    verified, rows = _make_dataset(folder / "in")
    res = run_targets(verified, folder / "out", TargetsConfig(shard_mb=SMALL_SHARD_MB, vocal_target="magnitude"),
                      scheduler="threads", progress=False)
    return folder, verified, rows, res


def _mag_sdr(ref, est):
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((ref - est).astype(np.float64) ** 2)))


def test_waveform_targets_beat_the_seed_rule_against_the_true_vocals(built, built_magnitude):
    """Where the pair cancels, the vocal channel is |STFT(mix - matched instrumental)|: closer to the truth."""
    for (folder, _, rows, res), want in ((built, "waveform"), (built_magnitude, "magnitude")):
        manifest = shards.read_manifest(res.out_dir).set_index("pair_id")
        assert set(manifest["target_method"]) == {want}
    gains = []
    for i, row in enumerate(built[2]):
        sdrs = []
        for folder, _, _, res in (built, built_magnitude):
            m = shards.read_manifest(res.out_dir).set_index("pair_id").loc[row["pair_id"]].to_dict()
            c0, c1 = shards.covered_frames(m)
            ours = shards.read_pair_frames(res.out_dir, m)[c0:c1, 2, :].astype(np.float32).T
            voc, _ = load_audio(str(folder / "in" / f"voc{i}.wav"), SR)
            sdrs.append(_mag_sdr(_mag(voc)[:, c0:c1], ours))
        gains.append(sdrs[0] - sdrs[1])
        assert sdrs[0] >= 20.0, (row["pair_id"], sdrs)  # the goal for shard targets (the seed: 12 dB)
    assert min(gains) > 3.0, gains


def _mag(y):
    import librosa

    return np.abs(librosa.stft(y, n_fft=1024, hop_length=768, window="hann", center=True))


def _assert_rest(rest, mix, other):
    """rest == max(mix - other, 0) up to float16 rounding, which scales with |mix|."""
    err = np.abs(rest - np.maximum(mix - other, 0))
    assert (err <= 2e-3 * mix + 1e-4).all(), float(err.max())


def _corr(a, b):
    return float(np.corrcoef(np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel())[0, 1])


def test_vocal_target_as_good_as_true_alignment_and_naive_is_worse(built_magnitude):
    folder, _, rows, res = built_magnitude
    manifest = shards.read_manifest(res.out_dir)
    for i, row in enumerate(rows):
        m = manifest.set_index("pair_id").loc[row["pair_id"]]
        frames = shards.read_pair_frames(res.out_dir, m.to_dict())
        ours = frames[:, 2, :].astype(np.float32).T  # (bins, frames)
        mix, _ = load_audio(row["mix_audio_path"], SR)
        ver, _ = load_audio(row["version_audio_path"], SR)
        voc, _ = load_audio(str(folder / "in" / f"voc{i}.wav"), SR)
        true_voc = _mag(voc)
        mix_mag = _mag(mix)
        # Reference: the true offset and gain, applied by plain slicing.
        d = int(round(TRUE_OFFSET_S * SR))
        true_aligned = np.concatenate([ver[d:], np.zeros(d, np.float32)])[: len(mix)]
        g_true = 10 ** (-TRUE_GAIN_DB / 20)
        ref = np.maximum(mix_mag - g_true * _mag(true_aligned), 0)
        naive = np.maximum(mix_mag - _mag(ver[: len(mix)]), 0)
        # Only the covered frames have targets (the version is shifted, so its last 0.3 s are missing).
        c0, c1 = shards.covered_frames(m.to_dict())
        assert 0 == c0 < c1 < m["n_frames"]
        assert c1 <= (len(mix) - d - 512) // 768 + 1
        assert not frames[c1:, shards.VOCALS].any() and not frames[c1:, shards.INSTRUMENTAL].any()
        ours, ref, naive, true_voc = (x[:, c0:c1] for x in (ours, ref, naive, true_voc))
        c_ours, c_ref, c_naive = _corr(ours, true_voc), _corr(ref, true_voc), _corr(naive, true_voc)
        assert c_ours >= c_ref - 0.01, (row["pair_id"], c_ours, c_ref)
        assert c_naive < c_ref - 0.1, (row["pair_id"], c_naive, c_ref)
        # The recorded alignment is the truth to within one sample, and the gain within 0.2 dB.
        assert abs(m["offset_s"] - TRUE_OFFSET_S) <= 1.0 / SR
        assert m["gain_db"] == pytest.approx(-TRUE_GAIN_DB, abs=0.2)
        assert m["fingerprint_offset_s"] == pytest.approx(row["offset_s"])
        # Channel 0 is |mix|; channel 2 = max(channel 0 - channel 1, 0), the gain-matched instrumental.
        np.testing.assert_allclose(frames[:, 0, :].astype(np.float32).T, mix_mag, rtol=2e-3, atol=1e-3)
        f32 = frames[c0:c1].astype(np.float32)
        _assert_rest(f32[:, 2], f32[:, 0], f32[:, 1])


def test_manifest_and_report_match_schemas_and_shards(built):
    _, verified, rows, res = built
    table = read_table(res.manifest_path, "manifest")
    table_schema("manifest").validate(table)
    manifest = table.to_pandas()
    assert sorted(manifest["pair_id"]) == sorted(r["pair_id"] for r in rows)
    assert (manifest[["sr_hz", "n_fft", "hop"]].to_numpy() == [SR, 1024, 768]).all()
    # n_frames follows the centred STFT of the decoded mix: 1 + samples // hop.
    assert (manifest["n_frames"] == 1 + (manifest["duration_s"] * SR).round().astype(int) // 768).all()
    # shards hold exactly the pairs the manifest places in them, back to back, never split
    for shard, grp in manifest.groupby("shard"):
        arr = np.load(os.path.join(res.out_dir, shard), mmap_mode="r")
        assert arr.dtype == np.float16 and arr.shape[1:] == (3, 513)
        grp = grp.sort_values("start_frame")
        assert grp["start_frame"].tolist() == [0, *np.cumsum(grp["n_frames"]).tolist()[:-1]]
        assert arr.shape[0] == grp["n_frames"].sum()
    assert len(res.shards) >= 2  # the small shard size forces several shards
    report = json.loads(open(res.report_path).read())
    json_schema("targets-report").validate(report)
    c = report["counts"]
    assert c == {"verified_in": 3, "written": 3, "skipped_existing": 0, "failed": 0}
    assert report["frames"] == manifest["n_frames"].sum()
    assert report["bytes"] == sum(os.path.getsize(os.path.join(res.out_dir, s)) for s in res.shards)
    assert report["hours"] == pytest.approx(manifest["duration_s"].sum() / 3600)
    assert report["realtime_factor"] > 0


def test_rerun_skips_pairs_in_manifest(built, tmp_path):
    _, verified, rows, res = built
    before = {p: os.path.getmtime(os.path.join(res.out_dir, p)) for p in res.shards}
    again = run_targets(verified, res.out_dir, TargetsConfig(shard_mb=SMALL_SHARD_MB), progress=False)
    assert again.counts == {"verified_in": 3, "written": 0, "skipped_existing": 3, "failed": 0}
    assert {p: os.path.getmtime(os.path.join(res.out_dir, p)) for p in again.shards} == before
    with pytest.raises(ConfigError, match="n_fft"):
        run_targets(verified, res.out_dir, TargetsConfig(n_fft=512, hop=256), progress=False)


def test_killed_run_resumes_without_torn_shards(tmp_path):
    verified, rows = _make_dataset(tmp_path / "in", n=3, duration_s=6.0)
    out = tmp_path / "out"
    # A first run that made only the first pair (its shard sealed, manifest committed).
    pd.read_parquet(verified).iloc[:1].to_parquet(tmp_path / "first.parquet")
    first = run_targets(tmp_path / "first.parquet", out, TargetsConfig(shard_mb=0.01), progress=False)
    assert first.counts["written"] == 1
    # ...then killed: an orphan shard sealed after the last manifest commit, and a torn temp shard.
    (out / "shards" / "shard-000001.npy").write_bytes(b"orphan")
    (out / "shards" / ".shard-000002.npy.x.tmp").write_bytes(b"torn")
    res = run_targets(verified, out, TargetsConfig(shard_mb=0.01), progress=False)
    assert res.counts == {"verified_in": 3, "written": 2, "skipped_existing": 1, "failed": 0}
    names = sorted(p.name for p in (out / "shards").iterdir())
    assert names == ["shard-000000.npy", "shard-000001.npy", "shard-000002.npy"]
    manifest = shards.read_manifest(out)
    assert sorted(manifest["shard"]) == [shards.shard_relpath(i) for i in range(3)]
    for _, m in manifest.iterrows():
        assert shards.read_pair_frames(out, m).shape == (m["n_frames"], 3, 513)


def test_failed_pair_recorded_and_run_goes_on(tmp_path):
    verified, rows = _make_dataset(tmp_path / "in", n=2, duration_s=6.0)
    df = pd.read_parquet(verified)
    extra = [dict(df.iloc[0], pair_id="missing", version_audio_path=str(tmp_path / "nope.wav")),
             dict(df.iloc[1], pair_id="notver", status="too_different")]
    (tmp_path / "in" / "silent.wav").write_bytes(b"")
    extra.append(dict(df.iloc[1], pair_id="empty", mix_audio_path=str(tmp_path / "in" / "silent.wav")))
    pd.concat([df, pd.DataFrame(extra)]).to_parquet(verified)
    res = run_targets(verified, tmp_path / "out", TargetsConfig(), progress=False)
    assert res.counts == {"verified_in": 4, "written": 2, "skipped_existing": 0, "failed": 2}
    reasons = {f["pair_id"]: f["reason"] for f in res.failures}
    assert set(reasons) == {"missing", "empty"}
    assert "nope.wav: file not found" in reasons["missing"] and "zero-byte" in reasons["empty"]
    report = json.loads(open(res.report_path).read())
    assert report["failures"] == res.failures and report["inputs"]["not_verified"] == 1
    assert sorted(shards.read_manifest(tmp_path / "out")["pair_id"]) == ["m0__v0", "m1__v1"]


@pytest.mark.parametrize("vocal_target", ["waveform", "magnitude"])
def test_acapella_channels(tmp_path, vocal_target):
    verified, rows = _make_dataset(tmp_path / "in", n=1, duration_s=8.0, kinds=["acapella"])
    res = run_targets(verified, tmp_path / "out", TargetsConfig(vocal_target=vocal_target), progress=False)
    m = shards.read_manifest(res.out_dir).iloc[0]
    frames = shards.read_pair_frames(res.out_dir, m).astype(np.float32)
    voc, _ = load_audio(str(tmp_path / "in" / "voc0.wav"), SR)
    true_voc = _mag(voc).T
    c0, c1 = shards.covered_frames(m)
    # channel 2 is the aligned, gain-matched acapella: it is the true voice magnitude (where it exists)
    assert _corr(frames[c0:c1, 2, :], true_voc[c0:c1]) > 0.99
    assert m["gain_db"] == pytest.approx(-TRUE_GAIN_DB, abs=0.3)
    assert m["target_method"] == vocal_target
    if vocal_target == "magnitude":  # the seed's rule: channel 1 = max(|mix| - g|acapella|, 0)
        _assert_rest(frames[c0:c1, 1], frames[c0:c1, 0], frames[c0:c1, 2])
    assert not frames[c1:, 1:].any()  # no target where the acapella is missing


def test_split_by_artist_is_deterministic_and_exclusive():
    keys = [f"artist {i}" for i in range(400)]
    got = [assign_split(k, (0.8, 0.1, 0.1), 0) for k in keys]
    assert got == [assign_split(k, (0.8, 0.1, 0.1), 0) for k in keys]
    share = {s: got.count(s) / len(keys) for s in ("train", "valid", "test")}
    assert share["train"] == pytest.approx(0.8, abs=0.07) and share["test"] == pytest.approx(0.1, abs=0.05)
    assert [assign_split(k, (0.8, 0.1, 0.1), 1) for k in keys] != got  # the seed reshuffles
    assert {assign_split(k, (0.0, 0.0, 1.0), 0) for k in keys} == {"test"}


def test_split_in_manifest_keeps_artists_together(tmp_path):
    artists = ["Band A", "Band A", "Band B"]
    verified, _ = _make_dataset(tmp_path / "in", n=3, duration_s=4.0, artists=artists)
    res = run_targets(verified, tmp_path / "out", TargetsConfig(splits=(0.5, 0.25, 0.25)), progress=False)
    manifest = shards.read_manifest(res.out_dir)
    assert manifest.groupby("artist_key")["split"].nunique().max() == 1
    for _, m in manifest.iterrows():
        assert m["split"] == assign_split(m["artist_key"], (0.5, 0.25, 0.25), 0)
    # A rerun with other fractions writes nothing new but reassigns the split of every pair.
    again = run_targets(verified, res.out_dir, TargetsConfig(splits=(0.0, 0.0, 1.0)), progress=False)
    assert again.counts["skipped_existing"] == 3
    assert set(shards.read_manifest(res.out_dir)["split"]) == {"test"}


def test_input_and_config_errors(tmp_path):
    pd.DataFrame({"pair_id": ["a"], "status": ["verified"]}).to_parquet(tmp_path / "v.parquet")
    with pytest.raises(InputError, match="mix_audio_path"):
        run_targets(tmp_path / "v.parquet", tmp_path / "out", progress=False)
    with pytest.raises(InputError, match="does not exist"):
        run_targets(tmp_path / "none.parquet", tmp_path / "out", progress=False)
    with pytest.raises(ConfigError, match="sum to 1"):
        TargetsConfig.from_dict({"splits": "0.5,0.1,0.1"})
    with pytest.raises(ConfigError, match="hop"):
        TargetsConfig.from_dict({"hop": 4096})
    with pytest.raises(ConfigError, match="shard_mb"):
        TargetsConfig.from_dict({"shard_mbs": 3})
    cfg = TargetsConfig.from_yaml(TargetsConfig(sr=16000, splits=(0.7, 0.2, 0.1)).to_yaml())
    assert cfg.sr == 16000 and cfg.splits == (0.7, 0.2, 0.1)


def test_cli(tmp_path):
    from pairminer.cli import main

    verified, _ = _make_dataset(tmp_path / "in", n=1, duration_s=4.0)
    runner = CliRunner()
    out = tmp_path / "out"
    r = runner.invoke(main, ["targets", str(verified), "-o", str(out), "--hop", "512", "--shard-mb", "1", "-q"])
    assert r.exit_code == 0, r.output
    assert "1 pair(s) written" in r.output
    assert shards.read_manifest(out)["hop"].tolist() == [512]
    r = runner.invoke(main, ["targets", str(tmp_path / "nope.parquet"), "-o", str(out), "-q"])
    assert r.exit_code == 2 and "error:" in r.output and "Traceback" not in r.output
    r = runner.invoke(main, ["targets", "--help"])
    assert r.exit_code == 0 and "--n-fft" in r.output


def test_too_long_mix_fails_with_reason_even_without_duration_column(tmp_path):
    verified, _ = _make_dataset(tmp_path / "in", n=1, duration_s=4.0)
    pd.read_parquet(verified).drop(columns=["mix_duration_s"]).to_parquet(verified)
    res = run_targets(verified, tmp_path / "out", TargetsConfig(max_duration_s=3.0), progress=False)
    assert res.counts["failed"] == 1 and "max_duration_s" in res.failures[0]["reason"]
    assert len(shards.read_manifest(tmp_path / "out")) == 0
    table_schema("manifest").validate(read_table(tmp_path / "out" / "manifest.parquet"))


def test_pairs_no_longer_verified_leave_the_manifest(tmp_path):
    verified, rows = _make_dataset(tmp_path / "in", n=3, duration_s=6.0)
    out = tmp_path / "out"
    first = run_targets(verified, out, TargetsConfig(shard_mb=0.01), progress=False)
    assert first.counts["written"] == 3
    v = pd.read_parquet(verified)
    gone = v.iloc[0]["pair_id"]
    v.loc[0, "status"] = "too_similar"  # upstream re-verification changed its mind
    v.to_parquet(tmp_path / "v2.parquet")
    res = run_targets(tmp_path / "v2.parquet", out, TargetsConfig(shard_mb=0.01), progress=False)
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert gone not in set(manifest["pair_id"]) and len(manifest) == 2
    assert res.counts["skipped_existing"] == 2
    assert json.loads((out / "targets-report.json").read_text())["inputs"]["dropped_stale"] == 1


def test_old_format_manifest_is_remade(tmp_path):
    verified, rows = _make_dataset(tmp_path / "in", n=1, duration_s=8.0)
    out = tmp_path / "out"
    first = run_targets(verified, out, TargetsConfig(), progress=False)
    assert first.counts["written"] == 1
    m = pd.read_parquet(out / "manifest.parquet")
    assert (m["format_version"] == shards.FORMAT_VERSION).all()
    # a manifest written before format versions existed (and its pairs) counts as stale
    m.drop(columns=["format_version", "cover_start_frame", "cover_stop_frame"]).to_parquet(out / "manifest.parquet")
    again = run_targets(verified, out, TargetsConfig(), progress=False)
    assert again.counts == {"verified_in": 1, "written": 1, "skipped_existing": 0, "failed": 0}
    m2 = shards.read_manifest(out)
    assert m2["format_version"].tolist() == [shards.FORMAT_VERSION]
    # and a fresh one is skipped
    third = run_targets(verified, out, TargetsConfig(), progress=False)
    assert third.counts["skipped_existing"] == 1
    from pairminer.workflow.freshness import config_hash

    assert TargetsConfig().freshness_extra() == {"shard_format_version": shards.FORMAT_VERSION}
    assert config_hash(TargetsConfig()) != config_hash(TargetsConfig(split_seed=1))

"""Issue 17 (round two), the audio stages: confinement of ffmpeg, length caps before decoding, float16
overflow, URL paths that stay per-file, the fingerprint cache's content check, file:// paths; and issue 13's
bad-input cases (few seconds of overlap, a capped offset search).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from pairminer import audio as audiolib
from pairminer import shards
from pairminer.audio import load_audio, resolve_audio_path, run_confined
from pairminer.errors import AudioError
from pairminer.storage import write_table
from pairminer.synth import make_song, shift_and_gain, write_audio
from pairminer.targets.stage import TargetsConfig, run_targets
from pairminer.verify import fingerprint as fplib
from pairminer.verify.stage import VerifyConfig, file_key, run_verify

SR = 22050
DUR_S = 12.0
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")


def _cand(i: int, mix: str, version: str, *, delta_s: float = 0.0, kind: str = "instrumental") -> dict:
    return {
        "pair_id": f"m{i}__v{i}", "mix_track_id": f"m{i}", "version_track_id": f"v{i}", "version_kind": kind,
        "artist": "Artist", "artist_key": "artist", "mix_title": "Song", "version_title": "Song (Instrumental)",
        "mix_match_title": "song", "version_match_title": "song", "genre": "Pop", "mix_duration_s": DUR_S,
        "version_duration_s": DUR_S + delta_s, "duration_delta_s": delta_s, "title_score": 100.0, "n_near_best": 1,
        "mix_audio_path": mix, "version_audio_path": version, "mix_row": i, "version_row": 100 + i,
    }


@pytest.fixture(scope="module")
def song_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("rel2")
    s = make_song(71, DUR_S, sr_hz=SR, vocal_db=-4.0)
    (d / "root").mkdir()
    write_audio(d / "root" / "mix.flac", s.mix, SR)
    write_audio(d / "root" / "inst.flac", s.accompaniment, SR)
    write_audio(d / "outside.wav", s.accompaniment, SR)
    return d


def _verify(folder: Path, rows: list[dict], **cfg) -> pd.DataFrame:
    write_table(folder / "candidates.parquet", pd.DataFrame(rows), "candidates")
    res = run_verify(folder / "candidates.parquet", folder / "out", VerifyConfig(no_cache=True, **cfg), progress=False)
    return pd.read_parquet(res.verified_path)


# ----------------------------------------------------------------------------- #2 --audio-root bypass

@needs_ffmpeg
def test_hls_playlist_and_concat_script_inside_root_cannot_read_outside(song_dir, tmp_path):
    # An HLS playlist whose segment lies outside the root: plain ffmpeg follows it (checked first, so the
    # test can fail), pairminer's confined ffmpeg refuses it, under any file name.
    ts = tmp_path / "outside.ts"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(song_dir / "outside.wav"), "-c:a", "mp2",
                    "-f", "mpegts", str(ts)], check=True)
    root = tmp_path / "root"
    shutil.copytree(song_dir / "root", root)
    playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:13\n#EXTINF:12.0,\n{ts}\n#EXT-X-ENDLIST\n"
    (root / "evil.mp3").write_text(playlist)
    (root / "evil.m3u8").write_text(playlist)
    (root / "live.mp3").write_text(playlist.replace("#EXT-X-ENDLIST\n", ""))  # a live playlist: would never end
    (root / "cc.mp3").write_text(f"ffconcat version 1.0\nfile '{song_dir / 'outside.wav'}'\n")
    plain = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", f"file:{root / 'evil.mp3'}", "-f", "f32le",
                            "-"], capture_output=True)
    assert len(plain.stdout) > SR * 4, "unconfined ffmpeg should read the playlist's outside segment"
    names = ["evil.mp3", "evil.m3u8", "live.mp3", "cc.mp3"]
    rows = [_cand(i, "mix.flac", n) for i, n in enumerate(names)] + [_cand(9, "mix.flac", "inst.flac")]
    # the live playlist would never end: refused up front, it cannot reach the decode timeout ("refused" below)
    df = _verify(tmp_path, rows, audio_root=str(root))
    got = dict(zip(df["version_audio_path"], zip(df["status"], df["reason"])))
    for n in names:
        status, reason = got[n]
        assert status == "error" and "refused" in reason and ("hls" in reason or "concat" in reason), (n, reason)
    assert got["inst.flac"][0] == "verified"
    # targets refuses them too (a verified.parquet edited by hand)
    vdf = df.copy()
    vdf["status"] = "verified"
    vdf["mix_audio_path"] = "mix.flac"
    vdf["offset_s"] = vdf["offset_s"].fillna(0.0)
    vdf.to_parquet(tmp_path / "verified.parquet")
    res = run_targets(tmp_path / "verified.parquet", tmp_path / "targets", TargetsConfig(audio_root=str(root)),
                      progress=False)
    fails = {f["pair_id"]: f["reason"] for f in res.failures}
    assert len(fails) == len(names) and all("refused" in r for r in fails.values()), fails
    assert res.counts["written"] == 1


def test_urls_refused_under_a_local_audio_root(song_dir):
    root = str(song_dir / "root")
    for url in ("http://example.com/a.mp3", "s3://bucket/a.flac", "ftp://host/x.wav"):
        with pytest.raises(AudioError, match="refused"):
            resolve_audio_path(url, audio_root=root)
    # under a URL root, only URLs below it
    assert resolve_audio_path("s3://b/audio/x.flac", audio_root="s3://b/audio") == "s3://b/audio/x.flac"
    for bad in ("s3://b/other/x.flac", "s3://b/audio/../secret.flac"):
        with pytest.raises(AudioError, match="refused"):
            resolve_audio_path(bad, audio_root="s3://b/audio")
    with pytest.raises(AudioError, match="escapes"):
        resolve_audio_path("../x.flac", audio_root="s3://b/audio")
    # file:// is a local path, confined like any other
    assert resolve_audio_path(f"file://{root}/mix.flac", audio_root=root) == str(Path(root) / "mix.flac")
    with pytest.raises(AudioError, match="escapes"):
        resolve_audio_path(f"file://{song_dir}/outside.wav", audio_root=root)


def test_decode_timeout_kills_the_child(tmp_path):
    pid_file = tmp_path / "pid"
    with pytest.raises(AudioError, match="longer than 0.5 s"):
        run_confined(["sh", "-c", f"echo $$ > {pid_file}; exec sleep 30"], timeout_s=0.5, what="x")
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left running (nor waited for: it raised)
        os.kill(pid, 0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_decoder_child_dies_with_its_parent(tmp_path):
    code = "from pairminer.audio import run_confined; run_confined(['sleep', '120'], timeout_s=300, what='x')"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    parent = subprocess.Popen([sys.executable, "-c", code], env=env)
    child = None
    for _ in range(100):
        kids = Path(f"/proc/{parent.pid}/task/{parent.pid}/children")
        pids = kids.read_text().split() if kids.exists() else []
        if pids:
            child = int(pids[0])
            break
        time.sleep(0.1)
    assert child is not None
    parent.kill()  # kill -9: no cleanup code of ours runs
    parent.wait()
    for _ in range(50):
        if not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    alive = Path(f"/proc/{child}").exists() and "Z" not in Path(f"/proc/{child}/stat").read_text().split()[2]
    assert not alive, "the decoder child outlived pairminer"


# ----------------------------------------------------------------------------- #7 URL without a backend, file://

@pytest.mark.skipif(importlib.util.find_spec("adlfs") is not None, reason="adlfs installed: would touch the network")
def test_url_without_fsspec_backend_is_a_per_file_error(song_dir, tmp_path):
    root = song_dir / "root"
    rows = [_cand(0, str(root / "mix.flac"), "abfs://container/inst.flac"),
            _cand(1, str(root / "mix.flac"), str(root / "inst.flac")),
            _cand(2, str(root / "mix.flac"), f"file://{root / 'inst.flac'}")]
    df = _verify(tmp_path, rows)
    assert df["status"].tolist() == ["error", "verified", "verified"], df[["status", "reason"]]
    assert "no fsspec backend" in df["reason"][0] and "adlfs" in df["reason"][0]
    y, info = load_audio(f"file://{root / 'inst.flac'}", 11025)
    assert info.duration_s == pytest.approx(DUR_S, abs=0.01)


# ----------------------------------------------------------------------------- #4 length caps before decoding

def test_length_caps_are_checked_from_the_header_before_decoding(song_dir, tmp_path, monkeypatch):
    long = tmp_path / "long.flac"
    with sf.SoundFile(str(long), "w", 8000, 1, subtype="PCM_16", format="FLAC") as f:
        for _ in range(30):  # 10 minutes of silence: a small file that decodes to a lot
            f.write(np.zeros(8000 * 20, np.int16))
    assert long.stat().st_size < 2_000_000
    decoded = []
    real = audiolib._decode_soundfile

    def counting(path, *a, **k):
        decoded.append(path)
        return real(path, *a, **k)

    monkeypatch.setattr(audiolib, "_decode_soundfile", counting)
    root = song_dir / "root"
    rows = [_cand(0, str(root / "mix.flac"), str(long)), _cand(1, str(root / "mix.flac"), str(root / "inst.flac"))]
    df = _verify(tmp_path, rows, max_duration_s=300.0)
    assert df["status"].tolist() == ["error", "verified"]
    assert "over the length cap of 300 s" in df["reason"][0]
    assert str(long) not in decoded
    with pytest.raises(AudioError, match="length cap"):
        load_audio(str(long), 8000, max_duration_s=60.0)
    assert str(long) not in decoded


def test_offset_search_is_bounded_in_memory_and_says_when_capped(monkeypatch):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**32, 3000, dtype=np.uint32)
    b = np.concatenate([rng.integers(0, 2**32, 40, dtype=np.uint32), a])
    want = fplib.ber_by_offset(a, b, 200)
    monkeypatch.setattr(fplib, "_SCRATCH_BYTES", 50_000)  # force many chunks
    got = fplib.ber_by_offset(a, b, 200)
    for x, y in zip(want, got):
        np.testing.assert_array_equal(x, y)
    assert got[0][np.nanargmin(got[1])] == 40
    from pairminer.verify.stage import search_radius_s

    assert search_radius_s(500.0, VerifyConfig(max_offset_s=120.0)) == (120.0, True)
    assert search_radius_s(-5.0, VerifyConfig()) == (8.0, False)


# ----------------------------------------------------------------------------- #3 float16 overflow

def test_float_wav_with_integer_scale_samples_fails_the_pair_not_inf(song_dir, tmp_path):
    s = make_song(72, DUR_S, sr_hz=SR)
    sf.write(str(tmp_path / "mix.wav"), s.mix * 32767.0, SR, subtype="FLOAT")
    sf.write(str(tmp_path / "inst.wav"), s.accompaniment * 32767.0, SR, subtype="FLOAT")
    write_audio(tmp_path / "mix_ok.flac", s.mix, SR)
    write_audio(tmp_path / "inst_ok.flac", s.accompaniment, SR)
    rows = [{**_cand(0, str(tmp_path / "mix.wav"), str(tmp_path / "inst.wav")), "status": "verified", "offset_s": 0.0},
            {**_cand(1, str(tmp_path / "mix_ok.flac"), str(tmp_path / "inst_ok.flac")), "status": "verified",
             "offset_s": 0.0}]
    pd.DataFrame(rows).to_parquet(tmp_path / "verified.parquet")
    res = run_targets(tmp_path / "verified.parquet", tmp_path / "out", TargetsConfig(), progress=False)
    assert res.counts["written"] == 1 and res.counts["failed"] == 1
    assert "beyond float16" in res.failures[0]["reason"] and "rescale" in res.failures[0]["reason"]
    m = shards.read_manifest(tmp_path / "out")
    for _, row in m.iterrows():
        assert np.isfinite(shards.read_pair_frames(tmp_path / "out", row).astype(np.float32)).all()


# ----------------------------------------------------------------------------- #16 cache content check

def test_same_size_same_mtime_replacement_is_fingerprinted_again(song_dir, tmp_path):
    p = tmp_path / "a.flac"
    shutil.copy(song_dir / "root" / "inst.flac", p)
    st = p.stat()
    k1 = file_key(str(p), None)
    data = bytearray(p.read_bytes())
    data[-100] ^= 0xFF  # same size, different content near the end
    p.write_bytes(bytes(data))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # as cp -p / rsync -a / tar -x leave it
    assert p.stat().st_size == st.st_size and p.stat().st_mtime_ns == st.st_mtime_ns
    k2 = file_key(str(p), None)
    assert k1[0] != k2[0]
    assert file_key(str(p), None)[0] == k2[0]  # stable


# ----------------------------------------------------------------------------- issue 13 bad input

def test_few_seconds_of_overlap_and_mono_vs_stereo_get_a_status_and_reason(song_dir, tmp_path):
    s = make_song(73, 40.0, sr_hz=SR, vocal_db=-4.0)
    write_audio(tmp_path / "mix.flac", s.mix, SR, stereo=True)
    write_audio(tmp_path / "inst_mono.flac", s.accompaniment, SR)
    # a version whose first 4 s are the last 4 s of the instrumental, then 10 s of another song
    other = make_song(74, 10.0, sr_hz=SR).accompaniment
    exc = np.concatenate([s.accompaniment[int(36 * SR):], other])
    write_audio(tmp_path / "excerpt.flac", exc, SR)
    rows = [_cand(0, str(tmp_path / "mix.flac"), str(tmp_path / "inst_mono.flac")),
            _cand(1, str(tmp_path / "mix.flac"), str(tmp_path / "excerpt.flac"), delta_s=-26.0)]
    for r in rows:
        r["mix_duration_s"] = 40.0
    df = _verify(tmp_path, rows, min_overlap_s=6.0)
    assert df["status"][0] == "verified"
    assert df["status"][1] == "too_different" and df["reason"][1]

"""Issue 8, bad audio and security: every odd file becomes status=error with a reason (or is handled
correctly) and the run goes on, through verify and targets. Also: paths escaping --audio-root, file
names with spaces/quotes/leading dashes, no shell, safe checkpoint and YAML loading, and a 2-hour
file decoded in bounded memory (slow).
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from click.testing import CliRunner

from pairminer.audio import load_audio, resolve_audio_path
from pairminer.cli import main
from pairminer.errors import AudioError
from pairminer.storage import read_json, write_table
from pairminer.synth import make_song, write_audio
from pairminer.verify.stage import STATUSES, VerifyConfig, run_verify
from pairminer.testing import candidate_row

SR = 22050
DUR_S = 12.0
REPO = Path(__file__).resolve().parents[2]
ODD_NAME = "-dash 'single' \"double\" $HOME; rm -rf x.mp3"
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")

# version file -> (expected status, regex the reason must match (None: no reason))
CASES = {
    "inst.flac": ("verified", None),
    "missing.flac": ("error", r"file not found"),
    "zero.wav": ("error", r"zero-byte"),
    "trunc.flac": ("error", r"truncated|corrupt|unreadable"),
    "trunc.mp3": ("error", r"truncated"),
    "random.flac": ("error", r"cannot decode|unreadable|not a decodable"),
    "random.mp3": ("error", r"cannot decode|not a decodable"),
    "random.wav": ("error", r"cannot decode|unreadable|not a decodable"),
    "liar.wav": ("error", r"truncated, the WAV header promises 60\.0 s .* holds 12\.0 s"),
    "streamed.wav": ("verified", None),  # unknown-length placeholder in the header: decode what is there
    "silent.wav": ("error", r"silent"),
    "short.wav": ("error", r"too short"),
    "inst_8k_mono.wav": ("verified", None),
    "inst_96k_6ch.flac": ("verified", None),
    "a name with spaces & 'quotes'.flac": ("verified", None),
    ODD_NAME: ("verified", None),  # an MP3 (ffmpeg subprocess) whose name starts with a dash
}


def _ffmpeg_mp3(src: Path, dst: Path) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), "-b:a", "96k", "-f", "mp3",
                    "file:" + str(dst)], check=True)


def _wav_with_data_size(src: Path, dst: Path, data_size: int) -> None:
    b = bytearray(src.read_bytes())
    i = b.index(b"data")
    struct.pack_into("<I", b, i + 4, data_size)
    dst.write_bytes(bytes(b))


def _candidate(i: int, mix: str, version: str | None) -> dict:
    return candidate_row(i, mix, version, duration_s=DUR_S)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    import soxr

    d = tmp_path_factory.mktemp("audio")
    s = make_song(41, DUR_S, sr_hz=SR)
    inst = s.accompaniment
    write_audio(d / "mix.flac", s.accompaniment + np.float32(10 ** (-5 / 20)) * s.vocals, SR, stereo=True)
    write_audio(d / "inst.flac", inst, SR, stereo=True)
    write_audio(d / "inst.wav", inst, SR)
    data = (d / "inst.flac").read_bytes()
    (d / "trunc.flac").write_bytes(data[: int(len(data) * 0.6)])
    _ffmpeg_mp3(d / "inst.wav", d / "inst.mp3")
    data = (d / "inst.mp3").read_bytes()
    (d / "trunc.mp3").write_bytes(data[: len(data) // 2])
    rng = np.random.default_rng(8)
    for n in ("random.flac", "random.mp3", "random.wav"):
        (d / n).write_bytes(rng.bytes(60_000))
    (d / "zero.wav").write_bytes(b"")
    wav_bytes = (d / "inst.wav").stat().st_size - 44
    _wav_with_data_size(d / "inst.wav", d / "liar.wav", wav_bytes * 5)
    _wav_with_data_size(d / "inst.wav", d / "streamed.wav", 0xFFFFFFFF)
    write_audio(d / "silent.wav", np.zeros(int(DUR_S * SR), np.float32), SR)
    write_audio(d / "short.wav", inst[: 2 * SR], SR)
    write_audio(d / "inst_8k_mono.wav", soxr.resample(inst, SR, 8000), 8000)
    up = soxr.resample(inst, SR, 96000).astype(np.float32)
    six = np.stack([up, up, 0.5 * up, 0.5 * up, 0.3 * up, 0.1 * up], axis=1) * np.float32(0.9)
    sf.write(str(d / "inst_96k_6ch.flac"), six, 96000, subtype="PCM_16")
    shutil.copy(d / "inst.flac", d / "a name with spaces & 'quotes'.flac")
    shutil.copy(d / "inst.mp3", d / ODD_NAME)
    rows = [_candidate(i, "mix.flac", v) for i, v in enumerate(CASES)]
    write_table(d / "candidates.parquet", pd.DataFrame(rows), "candidates")
    return d


@pytest.fixture(scope="module")
def verified(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("verify-out")
    res = CliRunner().invoke(main, ["verify", str(corpus / "candidates.parquet"), "-o", str(out), "-q"])
    return out, res


def test_verify_classifies_every_odd_file_and_goes_on(verified):
    out, res = verified
    assert res.exit_code == 0, res.output + res.stderr
    assert "Traceback" not in res.output + res.stderr
    df = pd.read_parquet(out / "verified.parquet")
    assert len(df) == len(CASES)  # one row per candidate, none lost
    got = dict(zip(df["version_audio_path"], zip(df["status"], df["reason"])))
    for name, (status, why) in CASES.items():
        st, reason = got[name]
        assert st == status, (name, st, reason)
        if why is None:
            assert pd.isna(reason), (name, reason)
        else:
            assert reason.startswith("version ") and re.search(why, reason), (name, reason)
            assert "\n" not in reason


def test_verify_report_counts_add_up(verified):
    out, _ = verified
    c = read_json(out / "verify-report.json")["counts"]
    n_err = sum(1 for s, _ in CASES.values() if s == "error")
    assert c["candidates"] == sum(c[s] for s in STATUSES) == len(CASES)
    assert c["error"] == n_err == sum(c["errors_by_reason"].values())
    assert c["errors_by_reason"]["truncated"] == 3 and c["errors_by_reason"]["file not found"] == 1
    assert "other" not in c["errors_by_reason"]


def test_odd_formats_decode_to_the_same_signal(corpus):
    """8 kHz mono and 96 kHz 6-channel files are resampled/downmixed, not rejected or garbled."""
    ref, _ = load_audio(str(corpus / "inst.wav"), 8000)
    for name, ch in (("inst_8k_mono.wav", 1), ("inst_96k_6ch.flac", 6)):
        y, info = load_audio(str(corpus / name), 8000)
        assert info.channels == ch and abs(len(y) - len(ref)) <= 8
        n = min(len(y), len(ref))
        assert np.corrcoef(y[:n], ref[:n])[0, 1] > 0.97, name


def test_shorter_than_one_fingerprint(corpus, tmp_path):
    write_audio(tmp_path / "tiny.wav", make_song(3, 4.0, sr_hz=SR).mix[: int(1.5 * SR)], SR)
    write_table(tmp_path / "c.parquet", pd.DataFrame([_candidate(0, str(corpus / "mix.flac"),
                                                                 str(tmp_path / "tiny.wav"))]), "candidates")
    r = run_verify(tmp_path / "c.parquet", tmp_path / "o", VerifyConfig(min_seconds=0.0, no_cache=True),
                   progress=False)
    df = pd.read_parquet(r.verified_path)
    assert df["status"].tolist() == ["error"] and "too short to fingerprint" in df["reason"].item()


def test_targets_odd_files_fail_with_reasons_and_good_ones_are_written(corpus, tmp_path):
    from pairminer.shards import read_manifest, read_pair_frames
    from pairminer.targets.stage import TargetsConfig, run_targets

    names = ["inst.flac", "missing.flac", "zero.wav", "trunc.flac", "trunc.mp3", "random.wav", "liar.wav",
             "silent.wav", "inst_8k_mono.wav", "inst_96k_6ch.flac", ODD_NAME]
    rows = []
    for i, n in enumerate(names):
        r = _candidate(i, str(corpus / "mix.flac"), str(corpus / n))
        rows.append({**r, "status": "verified", "offset_s": 0.0, "ber": 0.2, "reason": None})
    pd.DataFrame(rows).to_parquet(tmp_path / "verified.parquet")
    res = run_targets(tmp_path / "verified.parquet", tmp_path / "t", TargetsConfig(shard_mb=1.0), progress=False)
    good = {"inst.flac", "inst_8k_mono.wav", "inst_96k_6ch.flac", ODD_NAME}
    assert res.counts["written"] == len(good) and res.counts["failed"] == len(names) - len(good)
    failed = {f["pair_id"]: f["reason"] for f in res.failures}
    for i, n in enumerate(names):
        if n not in good:
            assert f"m{i}__v{i}" in failed and n in failed[f"m{i}__v{i}"], (n, failed)
    man = read_manifest(tmp_path / "t").set_index("version_audio_path")
    assert set(Path(p).name for p in man.index) == good
    for p, row in man.iterrows():
        frames = np.asarray(read_pair_frames(tmp_path / "t", row), np.float32)
        assert np.isfinite(frames).all() and frames[:, 0].max() > 0
        assert abs(row["offset_s"]) < 0.01 and row["version_coverage"] > 0.98  # aligned at 0, as generated


# --------------------------------------------------------------------------- security

def test_audio_root_refuses_escapes(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    ok = resolve_audio_path("sub/a.flac", audio_root=str(root))
    assert ok == str(root.resolve() / "sub" / "a.flac")
    for bad in ("../../etc/passwd", "/etc/passwd", "sub/../../outside.flac", str(tmp_path / "other.flac")):
        with pytest.raises(AudioError, match="escapes --audio-root"):
            resolve_audio_path(bad, audio_root=str(root))
    (root / "link").symlink_to("/etc")  # a symlink out of the root is an escape too
    with pytest.raises(AudioError, match="escapes --audio-root"):
        resolve_audio_path("link/passwd", audio_root=str(root))


def test_verify_cli_refuses_escapes_with_reason(corpus, tmp_path):
    rows = [_candidate(0, "mix.flac", "inst.flac"), _candidate(1, "mix.flac", "../../../../etc/passwd"),
            _candidate(2, "mix.flac", "/etc/passwd")]
    write_table(tmp_path / "c.parquet", pd.DataFrame(rows), "candidates")
    res = CliRunner().invoke(main, ["verify", str(tmp_path / "c.parquet"), "-o", str(tmp_path / "o"), "-q",
                                    "--audio-root", str(corpus), "--no-cache"])
    assert res.exit_code == 0, res.output + res.stderr
    df = pd.read_parquet(tmp_path / "o" / "verified.parquet")
    assert df["status"].tolist() == ["verified", "error", "error"]
    assert all("escapes --audio-root" in r for r in df["reason"][1:])
    assert read_json(tmp_path / "o" / "verify-report.json")["counts"]["errors_by_reason"] == {"path refused": 2}


def test_discover_counts_refused_paths(tmp_path):
    from pairminer.discover.stage import DiscoverConfig, run_discover

    (tmp_path / "audio").mkdir()
    p = tmp_path / "c.csv"
    p.write_text("track_id,artist,title,duration,audio_path\n"
                 "a,X,Song,200,ok.flac\nb,X,Song (Instrumental),200.2,../../etc/passwd\n", encoding="utf-8")
    r = run_discover(p, tmp_path / "o", DiscoverConfig(audio_root=str(tmp_path / "audio")), progress=False)
    c = pd.read_parquet(r.candidates_path)
    assert r.counts["audio_paths_refused"] == 1
    assert c["version_audio_path"].isna().all() and c["mix_audio_path"].item().endswith("audio/ok.flac")


def test_no_shell_anywhere_in_the_package():
    offenders = []
    for path in sorted((REPO / "pairminer").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for pattern in (r"shell\s*=\s*True", r"\bos\.system\s*\(", r"\bos\.popen\s*\(", r"\bcommands\.getoutput"):
            if re.search(pattern, text):
                offenders.append(f"{path.relative_to(REPO)}: {pattern}")
    assert offenders == []


def test_checkpoint_with_a_pickled_object_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    from pairminer.errors import InputError
    from pairminer.train.loop import load_checkpoint

    marker = tmp_path / "pwned"
    evil = {"model": {"w": torch.zeros(2)}, "payload": _Boom(str(marker))}
    torch.save(evil, tmp_path / "last.pt")
    with pytest.raises(InputError, match="not a pairminer checkpoint"):
        load_checkpoint(tmp_path / "last.pt")
    assert not marker.exists()  # nothing was unpickled and run
    torch.save({"model": {"w": torch.ones(2)}, "step": 3}, tmp_path / "ok.pt")
    assert load_checkpoint(tmp_path / "ok.pt")["step"] == 3


class _Boom:
    """Unpickling this object would create a file: the canary of an unsafe torch.load."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_yaml_is_loaded_safely(tmp_path):
    from pairminer.verify.stage import VerifyConfig as VC

    marker = tmp_path / "pwned"
    evil = ("verify:\n  max_ber: !!python/object/apply:pathlib.Path.touch "
            f"[!!python/object/apply:pathlib.Path [{str(marker)!r}]]\n")
    with pytest.raises(Exception) as info:
        VC.from_yaml(evil)
    assert "python/object" in str(info.value) and not marker.exists()
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(evil, encoding="utf-8")
    res = CliRunner().invoke(main, ["verify", str(tmp_path / "none.parquet"), "-o", str(tmp_path / "o"),
                                    "--config", str(cfg)])
    assert res.exit_code != 0 and "Traceback" not in res.output + res.stderr and not marker.exists()
    assert [ln for ln in res.stderr.splitlines() if ln.strip()][-1].startswith("error: ")


# --------------------------------------------------------------------------- a 2-hour file (slow)

def _sparse_two_hour_wav(path: Path, sr_hz: int = 44100, channels: int = 2) -> None:
    """A 2-hour 16-bit WAV that costs ~7 MB of disk: 20 s of noise at each end, a sparse hole between."""
    n_bytes = 7200 * sr_hz * channels * 2
    noise = (np.random.default_rng(0).standard_normal((20 * sr_hz, channels)) * 3000).astype("<i2").tobytes()
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 36 + n_bytes) + b"WAVE")
        f.write(b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, sr_hz, sr_hz * channels * 2, channels * 2, 16))
        f.write(b"data" + struct.pack("<I", n_bytes))
        f.write(noise)
        f.seek(44 + n_bytes - len(noise))
        f.write(noise)


def _peak_rss_mb(code: str, cwd: Path) -> tuple[float, str]:
    """Run `code` in a fresh interpreter; return its peak RSS (MiB) and stdout."""
    wrapper = code + "\nimport resource\nprint('RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    proc = subprocess.run([sys.executable, "-c", wrapper], cwd=cwd, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stderr[-3000:]
    kb = int(re.search(r"RSS_KB (\d+)", proc.stdout).group(1))
    return kb / 1024, proc.stdout


@pytest.mark.slow
def test_two_hour_file_in_bounded_memory(tmp_path, corpus):
    """2 h of 44.1 kHz stereo is 2.5 GB as float32; verify must stay well below (mono 11025 Hz is 0.3 GB)."""
    long = tmp_path / "long.wav"
    _sparse_two_hour_wav(long)
    assert long.stat().st_size > 1.2e9
    # Each measurement is paired with the same code on a short file in a fresh interpreter: the
    # difference is what the file's length costs, without imports or numba's first-run JIT compile
    # (which alone added ~600 MiB on a machine with a cold cache).
    def verify_code(version: Path, name: str) -> str:
        write_table(tmp_path / f"{name}.parquet", pd.DataFrame([_candidate(0, str(corpus / "mix.flac"), str(version))]),
                    "candidates")
        return textwrap.dedent(f"""
            from pairminer.verify.stage import VerifyConfig, run_verify
            r = run_verify({str(tmp_path / f'{name}.parquet')!r}, {str(tmp_path / name)!r}, VerifyConfig(no_cache=True),
                           scheduler="synchronous", progress=False)
            print("STATUS", r.n_candidates, r.n_error, r.n_decoded)
        """)

    base_mb, out = _peak_rss_mb(verify_code(corpus / "inst.flac", "short"), REPO)
    assert "STATUS 1 0 2" in out, out
    rss_mb, out = _peak_rss_mb(verify_code(long, "long"), REPO)
    assert "STATUS 1 0 2" in out, out  # both files decoded and compared, no error
    df = pd.read_parquet(tmp_path / "long" / "verified.parquet")
    assert df["status"].item() in STATUSES and df["status"].item() != "error"
    print(f"verify on a 2-hour file: peak RSS {rss_mb:.0f} MiB ({base_mb:.0f} MiB on a short file)")
    assert rss_mb - base_mb < 1000, f"a 2-hour file cost {rss_mb - base_mb:.0f} MiB more than a short one"

    # targets: the 2-hour mix is refused by max_duration_s after decoding at most that much
    def targets_code(mix: Path, name: str) -> str:
        vrows = [{**_candidate(0, str(mix), str(corpus / "inst.flac")), "mix_duration_s": None, "status": "verified",
                  "offset_s": 0.0, "ber": 0.2, "reason": None}]
        pd.DataFrame(vrows).to_parquet(tmp_path / f"v-{name}.parquet")
        return textwrap.dedent(f"""
            from pairminer.targets.stage import TargetsConfig, run_targets
            r = run_targets({str(tmp_path / f'v-{name}.parquet')!r}, {str(tmp_path / f't-{name}')!r}, TargetsConfig(),
                            scheduler="synchronous", progress=False)
            print("FAILED", r.counts["failed"], r.failures[0]["reason"] if r.failures else "")
        """)

    base_mb, out = _peak_rss_mb(targets_code(corpus / "mix.flac", "short"), REPO)
    assert "FAILED 0" in out, out
    rss_mb, out = _peak_rss_mb(targets_code(long, "long"), REPO)
    assert "FAILED 1" in out and "max_duration_s" in out, out
    print(f"targets on a 2-hour mix: peak RSS {rss_mb:.0f} MiB ({base_mb:.0f} MiB on a short file)")
    assert rss_mb - base_mb < 400, f"a 2-hour mix cost {rss_mb - base_mb:.0f} MiB more than a short one"


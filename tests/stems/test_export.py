"""The dataset card, trainer configs and musdb view of a stems export, read back by the real clients.

A tiny export is built by hand (PCM_16 stereo 44.1 kHz, vocals + instrumental == mixture sample for
sample) and read with musdb (WAV mode), demucs' dataset code when it is installed, and the folder
contracts of demucs, MSST and open-unmix (cited per test; docs/stems.md "Trainers").
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from pairminer.errors import OutputError
from pairminer.stems.export import (MSST_DATASET_TYPE, write_dataset_card, write_musdb_view,
                                    write_trainer_configs)

SR, CH = 44100, 2
SOURCES = ["vocals", "instrumental"]
# (pair_id, split, seconds, genre, method, cancellation_db, drift_ppm, polarity)
PAIRS = [
    ("T001__T002", "train", 1.00, "pop", "waveform", 31.5, 0.4, 1),
    ("T003__T004", "train", 0.75, "rock", "waveform", 24.0, 12.0, -1),
    ("T005__T006", "valid", 0.50, "pop", "spectral", 9.0, None, 1),
    ("T007__T008", "test", 0.60, None, "waveform", 41.0, 150.0, 1),
]


def _export(root: Path, isrc: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for pid, split, secs, genre, method, canc, drift, pol in PAIRS:
        n = int(secs * SR)
        voc = rng.integers(-8000, 8000, (n, CH), dtype=np.int16)
        ins = rng.integers(-8000, 8000, (n, CH), dtype=np.int16)
        d = root / split / pid
        d.mkdir(parents=True)
        for name, x in (("vocals", voc), ("instrumental", ins), ("mixture", voc + ins)):
            sf.write(d / f"{name}.wav", x, SR, subtype="PCM_16")
        mix, ver = pid.split("__")
        rows.append(dict(pair_id=pid, mix_track_id=mix, version_track_id=ver, version_kind="instrumental",
                         split=split, path=f"{split}/{pid}", sample_rate=SR, channels=CH, mix_start_sample=0,
                         n_samples=n, duration_s=n / SR, method=method,
                         reason="does not cancel" if method == "spectral" else None, cancellation_db=canc,
                         drift_ppm=drift, polarity=pol, lag_samples=0.25, gain_db=[0.0, -0.1], filter_dev_db=0.3,
                         model="gain", format="wav", subtype="PCM_16", clipped_samples=0, artist=f"A {mix}",
                         title=f"S {mix}", genre=genre, format_version=1,
                         **({"isrc": f"US{mix}"} if isrc else {})))
    return pd.DataFrame(rows)


REPORT = {"versions": {"pairminer": "9.9.9"}, "timings_s": {"compute_and_write": 123.456},
          "failures": [{"pair_id": "X__Y", "reason": "version does not overlap the mix"}],
          "inputs": {"not_verified": 3}, "config": {"format": "wav", "subtype": "PCM_16"}}


@pytest.fixture
def export(tmp_path):
    root = tmp_path / "stems"
    meta = _export(root)
    card = write_dataset_card(root, meta, REPORT)
    paths = write_trainer_configs(root, meta)
    return root, meta, card, paths


def _names(meta, split):
    return sorted(meta.loc[meta["split"] == split, "pair_id"])


# ---------------------------------------------------------------- musdb (real client) ----------

def test_musdb_reads_the_view_with_the_setup(export):
    musdb = pytest.importorskip("musdb")
    root, meta, _, _ = export
    kw = dict(root=str(root / "musdb"), is_wav=True, setup_file="../configs/musdb-setup.yaml")
    train = musdb.DB(subsets="train", split="train", **kw)
    valid = musdb.DB(subsets="train", split="valid", **kw)
    test = musdb.DB(subsets="test", **kw)
    assert [t.name for t in train] == _names(meta, "train")
    assert [t.name for t in valid] == _names(meta, "valid")
    assert [t.name for t in test] == _names(meta, "test")
    assert train.sources_names == SOURCES
    for t in [*train, *valid, *test]:
        split = meta.set_index("pair_id").loc[t.name, "split"]
        folder = root / split / t.name
        assert list(t.sources) == SOURCES and t.rate == SR
        voc, _ = sf.read(folder / "vocals.wav")
        ins, _ = sf.read(folder / "instrumental.wav")
        np.testing.assert_allclose(t.targets["vocals"].audio, voc, atol=1e-6)
        np.testing.assert_allclose(t.targets["instrumental"].audio, ins, atol=1e-6)
        np.testing.assert_allclose(t.targets["accompaniment"].audio, ins, atol=1e-6)
        np.testing.assert_allclose(t.audio, voc + ins, atol=1e-6)  # the mixture file
        np.testing.assert_allclose(t.targets["linear_mixture"].audio, t.audio, atol=1e-6)


def test_musdb_view_is_relative_rebuilt_and_guarded(export):
    root, meta, _, _ = export
    link = root / "musdb" / "train" / "T005__T006"  # a valid pair sits in musdb's train/
    assert link.is_symlink() and os.readlink(link) == os.path.join("..", "..", "valid", "T005__T006")
    sub = meta[meta["pair_id"] != "T001__T002"]
    write_musdb_view(root, sub)
    assert sorted(p.name for p in (root / "musdb" / "train").iterdir()) == ["T003__T004", "T005__T006"]
    assert (root / "train" / "T001__T002" / "mixture.wav").exists()  # the stems themselves are untouched
    assert not list(root.glob(".musdb-*"))
    import shutil

    copy = root.parent / "copy"  # a copy that followed the links: the rerun replaces its folders by links
    shutil.copytree(root, copy)
    assert not (copy / "musdb" / "train" / "T005__T006").is_symlink()
    write_musdb_view(copy, meta)
    assert (copy / "musdb" / "train" / "T005__T006").is_symlink()
    assert (copy / "valid" / "T005__T006" / "vocals.wav").is_file()
    (root / "musdb" / "test" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError):
        write_musdb_view(root, meta)


# ---------------------------------------------------------------- demucs -----------------------

def test_demucs_wav_dataset_reads_the_export(export, tmp_path):
    wav = pytest.importorskip("demucs.wav", reason="demucs training extras not installed (see docs/stems.md)")
    from types import SimpleNamespace

    root, meta, _, _ = export
    dset = yaml.safe_load((root / "configs" / "demucs-pairminer.yaml").read_text())["dset"]
    args = SimpleNamespace(wav=str(root), metadata=str(tmp_path / "dmeta"), sources=dset["sources"], segment=0.5,
                           shift=0.5, samplerate=dset["samplerate"], channels=dset["channels"], normalize=True,
                           full_cv=True)
    train_set, valid_set = wav.get_wav_datasets(args)
    assert sorted(train_set.metadata) == _names(meta, "train")
    assert sorted(valid_set.metadata) == _names(meta, "valid")
    n_valid = int(meta.loc[meta["split"] == "valid", "n_samples"].iloc[0])
    assert tuple(valid_set[0].shape) == (1 + len(SOURCES), CH, n_valid)  # mixture + sources, whole track


def _demucs_contract(split_dir: Path, sources: list[str]) -> dict[str, tuple[int, int]]:
    """What demucs/wav.py build_metadata + _track_metadata read (facebookresearch/demucs@e976d93, same in
    PyPI 4.1.0): every leaf folder under <wav>/<split> (os.walk followlinks=True, skipping dot folders and
    the split folder itself) is a track; `<source>.wav` for each source and `mixture.wav` must have one
    length and one sample rate (else ValueError; a missing mixture.wav would be written by demucs)."""
    tracks = {}
    for cur, folders, _ in os.walk(split_dir, followlinks=True):
        cur = Path(cur)
        if cur.name.startswith(".") or folders or cur == split_dir:
            continue
        infos = [sf.info(str(cur / f"{s}.wav")) for s in [*sources, "mixture"]]
        assert len({i.frames for i in infos}) == 1 and len({i.samplerate for i in infos}) == 1, cur
        tracks[str(cur.relative_to(split_dir))] = (infos[0].frames, infos[0].samplerate)
    return tracks


def test_demucs_folder_contract(export, tmp_path):
    root, meta, _, _ = export
    text = (root / "configs" / "demucs-pairminer.yaml").read_text()
    assert text.splitlines()[0] == "# @package _global_"  # hydra: the file sets dset.* and weights at top level
    doc = yaml.safe_load(text)
    d = doc["dset"]
    assert d["sources"] == SOURCES and d["samplerate"] == SR and d["channels"] == CH and d["use_musdb"] is False
    assert d["wav"] is None and len(doc["weights"]) == len(SOURCES)  # no absolute path in the export
    # demucs_train.sh: copies the dset file into the checkout and passes dset.wav=<stems root> to dora
    (tmp_path / "demucs" / "conf" / "dset").mkdir(parents=True)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "dora").write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > dora-args.txt\n')
    (tmp_path / "bin" / "dora").chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["bash", str(root / "configs" / "demucs_train.sh"), str(tmp_path / "demucs"), "epochs=2"],
                   check=True, env=env)
    args = (tmp_path / "demucs" / "dora-args.txt").read_text().split()
    assert args == ["run", "-d", "dset=pairminer", f"dset.wav={root.resolve()}", "epochs=2"]
    assert (tmp_path / "demucs" / "conf" / "dset" / "pairminer.yaml").read_text() == text
    wav_root = Path(args[3].split("=", 1)[1])
    for split in ("train", "valid"):  # demucs/wav.py get_wav_datasets: <wav>/train, <wav>/valid
        tracks = _demucs_contract(wav_root / split, d["sources"])
        want = meta[meta["split"] == split].set_index("pair_id")
        assert sorted(tracks) == sorted(want.index)
        assert all(tracks[k] == (int(want.loc[k, "n_samples"]), SR) for k in tracks)
    bad = root / "train" / "T001__T002"
    sf.write(bad / "mixture.wav", np.zeros((10, CH)), SR, subtype="PCM_16")
    with pytest.raises(AssertionError):  # the contract check can fail: demucs would raise ValueError here
        _demucs_contract(root / "train", d["sources"])


# ---------------------------------------------------------------- MSST -------------------------

def test_msst_dataset_type_conventions(export):
    """MSST utils/dataset.py (ZFTurbo/Music-Source-Separation-Training@ccc011a): dataset_type 4 reads every
    non-dot folder of --data_path, `<instrument>.wav|flac` per training.instruments, one common offset;
    validation (valid.py) takes every `mixture.<ext>` under --valid_path and the instruments' files beside it."""
    root, meta, _, _ = export
    frag = yaml.safe_load((root / "configs" / "msst-dataset.yaml").read_text())
    assert frag["audio"]["sample_rate"] == SR and frag["audio"]["num_channels"] == CH
    assert isinstance(frag["audio"]["chunk_size"], int)
    inst = frag["training"]["instruments"]
    assert inst == SOURCES and frag["training"]["target_instrument"] in inst
    cli = frag["msst_cli"]
    assert cli == {"dataset_type": MSST_DATASET_TYPE, "data_path": "train", "valid_path": "valid"}
    tracks = sorted(p for p in (root / cli["data_path"]).glob("*") if p.is_dir() and not p.name.startswith("."))
    assert [p.name for p in tracks] == _names(meta, "train")
    for t in tracks:
        infos = [sf.info(str(t / f"{i}.{frag['inference']['extension']}")) for i in inst]
        assert len({i.frames for i in infos}) == 1 and {i.samplerate for i in infos} == {SR}
        # type 4 feeds sum(stems) as the mixture: right only because our stems sum to mixture.wav
        total = sum(sf.read(t / f"{i}.wav", dtype="int32")[0].astype(np.int64) for i in inst)
        np.testing.assert_array_equal(total, sf.read(t / "mixture.wav", dtype="int32")[0])
    assert MSST_DATASET_TYPE == 4
    mixes = sorted((root / cli["valid_path"]).rglob("mixture.wav"))
    assert [m.parent.name for m in mixes] == _names(meta, "valid")
    for m in mixes:
        assert all(sf.info(str(m.parent / f"{i}.wav")).frames == sf.info(str(m)).frames for i in inst)


def test_msst_train_script_merges_the_config_and_calls_train_py(export, tmp_path):
    root, _, _, _ = export
    msst = tmp_path / "msst"
    (msst / "configs").mkdir(parents=True)
    (msst / "configs" / "base.yaml").write_text(
        "audio:\n  chunk_size: 261120\n  n_fft: 2048\n  sample_rate: 48000\nmodel:\n  sizes: !!python/tuple\n"
        "  - 4096\n  - 2048\ntraining:\n  instruments: [vocals, other]\n  target_instrument: vocals\n  lr: 1.0e-4\n")
    (msst / "train.py").write_text(
        "import json, sys, yaml\ni = sys.argv.index('--config_path')\n"
        "cfg = yaml.load(open(sys.argv[i + 1]), Loader=yaml.FullLoader)\n"
        "json.dump({'argv': sys.argv[1:], 'cfg': cfg}, open('called.json', 'w'), default=list)\n")
    res = tmp_path / "res"
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run(["bash", str(root / "configs" / "msst_train.sh"), str(msst), "mel_band_roformer",
                    "configs/base.yaml", str(res), "--num_workers", "2"], check=True, env=env, cwd=tmp_path)
    got = json.loads((msst / "called.json").read_text())
    a = got["argv"]
    assert a[a.index("--dataset_type") + 1] == str(MSST_DATASET_TYPE)
    assert a[a.index("--data_path") + 1] == str(root.resolve() / "train")
    assert a[a.index("--valid_path") + 1] == str(root.resolve() / "valid")
    assert a[a.index("--model_type") + 1] == "mel_band_roformer" and a[-2:] == ["--num_workers", "2"]
    assert a[a.index("--config_path") + 1] == str(res / "config.yaml")
    assert a[a.index("--results_path") + 1] == str(res)
    cfg = got["cfg"]
    assert cfg["audio"] == {"chunk_size": 261120, "n_fft": 2048, "sample_rate": SR, "num_channels": CH}
    assert cfg["training"]["instruments"] == SOURCES and cfg["training"]["lr"] == 1.0e-4
    assert cfg["model"]["sizes"] == [4096, 2048] and "msst_cli" not in cfg


# ---------------------------------------------------------------- open-unmix -------------------

def test_open_unmix_trackfolder_contract_and_command(export, tmp_path):
    """open-unmix openunmix/data.py (sigsep/open-unmix-pytorch@fb672c9) FixedSourcesTrackFolderDataset:
    folders of Path(root, split) for split train/valid that hold target_file and every interferer file."""
    root, meta, _, _ = export
    umx = tmp_path / "umx"
    (umx / "scripts").mkdir(parents=True)
    (umx / "scripts" / "train.py").write_text(
        "import json, sys\njson.dump(sys.argv[1:], open('called.json', 'w'))\n")
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run(["bash", str(root / "configs" / "umx_train.sh"), str(umx), "instrumental", "--epochs", "1"],
                   check=True, env=env, cwd=tmp_path)
    a = json.loads((umx / "called.json").read_text())
    assert a[a.index("--dataset") + 1] == "trackfolder_fix" and a[a.index("--root") + 1] == str(root.resolve())
    target, other = a[a.index("--target-file") + 1], a[a.index("--interferer-files") + 1]
    assert (target, other) == ("instrumental.wav", "vocals.wav") and a[-2:] == ["--epochs", "1"]
    assert a[a.index("--output") + 1] == str(tmp_path / "umx-instrumental")
    for split in ("train", "valid"):
        found = sorted(p.name for p in Path(a[a.index("--root") + 1], split).iterdir()
                       if p.is_dir() and (p / target).exists() and (p / other).exists())
        assert found == _names(meta, split)
    setup = yaml.safe_load((root / "configs" / "musdb-setup.yaml").read_text())
    assert setup["validation_tracks"] == _names(meta, "valid") and list(setup["sources"]) == SOURCES


# ---------------------------------------------------------------- dataset card -----------------

def _table(card: str, first: str) -> list[list[str]]:
    lines = card.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith(f"| {first} |"))
    out = []
    for ln in lines[i + 2:]:
        if not ln.startswith("|"):
            break
        out.append([c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]])
    return out


def test_dataset_card_numbers_match_the_metadata(export):
    root, meta, card, _ = export
    text = card.read_text()
    rows = {r[0]: r for r in _table(text, "split")}
    for split in ("train", "valid", "test"):
        part = meta[meta["split"] == split]
        r = rows[split]
        assert int(r[1]) == len(part) and float(r[2]) == pytest.approx(part["duration_s"].sum(), abs=0.006)
        assert float(r[3]) == pytest.approx(part["duration_s"].sum() / 3600, abs=5e-4)
        assert (int(r[4]), int(r[5])) == ((part["method"] == "waveform").sum(), (part["method"] == "spectral").sum())
    assert int(rows["total"][1]) == len(meta)
    assert float(rows["total"][2]) == pytest.approx(meta["duration_s"].sum(), abs=0.006)
    genres = {r[0]: int(r[1]) for r in _table(text, "genre")}
    assert genres == {"pop": 2, "rock": 1, "(unknown)": 1}
    assert {r[0]: int(r[1]) for r in _table(text, "polarity")} == {"1": 3, "-1": 1}
    q = _table(text, "cancellation_db")[0]
    assert float(q[2]) == pytest.approx(meta["cancellation_db"].median(), abs=0.051)
    assert "pairminer 9.9.9" in text and "no **licence**" not in text and "**no licence**" in text.replace("\n", " ")
    assert {r[0] for r in _table(text, "column")} == {"isrc"}
    assert "123.456" not in text and "Pairs that failed (no stems, see stems-report.json): 1." in text
    assert f"{SR} Hz, {CH} channel(s)" in text


def test_outputs_are_deterministic(export):
    root, meta, card, paths = export
    before = {p: p.read_bytes() for p in [card, *paths] if p.is_file()}
    other_timings = {**REPORT, "timings_s": {"compute_and_write": 9.0}, "realtime_factor": 3.0}
    assert write_dataset_card(root, meta.sample(frac=1, random_state=1), other_timings) == card
    write_trainer_configs(root, meta.sample(frac=1, random_state=2))
    assert {p: p.read_bytes() for p in before} == before
    assert all(os.access(p, os.X_OK) for p in paths if p.suffix == ".sh")


def test_empty_export_and_no_rights_columns(tmp_path):
    root = tmp_path / "stems"
    meta = _export(root, isrc=False)
    write_dataset_card(root, meta.iloc[:0], {})
    text = (root / "README.md").read_text()
    assert int(_table(text, "split")[-1][1]) == 0 and "no ISRC or licence column" in text
    paths = write_trainer_configs(root, meta.iloc[:0])
    assert yaml.safe_load(paths[4].read_text())["validation_tracks"] == []
    assert [list((root / "musdb" / s).iterdir()) for s in ("train", "test")] == [[], []]

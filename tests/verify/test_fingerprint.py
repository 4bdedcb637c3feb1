import shutil
import subprocess

import numpy as np
import pytest
import soxr

from pairminer.errors import AudioError
from pairminer.verify.fingerprint import (
    CHROMAPRINT_SR_HZ,
    ITEM_S,
    N_BANDS,
    Fingerprint,
    ber_by_offset,
    chromaprint_items,
    compare,
    decode_items,
    encode_items,
    fingerprint_file,
    fingerprint_signal,
    residual_share,
)
from pairminer.synth import make_song, shift_and_gain, write_audio

SR = 44100


def _fp(y: np.ndarray, sr: int = SR) -> Fingerprint:
    return fingerprint_signal(soxr.resample(y, sr, CHROMAPRINT_SR_HZ))


@pytest.fixture(scope="module")
def song():
    return make_song(5, duration_s=20.0)


@pytest.fixture(scope="module")
def mix_fp(song):
    return _fp(song.mix)


def test_items_shape_and_determinism(song):
    y = soxr.resample(song.mix, SR, CHROMAPRINT_SR_HZ)
    a = chromaprint_items(y)
    assert a.dtype == np.uint32
    # one item per 1365 samples, minus the classifier's context at the edges
    assert len(y) / 1365 - 25 < len(a) < len(y) / 1365
    assert np.array_equal(a, chromaprint_items(y))
    assert len(np.unique(a)) > len(a) // 2


def test_encode_decode_roundtrip(mix_fp):
    s = encode_items(mix_fp.items)
    assert isinstance(s, str) and s.startswith("AQAA")
    assert np.array_equal(decode_items(s), mix_fp.items)
    back = Fingerprint.decode(mix_fp.encode())
    assert np.array_equal(back.items, mix_fp.items)
    assert back.bands.shape == mix_fp.bands.shape == (mix_fp.bands.shape[0], N_BANDS)
    np.testing.assert_allclose(back.bands, mix_fp.bands, rtol=2e-3, atol=1e-6)


def test_ber_by_offset_matches_a_plain_loop():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**32, 50, dtype=np.uint32)
    b = rng.integers(0, 2**32, 43, dtype=np.uint32)
    offsets, ber, overlap = ber_by_offset(a, b, 60)
    for o, got, n in zip(offsets, ber, overlap):
        pairs = [(a[i], b[i + o]) for i in range(len(a)) if 0 <= i + o < len(b)]
        assert n == len(pairs)
        if pairs:
            bits = sum(bin(int(x) ^ int(y)).count("1") for x, y in pairs)
            assert got == pytest.approx(bits / (32 * len(pairs)))
        else:
            assert np.isnan(got)


@pytest.mark.parametrize("offset_s,gain_db", [(0.37, -3.0), (-0.52, 2.0), (0.0, 0.0), (1.3, -1.0)])
def test_offset_recovered_within_one_item(song, mix_fp, offset_s, gain_db):
    version = _fp(shift_and_gain(song.accompaniment, SR, offset_s, gain_db))
    m = compare(mix_fp.items, version.items, int(3.0 / ITEM_S))
    assert abs(m.offset_s - offset_s) < ITEM_S
    assert abs(m.offset_items * ITEM_S - offset_s) <= ITEM_S
    assert 0.1 < m.ber < 0.35
    assert m.second_ber - m.ber > 0.05  # a distinct minimum
    assert m.overlap_s == pytest.approx(m.overlap_items * ITEM_S)


def test_ber_orders_copy_instrumental_unrelated(song, mix_fp):
    copy = compare(mix_fp.items, _fp(song.mix).items, 24)
    inst = compare(mix_fp.items, _fp(song.accompaniment).items, 24)
    unrelated = compare(mix_fp.items, _fp(make_song(905, 20.0, tempo_bpm=song.tempo_bpm).mix).items, 24)
    assert copy.ber < 0.02 and copy.offset_items == 0
    assert copy.ber < inst.ber < unrelated.ber
    assert unrelated.ber > 0.38


def test_residual_share_second_check(song, mix_fp):
    copy = _fp(shift_and_gain(song.mix, SR, 0.0, -4.0))
    inst = _fp(song.accompaniment)
    other = _fp(make_song(906, 20.0).mix)
    r_copy, g_copy = residual_share(mix_fp, copy, 0)
    r_inst, _ = residual_share(mix_fp, inst, 0)
    r_other, _ = residual_share(mix_fp, other, compare(mix_fp.items, other.items, 24).offset_items)
    assert r_copy < 0.05 and g_copy == pytest.approx(-4.0, abs=0.3)
    assert r_copy < r_inst < r_other
    assert 0.1 < r_inst < 0.85


def test_fingerprint_file_and_errors(tmp_path, song):
    write_audio(tmp_path / "mix.flac", song.mix[: 10 * SR], SR, stereo=True)
    fp = fingerprint_file(str(tmp_path / "mix.flac"))
    assert fp.duration_s == pytest.approx(10.0, abs=0.01) and fp.channels == 2 and fp.source_sr_hz == SR
    short = fingerprint_file(str(tmp_path / "mix.flac"), max_seconds=6.0)
    assert short.duration_s == pytest.approx(6.0, abs=0.01) and len(short.items) < len(fp.items)
    assert np.array_equal(short.items[:20], fp.items[:20])

    write_audio(tmp_path / "silent.wav", np.zeros(8 * SR, np.float32), SR)
    write_audio(tmp_path / "short.wav", song.mix[: 2 * SR], SR)
    data = (tmp_path / "mix.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.flac").write_bytes(b"not audio at all" * 100)
    for name, why in [("missing.flac", "not found"), ("silent.wav", "silent"), ("short.wav", "too short"),
                      ("cut.flac", "truncated|corrupt|unreadable"), ("junk.flac", "unreadable|decod")]:
        with pytest.raises(AudioError, match=why) as info:
            fingerprint_file(str(tmp_path / name))
        assert name in str(info.value)


@pytest.mark.skipif(shutil.which("fpcalc") is None, reason="fpcalc not installed")
def test_in_process_items_agree_with_fpcalc(tmp_path, song):
    path = tmp_path / "mix.flac"
    write_audio(path, song.mix, SR)
    # fpcalc 1.5 with FFmpeg 5 may exit 3 after printing a complete fingerprint ("End of file"); parse stdout.
    out = subprocess.run(["fpcalc", "-raw", "-length", "0", str(path)], capture_output=True, text=True, check=False)
    line = next(x for x in out.stdout.splitlines() if x.startswith("FINGERPRINT="))
    ref = np.array([int(v) for v in line.split("=", 1)[1].split(",")], dtype=np.int64).astype(np.uint32)
    ours = fingerprint_file(str(path)).items
    m = compare(ours, ref, 4)
    assert m.offset_items == 0 and m.ber < 0.05
    assert abs(len(ours) - len(ref)) <= 2

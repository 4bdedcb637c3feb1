import numpy as np
import pytest
import soundfile as sf

from pairminer.synth import Stems, make_song, shift_and_gain, write_audio

SR = 44100


@pytest.fixture(scope="module")
def song() -> Stems:
    return make_song(7, duration_s=8.0)


def _band_share(y: np.ndarray, sr: int, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(len(y), 1 / sr)
    return float(spec[(f >= lo) & (f <= hi)].sum() / spec.sum())


def test_shapes_types_and_peak(song):
    assert song.sr_hz == SR
    assert song.vocals.dtype == np.float32 and song.accompaniment.dtype == np.float32
    assert song.vocals.shape == song.accompaniment.shape == (8 * SR,)
    mix = song.mix
    assert mix.dtype == np.float32
    np.testing.assert_allclose(mix, song.vocals + song.accompaniment, atol=1e-7)
    assert 0.8 < np.max(np.abs(mix)) <= 0.9
    assert 80 <= song.tempo_bpm <= 140


def test_deterministic_per_seed_and_seeds_differ(song):
    again = make_song(7, duration_s=8.0)
    assert np.array_equal(again.vocals, song.vocals)
    assert np.array_equal(again.accompaniment, song.accompaniment)
    other = make_song(8, duration_s=8.0)
    c = np.corrcoef(other.mix, song.mix)[0, 1]
    assert abs(c) < 0.2


def test_tempo_is_honoured():
    s = make_song(3, duration_s=4.0, tempo_bpm=123.0)
    assert s.tempo_bpm == 123.0


def test_vocals_are_voice_like(song):
    v = song.vocals
    # Most vocal energy in the voice band, almost nothing in the sub-bass where kick and bass live.
    assert _band_share(v, SR, 120, 4000) > 0.85
    assert _band_share(v, SR, 0, 100) < 0.01
    # A pitched harmonic source: the autocorrelation of a voiced frame peaks at a voice f0 (100-700 Hz).
    active = np.flatnonzero(np.abs(v) > 0.05 * np.abs(v).max())
    frame = v[active[len(active) // 2]:][:4096]
    ac = np.correlate(frame, frame, "full")[len(frame) - 1:]
    lag = np.argmax(ac[SR // 700: SR // 100]) + SR // 700
    assert ac[lag] > 0.5 * ac[0]
    # Phrases: the voice rests (an intro and gaps), unlike the accompaniment.
    frames = v[: len(v) // 1024 * 1024].reshape(-1, 1024)
    rms = np.sqrt((frames**2).mean(axis=1))
    assert (rms < 1e-3 * rms.max()).mean() > 0.1
    assert (rms > 0.1 * rms.max()).mean() > 0.3


def test_accompaniment_has_bass_and_drums(song):
    a = song.accompaniment
    assert _band_share(a, SR, 30, 250) > 0.2  # bass + kick
    assert _band_share(a, SR, 6000, 20000) > 0.002  # hi-hats
    # Drum onsets give a strongly fluctuating envelope at beat rate.
    env = np.abs(a[: len(a) // 512 * 512]).reshape(-1, 512).max(axis=1)
    assert env.std() / env.mean() > 0.2


@pytest.mark.parametrize("offset_s", [0.25, -0.1, 0.0])
def test_shift_and_gain(offset_s):
    rng = np.random.default_rng(0)
    y = rng.standard_normal(SR).astype(np.float32)
    out = shift_and_gain(y, SR, offset_s, -6.0)
    assert out.shape == y.shape and out.dtype == np.float32
    g = 10 ** (-6 / 20)
    k = int(round(offset_s * SR))
    if k >= 0:
        np.testing.assert_allclose(out[k:], g * y[: len(y) - k], rtol=1e-5)
        assert not out[:k].any()
    else:
        np.testing.assert_allclose(out[: len(y) + k], g * y[-k:], rtol=1e-5)
        assert not out[len(y) + k:].any()


def test_write_audio_roundtrip(tmp_path, song):
    y = song.mix[: SR * 2]
    write_audio(tmp_path / "a.flac", y, SR)
    back, sr = sf.read(tmp_path / "a.flac", dtype="float32")
    assert sr == SR and back.shape == y.shape
    assert np.max(np.abs(back - y)) < 2e-4  # 16-bit
    write_audio(tmp_path / "b.wav", y, SR, stereo=True)
    st, _ = sf.read(tmp_path / "b.wav", dtype="float32")
    assert st.shape == (len(y), 2)
    assert not np.allclose(st[:, 0], st[:, 1])
    assert np.corrcoef(st.mean(axis=1), y)[0, 1] > 0.99
    with pytest.raises(ValueError, match="flac or .wav"):
        write_audio(tmp_path / "c.mp3", y, SR)

"""Alignment (GCC-PHAT offset refinement) and gain matching on generated songs with known truth."""

from __future__ import annotations

import numpy as np
import pytest

from pairminer.targets.align import estimate_gain, refine_offset, shift_onto
from pairminer.synth import make_song, shift_and_gain

SR = 8192


@pytest.fixture(scope="module")
def songs():
    return [make_song(seed, duration_s=12.0, sr_hz=SR) for seed in (11, 12)]


def _mag(y):
    import librosa

    return np.abs(librosa.stft(y, n_fft=1024, hop_length=768, window="hann", center=True))


def test_shift_onto_positive_and_negative():
    v = np.arange(10, dtype=np.float32) + 1
    # version starts 3 samples later: out[n] = v[n + 3]
    np.testing.assert_array_equal(shift_onto(v, 3, 8), [4, 5, 6, 7, 8, 9, 10, 0])
    # version starts 2 samples earlier: zero-padded at the start
    np.testing.assert_array_equal(shift_onto(v, -2, 6), [0, 0, 1, 2, 3, 4])
    assert shift_onto(v, 20, 5).tolist() == [0] * 5


@pytest.mark.parametrize("true_s,coarse_err_s", [(0.3, 0.13), (0.3, -0.15), (-0.21, 0.1), (0.0, 0.0)])
def test_refine_offset_recovers_true_lag_with_vocal_only_in_mix(songs, true_s, coarse_err_s):
    for st in songs:
        inst = shift_and_gain(st.accompaniment, SR, true_s, -2.0)
        al = refine_offset(st.mix, inst, SR, true_s + coarse_err_s, search_window_s=0.5)
        assert al.offset_samples == int(round(true_s * SR)), al
        assert al.offset_s == pytest.approx(al.offset_samples / SR)
        assert al.peak_ratio > 2.0 and not al.at_edge


def test_refine_offset_acapella(songs):
    st = songs[0]
    aca = shift_and_gain(st.vocals, SR, 0.25, 3.0)
    al = refine_offset(st.mix, aca, SR, 0.25 - 0.12, search_window_s=0.5)
    assert al.offset_samples == int(round(0.25 * SR))


def test_refine_offset_outside_window_is_flagged(songs):
    st = songs[0]
    inst = shift_and_gain(st.accompaniment, SR, 0.8, 0.0)
    al = refine_offset(st.mix, inst, SR, 0.0, search_window_s=0.2)
    assert al.offset_samples != int(round(0.8 * SR))
    assert abs(al.offset_s) <= 0.2 + 1 / SR


@pytest.mark.parametrize("gain_db", [-2.0, 4.5])
def test_estimate_gain_ignores_the_voice(songs, gain_db):
    for st in songs:
        mix_mag = _mag(st.mix)
        inst_mag = _mag(st.accompaniment * np.float32(10 ** (gain_db / 20)))
        g = estimate_gain(mix_mag, inst_mag)
        assert 20 * np.log10(g) == pytest.approx(-gain_db, abs=0.1)
        # A plain least-squares fit over all bins is pulled up by the voice: the test can tell them apart.
        ls = float((mix_mag * inst_mag).sum() / (inst_mag**2).sum())
        assert abs(20 * np.log10(ls) + gain_db) > 0.3


def test_estimate_gain_acapella(songs):
    st = songs[1]
    g = estimate_gain(_mag(st.mix), _mag(st.vocals * np.float32(10 ** (3 / 20))))
    assert 20 * np.log10(g) == pytest.approx(-3.0, abs=0.3)


def test_estimate_gain_silent_version_is_nan():
    z = np.zeros((513, 20), np.float32)
    assert np.isnan(estimate_gain(np.ones_like(z), z))

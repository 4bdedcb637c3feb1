"""The stems core on synthetic pairs with true stems: each fault recovered, stems exact, fallbacks.

Short songs (20 s) keep the module well under a minute; the benchmark (benchmarks/stems_quality.py)
covers more pairs at full length.
"""

import numpy as np
import pytest

from pairminer.errors import AudioError
from pairminer.stems.align import AlignParams, conform, naive_subtract, subtract_pair
from pairminer.synth_stems import make_pair

DUR = 20.0
SEED = 5  # neither the calibration (1) nor the held-out (2) seed


def _sdr(ref, est):
    return 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((ref - est.astype(np.float64)) ** 2))


def _run(name, index=0, **kw):
    p = make_pair(name, SEED, index, duration_s=DUR)
    v = conform(p.version, p.version_sr, p.version.shape[1], p.sr, 2)
    r = subtract_pair(p.mix, v, p.sr, p.kind, coarse_offset_s=p.coarse_offset_s, **kw)
    ref = p.vocals[r.mix_start_sample:r.mix_start_sample + r.n_samples]
    return p, v, r, ref


def _naive_sdr(p, v, r, ref):
    n = naive_subtract(p.mix, v, p.sr, p.kind, p.coarse_offset_s)
    full = p.mix.copy()
    full[n.mix_start_sample:n.mix_start_sample + n.n_samples] = n.vocals
    return _sdr(ref, full[r.mix_start_sample:r.mix_start_sample + r.n_samples])


def test_drift_is_measured_and_corrected():
    p, v, r, ref = _run("drift")
    assert abs(p.drift_ppm) >= 20
    assert abs(r.drift_ppm - p.drift_ppm) < 5
    assert r.method == "waveform"
    ours, naive = _sdr(ref, r.vocals), _naive_sdr(p, v, r, ref)
    assert ours > 20 and naive < 10, (ours, naive)


def test_inverted_polarity():
    p, v, r, ref = _run("polarity")
    assert r.polarity == -1
    ours, naive = _sdr(ref, r.vocals), _naive_sdr(p, v, r, ref)
    assert ours > 30 and naive < 10, (ours, naive)


def test_fractional_lag_within_a_tenth_of_a_sample():
    p, v, r, ref = _run("fractional")
    assert abs(p.lag_samples - round(p.lag_samples)) > 0.05  # the planted lag is fractional
    assert abs(r.lag_samples - p.lag_samples) < 0.1, (r.lag_samples, p.lag_samples)
    assert _sdr(ref, r.vocals) > 25


def test_separate_eq_is_matched_by_the_filter():
    p, v, r, ref = _run("eq")
    assert r.filter_dev_db > 0.5 and "oct" in r.model
    assert _sdr(ref, r.vocals) > _naive_sdr(p, v, r, ref) + 10


def test_same_master_does_not_lose_to_naive_and_stems_are_exact():
    p, v, r, ref = _run("same_master")
    assert r.method == "waveform" and r.cancellation_db > 40
    assert _sdr(ref, r.vocals) >= _naive_sdr(p, v, r, ref) - 0.5
    assert r.vocals.dtype == np.float32 and r.vocals.shape == r.mixture.shape == (r.n_samples, 2)
    assert np.array_equal(r.vocals + r.instrumental, r.mixture)
    mix = p.mix[r.mix_start_sample:r.mix_start_sample + r.n_samples]
    assert np.max(np.abs(r.mixture - mix)) < 1e-6


def test_acapella_swaps_roles():
    p, v, r, ref = _run("acapella")
    assert p.kind == "acapella" and r.mix_start_sample > 0  # the acapella starts late
    assert r.n_samples < len(p.mix) - r.mix_start_sample  # and ends early
    assert np.array_equal(r.vocals + r.instrumental, r.mixture)
    assert _sdr(ref, r.vocals) > 20
    acc = p.accompaniment[r.mix_start_sample:r.mix_start_sample + r.n_samples]
    assert _sdr(acc, r.instrumental) > 20


def test_different_mix_falls_back_to_spectral_with_a_reason():
    p, v, r, ref = _run("different_mix")
    assert r.method == "spectral"
    assert "cancellation" in r.reason and r.cancellation_db < AlignParams().min_cancellation_db
    assert np.array_equal(r.vocals + r.instrumental, r.mixture)


def test_conform_layouts():
    x = np.random.default_rng(0).standard_normal((48000, 1)).astype(np.float32) * 0.1
    st = conform(x, 48000, 1, 44100, 2)
    assert st.shape == (44100, 2) and st.dtype == np.float32
    assert np.array_equal(st[:, 0], st[:, 1])
    mono = conform(np.stack([x[:, 0], -x[:, 0]], axis=1), 44100, 2, 44100, 1)
    assert mono.shape == (48000, 1) and np.allclose(mono, 0)
    with pytest.raises(AudioError, match="6-channel"):
        conform(np.zeros((1000, 6), np.float32), 44100, 6, 44100, 2)
    with pytest.raises(AudioError):
        conform(np.zeros((1000, 2), np.float32), 44100, 1, 44100, 2)


def test_mismatched_layout_and_no_overlap_raise():
    mix = np.zeros((44100, 2), np.float32)
    with pytest.raises(AudioError, match="conform"):
        subtract_pair(mix, np.zeros((44100, 1), np.float32), 44100, "instrumental")
    with pytest.raises(ValueError):
        subtract_pair(mix, mix, 44100, "remix")

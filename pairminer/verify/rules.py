"""The verify rule: compare two fingerprints and classify the pair (pure functions, no I/O).

The default thresholds come from the realistic generated cases of `pairminer.synth_cases`,
calibrated on one seed and reported on a held-out one (see docs/verify.md for the distributions).
"""

from __future__ import annotations

import re

import numpy as np

from .config import VerifyConfig
from .fingerprint import ITEM_S, Fingerprint, compare, envelope_peak_ratio, residual_stats

STATUSES = ("verified", "too_similar", "too_different", "error")
RESULT_COLUMNS = ("status", "ber", "offset_s", "overlap_s", "overlap_share", "residual_share", "excess_share",
                  "version_gain_db", "second_ber", "align_peak_ratio", "search_radius_s", "reason")
_FLOAT_RESULTS = ("ber", "offset_s", "overlap_s", "overlap_share", "residual_share", "excess_share",
                  "version_gain_db", "second_ber", "align_peak_ratio", "search_radius_s")
# Error categories for the report, matched against AudioError messages (first match wins).
_ERROR_CATEGORIES = (
    ("no audio path", r"no audio_path"),
    ("path refused", r"escapes --audio-root|refused"),
    ("too long", r"over the length cap"),
    ("timeout", r"longer than .* and was stopped"),
    ("file not found", r"file not found|cannot fetch|does not exist"),
    ("zero-byte file", r"zero-byte"),
    ("truncated", r"truncated"),
    ("silent", r"silent"),
    ("too short", r"too short|no audio frames"),
    ("unreadable", r"unreadable|not a decodable|cannot decode|NaN|folder"),
)




def classify(ber: float, overlap_s: float, config: VerifyConfig) -> tuple[str, str | None]:
    """The seed's BER-only rule, kept for comparison (benchmarks/calibrate_verify.py --seed-rule).

    The stage decides with `classify_pair`, which also uses the overlap share, the excess share and the
    alignment peak ratio.
    """
    if not np.isfinite(ber) or overlap_s < config.min_overlap_s:
        return "too_different", (f"overlap {overlap_s:.1f} s at the best offset is below min_overlap_s "
                                 f"{config.min_overlap_s:g} s")
    if ber > config.max_ber:
        return "too_different", f"BER {ber:.3f} above max_ber {config.max_ber:g}: not the same recording"
    if ber < config.min_ber:
        return "too_similar", (f"BER {ber:.3f} below min_ber {config.min_ber:g}: the version is the mix's own "
                               "master (metadata confusion)")
    return "verified", None


def search_radius_s(delta_s: float, config: VerifyConfig) -> tuple[float, bool]:
    """Offset search radius for a pair: |duration delta| + margin, capped at `max_offset_s`.

    Returns:
        (radius in seconds, True when the cap cut it).
    """
    want = abs(float(delta_s)) + config.offset_margin_s
    return (min(want, config.max_offset_s), want > config.max_offset_s)


def classify_pair(rec: dict, config: VerifyConfig, kind: str = "instrumental") -> tuple[str, str | None]:
    """Status and reason of a compared pair (both files decoded fine). The rule (docs/verify.md):

    1. too_different: the overlap at the best offset is under `min_overlap_s`, or under
       `min_overlap_share` of the shorter track;
    2. too_different: BER above `max_ber` (`max_ber_acapella` for acapellas: a voice alone shares fewer
       fingerprint bits with its mix than a band does), or, in the ambiguous zone of BER above
       `peak_check_ber`, a GCC-PHAT envelope peak ratio under `min_peak_ratio`
       (`min_peak_ratio_acapella`): no sharp alignment, not the same recording;
    3. too_similar: BER under `min_ber` and an excess share under `max_copy_excess_share`: nothing of
       the mix is missing from the version, it is the mix itself (another master or encode);
    4. verified.
    """
    ber, overlap_s = rec["ber"], rec["overlap_s"]
    acapella = kind == "acapella"
    if not np.isfinite(ber) or overlap_s < config.min_overlap_s:
        return "too_different", (f"overlap {overlap_s:.1f} s at the best offset is below min_overlap_s "
                                 f"{config.min_overlap_s:g} s")
    if rec["overlap_share"] < config.min_overlap_share:
        return "too_different", (f"overlap {overlap_s:.1f} s is {rec['overlap_share']:.0%} of the shorter track, "
                                 f"below min_overlap_share {config.min_overlap_share:g}")
    max_ber, ber_name = ((config.max_ber_acapella, "max_ber_acapella") if acapella else (config.max_ber, "max_ber"))
    if ber > max_ber:
        return "too_different", f"BER {ber:.3f} above {ber_name} {max_ber:g}: not the same recording"
    peak = rec.get("align_peak_ratio", np.nan)
    min_peak, peak_name = ((config.min_peak_ratio_acapella, "min_peak_ratio_acapella") if acapella
                           else (config.min_peak_ratio, "min_peak_ratio"))
    if ber > config.peak_check_ber and np.isfinite(peak) and peak < min_peak:
        return "too_different", (f"BER {ber:.3f} is above peak_check_ber {config.peak_check_ber:g} and the alignment "
                                 f"peak ratio {peak:.2f} below {peak_name} {min_peak:g}: no sharp alignment, not the "
                                 "same recording")
    excess = rec.get("excess_share", np.nan)
    if ber < config.min_ber and not (np.isfinite(excess) and excess >= config.max_copy_excess_share):
        return "too_similar", (f"BER {ber:.3f} below min_ber {config.min_ber:g} and excess share {excess:.4f} below "
                               f"max_copy_excess_share {config.max_copy_excess_share:g}: the version is the mix "
                               "itself (metadata confusion)")
    return "verified", None


def compare_pairs(pairs: list[tuple[int, float]], mix_fps: list[Fingerprint], ver_fps: list[Fingerprint],
                  config: VerifyConfig, kinds: list[str] | None = None) -> list[dict]:
    """Compare a chunk of pairs. `pairs` holds (row index, duration_delta_s) aligned with the fingerprints."""
    out = []
    kinds = kinds or ["instrumental"] * len(pairs)
    for (row, delta_s), m, v, kind in zip(pairs, mix_fps, ver_fps, kinds):
        radius_s, capped = search_radius_s(delta_s, config)
        radius = int(np.ceil(radius_s / ITEM_S))
        shorter_s = min(m.duration_s, v.duration_s)
        need_s = max(config.min_overlap_s, config.min_overlap_share * shorter_s)
        match = compare(m.items, v.items, radius, min_overlap_items=int(np.ceil(need_s / ITEM_S)))
        rs = residual_stats(m, v, match.offset_s / ITEM_S)
        peak = envelope_peak_ratio(m, v, match.offset_s / ITEM_S, radius)
        overlap_share = match.overlap_s / shorter_s if shorter_s > 0 else 0.0
        rec = {"row": row, "ber": match.ber, "offset_s": match.offset_s, "overlap_s": match.overlap_s,
               "overlap_share": float(min(1.0, overlap_share)), "residual_share": rs["residual_share"],
               "excess_share": rs["excess_share"], "version_gain_db": rs["version_gain_db"],
               "second_ber": match.second_ber,
               "align_peak_ratio": float(min(peak, 1e6)) if np.isfinite(peak) or peak == np.inf else np.nan,
               "search_radius_s": radius_s, "mix_s": m.duration_s}
        status, reason = classify_pair(rec, config, kind)
        if capped and status != "verified":
            reason = (reason or "") + (f"; the offset search was capped at max_offset_s {config.max_offset_s:g} s "
                                       f"(|duration delta| + margin is {abs(delta_s) + config.offset_margin_s:.0f} s)")
        rec.update(status=status, reason=reason)
        out.append(rec)
    return out


def error_category(reason: str) -> str:
    for name, pattern in _ERROR_CATEGORIES:
        if re.search(pattern, reason or "", flags=re.IGNORECASE):
            return name
    return "other"

"""One pair, every stage's word on it: the library side of `pairminer show PAIR_ID OUT`.

`show_pair` finds the pair in candidates.parquet, near_misses.parquet, verified.parquet and the
targets manifest, states each stage's verdict, and writes the pair's clips (mix, aligned version,
and for pairs with targets the instrumental and vocal targets resynthesised with the mix phase), its
spectrogram picture and a ``pair.json`` with all of it into a folder.
"""

from __future__ import annotations

import difflib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import storage as pio
from ..errors import InputError, PairminerError
from .clips import audio_codec, encode_pair, pair_audio, stft_settings
from .load import TARGETS_DIR, StageOutputs, _jsonable, load_outputs

log = logging.getLogger(__name__)

_META = ("pair_id", "artist", "mix_track_id", "mix_title", "version_track_id", "version_title", "version_kind",
         "genre", "mix_duration_s", "version_duration_s", "mix_audio_path", "version_audio_path")


@dataclass
class ShowResult:
    """What `show_pair` found and wrote.

    Attributes:
        pair_id: The pair.
        folder: Where its files went.
        metadata: The pair's catalog facts (artist, titles, durations, audio paths).
        verdicts: One dict per stage: stage, verdict (a word), detail (a sentence).
        files: Names of the files written into `folder`.
        audio_note: Why there are no clips, or "".
    """

    pair_id: str
    folder: str
    metadata: dict
    verdicts: list[dict]
    files: list[str] = field(default_factory=list)
    audio_note: str = ""


def _row(df, col: str, value: str) -> dict | None:
    if df is None or col not in df:
        return None
    hit = df[df[col].astype(str) == value]
    return {k: _jsonable(v) for k, v in hit.iloc[0].items()} if len(hit) else None


def _fmt(x, spec: str = ".3f") -> str:
    return "?" if x is None else format(x, spec)


def verdicts(stages: dict[str, StageOutputs], pair_id: str, version_id: str | None) -> list[dict]:
    """Each stage's verdict on one pair (see `ShowResult.verdicts`)."""
    d, v, t = stages["discover"], stages["verify"], stages["targets"]
    out = []
    cand = _row(d.tables.get("candidates"), "pair_id", pair_id)
    near = _row(d.tables.get("near_misses"), "version_track_id", version_id) if version_id else None
    if cand is not None:
        out.append({"stage": "discover", "verdict": "candidate",
                    "detail": f"title score {_fmt(cand.get('title_score'), '.1f')}, duration delta "
                              f"{_fmt(cand.get('duration_delta_s'))} s, {cand.get('n_near_best', '?')} original(s) "
                              "near the best score"})
    elif near is not None:
        out.append({"stage": "discover", "verdict": "near miss",
                    "detail": f"{near.get('reason')} (delta {_fmt(near.get('delta_s'))} s, score "
                              f"{_fmt(near.get('score'), '.1f')})"})
    else:
        out.append({"stage": "discover", "verdict": "not run" if not d.present else "unknown",
                    "detail": "discover has not run in OUT" if not d.present else
                    "not in candidates.parquet (only verify or targets outputs name it)"})
    ver = _row(v.tables.get("verified"), "pair_id", pair_id)
    if ver is not None:
        detail = f"BER {_fmt(ver.get('ber'))}, offset {_fmt(ver.get('offset_s'))} s, overlap " \
                 f"{_fmt(ver.get('overlap_s'), '.1f')} s"
        if ver.get("reason"):
            detail += f"; {ver['reason']}"
        out.append({"stage": "verify", "verdict": str(ver.get("status")), "detail": detail})
    else:
        out.append({"stage": "verify", "verdict": "not run" if not v.present else "absent",
                    "detail": "verify has not run in OUT" if not v.present else "not in verified.parquet"})
    man = _row(t.tables.get("manifest"), "pair_id", pair_id)
    fails = t.report.get("failures") if isinstance(t.report.get("failures"), list) else []
    failed = next((f for f in fails if isinstance(f, dict) and str(f.get("pair_id")) == pair_id), None)
    if man is not None:
        out.append({"stage": "targets", "verdict": "written",
                    "detail": f"{man.get('n_frames')} frames in {man.get('shard')} from frame {man.get('start_frame')}, "
                              f"split {man.get('split')}, offset {_fmt(man.get('offset_s'))} s, gain "
                              f"{_fmt(man.get('gain_db'), '+.2f')} dB, vocal energy ratio "
                              f"{_fmt(man.get('vocal_energy_ratio'))}"})
    elif failed is not None:
        out.append({"stage": "targets", "verdict": "failed", "detail": str(failed.get("reason"))})
    elif not t.present:
        out.append({"stage": "targets", "verdict": "not run", "detail": "targets has not run in OUT"})
    elif ver is not None and ver.get("status") != "verified":
        out.append({"stage": "targets", "verdict": "skipped", "detail": f"verify says {ver.get('status')}"})
    else:
        out.append({"stage": "targets", "verdict": "absent", "detail": "not in the manifest"})
    return out


def _known_ids(stages: dict[str, StageOutputs]) -> list[str]:
    ids: set[str] = set()
    for stage, role in (("discover", "candidates"), ("verify", "verified"), ("targets", "manifest")):
        df = stages[stage].tables.get(role)
        if df is not None and "pair_id" in df:
            ids.update(df["pair_id"].astype(str))
    return sorted(ids)


def safe_name(pair_id: str) -> str:
    """A folder name for a pair id: characters other than letters, digits, '.', '_' and '-' become '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", pair_id).strip(".") or "pair"


def show_pair(out_dir: str, pair_id: str, dest: str | None = None, *, clip_s: float = 10.0,
              bitrate_kbps: int = 64, audio_root: str | None = None) -> ShowResult:
    """Find one pair in OUT, state every stage's verdict and write its clips and spectrogram to `dest`.

    Args:
        out_dir: The pipeline's output folder.
        pair_id: As in candidates/verified.parquet ('<mix_track_id>__<version_track_id>').
        dest: Folder for the files (default OUT/show/<pair_id>).
        clip_s: Length of the clips (s), cut where the vocal target is loudest.
        bitrate_kbps: Bitrate of the clips.
        audio_root: Resolve relative audio paths against it (default: verify's audio_root).

    Raises:
        InputError: OUT holds no pairminer output, or no table names the pair.
    """
    if not pio.exists(out_dir):
        raise InputError(f"{out_dir} does not exist; give the -o folder of `pairminer discover`")
    stages = load_outputs(str(out_dir))
    ids = _known_ids(stages)
    if not ids:
        raise InputError(f"{out_dir} holds no pair table (candidates.parquet, verified.parquet or "
                         "targets/manifest.parquet); run `pairminer discover CATALOG -o OUT` first")
    if pair_id not in ids:
        near = difflib.get_close_matches(pair_id, ids, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(near)}?" if near else f"; e.g. {ids[0]}"
        raise InputError(f"no pair {pair_id!r} in {out_dir}{hint}")
    row = (_row(stages["verify"].tables.get("verified"), "pair_id", pair_id)
           or _row(stages["discover"].tables.get("candidates"), "pair_id", pair_id)
           or _row(stages["targets"].tables.get("manifest"), "pair_id", pair_id))
    man = _row(stages["targets"].tables.get("manifest"), "pair_id", pair_id)
    meta = {k: row.get(k) for k in _META if k in row}
    res = ShowResult(pair_id=pair_id, folder="", metadata=meta,
                     verdicts=verdicts(stages, pair_id, str(row.get("version_track_id") or "") or None))
    folder = dest or pio.join(out_dir, "show", safe_name(pair_id))
    pio.ensure_dir(folder)
    res.folder = str(folder)
    codec = audio_codec()
    vconf = stages["verify"].report.get("config")
    root = audio_root or (vconf.get("audio_root") if isinstance(vconf, dict) else None)
    if codec is None:
        res.audio_note = "ffmpeg with an Opus or MP3 encoder is not installed: no clips"
    else:
        try:
            targets_dir = str(Path(out_dir) / TARGETS_DIR)
            pa = pair_audio(row, man, targets_dir, stft_settings(stages), clip_s, root)
            for name, blob in encode_pair(pa, bitrate_kbps, codec).items():
                fname = f"{name}.{codec[1]}"
                pio.write_bytes(pio.join(folder, fname), blob)
                res.files.append(fname)
            from .plots import plot_pair_spectra

            pio.write_bytes(pio.join(folder, "spectrogram.png"),
                            plot_pair_spectra(pa.spectra, pa.sr_hz, pa.hop, pa.start_s, pa.from_targets))
            res.files.append("spectrogram.png")
            meta["clip_start_s"], meta["clip_s"] = pa.start_s, clip_s
            meta["targets_from_shard"] = pa.from_targets
        except PairminerError as exc:
            res.audio_note = f"no clips: {exc}"
            log.warning("show %s: %s", pair_id, res.audio_note)
    pio.write_json(pio.join(folder, "pair.json"), {"pair_id": pair_id, "metadata": meta, "verdicts": res.verdicts,
                                                   "files": res.files, "audio_note": res.audio_note})
    res.files.append("pair.json")
    return res

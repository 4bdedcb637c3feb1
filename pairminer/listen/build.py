"""Build a listening test: sample tracks and excerpts, loudness-match, encode, write the page and key.

    build_test(["separated/modelA", "separated/modelB"], "test", ListenConfig(), mix_dir="mixes")

Writes `test/listen.html` (one self-contained page: give it to raters) and `test/key.json` (which
sample is which system: keep it for `pairminer listen --collect`). Everything random (the tracks, the
excerpts, the order of trials and samples, the sample ids) comes from `config.seed`, so the same inputs
and seed give the same test and the same test id.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import storage as pio
from ..errors import AudioError, ConfigError, InputError
from . import KEY_FORMAT, PAGE_VERSION
from . import signal as sig
from .config import ListenConfig
from .inputs import Inputs, gather

log = logging.getLogger(__name__)
PAGE_OVERHEAD = 64 * 1024   # the page's HTML, script and JSON around the audio, bytes (generous)
FADE_S = 0.02


@dataclass
class BuildResult:
    test_id: str
    page_path: str
    key_path: str
    tracks: list[str]
    trials: int
    stimuli: int
    page_bytes: int
    codec: str
    loudness: str
    left_out: list[dict] = field(default_factory=list)
    counts: dict = field(default_factory=dict)

    def summary(self) -> str:
        c = self.counts
        lines = [f"listen: test {self.test_id}: {len(self.tracks)} track(s), {self.trials} trial(s), {self.stimuli} "
                 f"sample(s) to rate; {self.page_bytes / 2**20:.1f} MiB page ({self.codec}; loudness {self.loudness})",
                 f"tracks: {c['found']} found = {c['included']} on the page + {c['not_sampled']} not sampled + "
                 f"{c['unusable']} unusable + {c['over_size']} over --max-mb"]
        for lo in self.left_out:
            lines.append(f"left out {lo['track']}: {lo['reason']}")
        lines.append(f"-> {self.page_path} (for raters), {self.key_path} (keep it: --collect needs it)")
        return "\n".join(lines)


def _eligible(inp: Inputs, config: ListenConfig) -> tuple[dict[str, list[str]], list[dict]]:
    """track -> the sources every system has for it; and the unusable tracks with the reason."""
    # the tracks of the systems (a mix folder may hold many more songs; those are not "found")
    found = sorted(set().union(*(set(t) for t in inp.systems.values())) if inp.systems else set(inp.mixes))
    ok, bad = {}, []
    for track in found:
        if track not in inp.mixes:
            bad.append({"track": track, "reason": "no mix for it (--mix-dir, or mixture.* in --references/--stems)"})
            continue
        missing = [s for s, tracks in inp.systems.items() if track not in tracks]
        if missing:
            bad.append({"track": track, "reason": f"not in system(s) {', '.join(missing)}"})
            continue
        srcs = [src for src in config.sources if all(src in tracks[track] for tracks in inp.systems.values())]
        if not srcs:
            bad.append({"track": track, "reason": f"no system has all of its {'/'.join(config.sources)} files"})
            continue
        ok[track] = srcs
    return ok, bad


def _fit(y: np.ndarray, n: int, ch: int) -> np.ndarray:
    y = y[:n]
    if len(y) < n:
        y = np.concatenate([y, np.zeros((n - len(y), y.shape[1]), np.float32)])
    if y.shape[1] != ch:
        y = np.repeat(y[:, :1], ch, axis=1) if y.shape[1] == 1 else y[:, :ch]
    return y


def _start(mix: np.ndarray, length: int, rng: np.random.Generator) -> int:
    """A seeded excerpt start among the louder half of the mix (no silent intro as the excerpt)."""
    n = len(mix)
    if n <= length:
        return 0
    hop = max(1, sig.RATE // 4)
    starts = np.arange(0, n - length + 1, hop)
    power = np.cumsum(np.concatenate([[0.0], np.mean(mix.astype(np.float64) ** 2, axis=1)]))
    energy = power[starts + length] - power[starts]
    cand = starts[energy >= np.median(energy)]
    return int(rng.choice(cand))


def _fade(y: np.ndarray) -> np.ndarray:
    k = min(len(y) // 4, int(FADE_S * sig.RATE))
    if k > 0:
        ramp = np.linspace(0.0, 1.0, k, dtype=np.float32)[:, None]
        y = y.copy()
        y[:k] *= ramp
        y[-k:] *= ramp[::-1]
    return y


def _track_items(track: str, srcs: list[str], inp: Inputs, config: ListenConfig, rng: np.random.Generator):
    """Decode a track's files and cut the same excerpt from each: (items, meta). items: role -> signal,
    roles "mix", "anchor", (src, "system", name), (src, "hidden_reference")."""
    mix = sig.load(str(inp.mixes[track]))
    files = {(src, "system", name): tracks[track][src] for name, tracks in inp.systems.items() for src in srcs}
    ref = inp.references.get(track, {})
    if config.hidden_reference:
        files.update({(src, "hidden_reference"): ref[src] for src in srcs if src in ref})
    sigs = {k: sig.load(str(p)) for k, p in files.items()}
    n = min([len(mix)] + [len(y) for y in sigs.values()])
    if n < sig.RATE:
        raise AudioError(f"shorter than 1 s once the files are matched ({n / sig.RATE:.2f} s)")
    ch = min(2, max([mix.shape[1]] + [y.shape[1] for y in sigs.values()]))
    length = min(n, int(round(config.excerpt_s * sig.RATE)))
    s0 = _start(mix[:n], length, rng)
    items = {"mix": _fit(mix[s0:s0 + length], length, ch)}
    items.update({k: _fit(y[s0:s0 + length], length, ch) for k, y in sigs.items()})
    if config.anchor:
        items["anchor"] = sig.lowpass(items["mix"], config.anchor_hz)
    if config.mixture_system:
        items.update({(src, "system", "mixture"): items["mix"].copy() for src in srcs})
    # loudness matching: every item of the track to the target, lowered together if a peak would clip
    gains, notes = {}, []
    for k, y in items.items():
        lufs = sig.loudness_lufs(y)
        if not np.isfinite(lufs) or lufs < -70:
            gains[k] = 0.0
            notes.append(f"{track}: a sample is (near) silent, left at its level")
        else:
            gains[k] = config.target_lufs - lufs
    peak = max(float(np.max(np.abs(y))) * 10 ** (gains[k] / 20) for k, y in items.items())
    shift = min(0.0, 20 * np.log10(0.98 / peak)) if peak > 0 else 0.0
    if shift < 0:
        notes.append(f"{track}: matched {-shift:.1f} dB below {config.target_lufs:g} LUFS so that no peak clips")
    out = {k: _fade(y * np.float32(10 ** ((gains[k] + shift) / 20))) for k, y in items.items()}
    meta = {"track": track, "start_s": round(s0 / sig.RATE, 3), "duration_s": round(length / sig.RATE, 3),
            "channels": ch, "loudness_lufs": round(config.target_lufs + shift, 2), "notes": notes}
    return out, meta


def build_test(system_dirs: list[str], out_dir: str, config: ListenConfig | None = None, *,
               names: list[str] | tuple = (), mix_dir: str | None = None, references: str | None = None,
               stems: str | None = None, title: str = "Listening test", progress: bool = True) -> BuildResult:
    """Build the page and key of a listening test into `out_dir` (see the module docstring)."""
    from .page import render_page

    config = config or ListenConfig()
    if not system_dirs and not stems and not config.mixture_system:
        raise ConfigError("give at least one system folder (the outputs of `pairminer separate`), or --stems")
    inp = gather(list(system_dirs), list(names), mix_dir=mix_dir, references=references, stems=stems,
                 mixture_system=config.mixture_system)
    ok, unusable = _eligible(inp, config)
    if not ok:
        why = "; ".join(f"{u['track']}: {u['reason']}" for u in unusable[:3])
        raise InputError(f"no track can be tested: no track has a mix and every system's outputs ({why})")
    rng = np.random.default_rng([config.seed, 23])
    order = [str(t) for t in rng.permutation(sorted(ok))]
    sampled, not_sampled = order[: config.tracks], order[config.tracks:]
    codec = sig.codec()
    budget = config.max_mb * 2**20 - PAGE_OVERHEAD
    say = log.info if progress else log.debug
    tracks, blobs, used, over = [], {}, 0, []
    pool = ThreadPoolExecutor(max_workers=2)
    try:
        for track in sampled:
            if over:  # the page is full: the rest is left out without decoding it
                over.append({"track": track, "reason": f"over --max-mb {config.max_mb:g} (the page was full)"})
                continue
            try:
                items, meta = _track_items(track, ok[track], inp, config, rng)
            except (AudioError, InputError) as exc:
                unusable.append({"track": track, "reason": str(exc)})
                continue
            keys = list(items)
            enc = dict(zip(keys, pool.map(lambda y: sig.encode(y, codec, config.bitrate_kbps), [items[k] for k in keys])))
            size = sum(4 * ((len(b) + 2) // 3) + 40 for b in enc.values())
            if used + size > budget:
                over.append({"track": track, "reason": f"over --max-mb {config.max_mb:g} (its {len(items)} excerpts "
                                                      f"are {size / 2**20:.2f} MiB; {used / 2**20:.2f} MiB used)"})
                continue
            used += size
            tracks.append((meta, ok[track], enc))
            say("listen: %s: excerpt at %.1f s, %d sample(s), %.2f MiB", track, meta["start_s"], len(enc), size / 2**20)
    finally:
        pool.shutdown()
    if not tracks:
        raise ConfigError(f"not even one track fits under --max-mb {config.max_mb:g}; raise --max-mb or lower "
                          "--excerpt-s / --bitrate-kbps" if over else
                          "no track could be decoded: " + "; ".join(f"{u['track']}: {u['reason']}" for u in unusable[-3:]))
    # trials: one per (track, source), in a shuffled order; samples shuffled within each, opaque ids
    trials, used_ids = [], set()

    def new_id() -> str:
        while True:
            s = "s" + "".join(rng.choice(list("0123456789abcdef"), 6))
            if s not in used_ids:
                used_ids.add(s)
                return s

    mime = codec[2]
    for ti, (meta, srcs, enc) in enumerate(tracks):
        blobs[f"m{ti}"] = enc["mix"]
        meta["mix_audio"] = f"m{ti}"
        for src in srcs:
            stim = [{"kind": "system", "system": k[2], "audio": enc[k]} for k in enc if isinstance(k, tuple)
                    and k[0] == src and k[1] == "system"]
            if (src, "hidden_reference") in enc:
                stim.append({"kind": "hidden_reference", "system": None, "audio": enc[(src, "hidden_reference")]})
            if "anchor" in enc:
                stim.append({"kind": "anchor", "system": None, "audio": enc["anchor"]})
            stim = [stim[i] for i in rng.permutation(len(stim))]
            for s in stim:
                s["id"] = new_id()
                blobs[s["id"]] = s.pop("audio")
            trials.append({"track": meta["track"], "track_index": ti, "source": src, "stimuli": stim})
    trials = [trials[i] for i in rng.permutation(len(trials))]
    for i, t in enumerate(trials):
        t["trial"] = f"t{i + 1:02d}"
    h = hashlib.sha256(repr((config, sorted(inp.systems), [(t["trial"], t["track"], t["source"], [(s["id"], s["kind"],
                       s["system"]) for s in t["stimuli"]]) for t in trials])).encode())
    for k in sorted(blobs):
        h.update(hashlib.sha256(blobs[k]).digest())
    test_id = h.hexdigest()[:16]
    counts = {"included": len(tracks), "not_sampled": len(not_sampled), "unusable": len(unusable), "over_size": len(over)}
    counts = {"found": sum(counts.values()), **counts}  # every track found is in exactly one of these
    left_out = unusable + over
    key = {"format": KEY_FORMAT, "page_version": PAGE_VERSION, "test_id": test_id, "title": title,
           "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "config": {**config.__dict__, "sources": list(config.sources)},
           "systems": sorted(inp.systems) + (["mixture"] if config.mixture_system else []),
           "codec": {"encoder": codec[0], "mime": mime, "bitrate_kbps": config.bitrate_kbps, "rate_hz": sig.RATE},
           "loudness": {"method": sig.loudness_method(), "target_lufs": config.target_lufs},
           "inputs": {"systems": {k: str(v) for k, v in zip(inp.systems, list(system_dirs) + ([stems] if stems else []))},
                      "mix_dir": mix_dir, "references": references, "stems": stems},
           "tracks": [m for m, _, _ in tracks], "trials": trials, "left_out": left_out,
           "counts": counts}
    html = render_page(key, blobs, mime)
    pio.ensure_dir(out_dir)
    page_path, key_path = str(Path(out_dir) / "listen.html"), str(Path(out_dir) / "key.json")
    pio.write_bytes(page_path, html.encode("utf-8"))
    pio.write_json(key_path, key, "listen-key")
    return BuildResult(test_id=test_id, page_path=page_path, key_path=key_path, tracks=[m["track"] for m, _, _ in tracks],
                       trials=len(trials), stimuli=sum(len(t["stimuli"]) for t in trials), page_bytes=len(html.encode()),
                       codec=codec[0], loudness=sig.loudness_method(), left_out=left_out, counts=counts)

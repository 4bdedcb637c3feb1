"""The listening page: one self-contained HTML file (the audio inlined as data: URIs, no external URL),
which works offline and over file://. Raters download their ratings as JSON or CSV; nothing is sent.

What the page holds is the public half of the key: trial ids, the source to rate, opaque sample ids
and their audio. Which sample is which system stays in key.json.
"""

from __future__ import annotations

import base64
import html
import json
from importlib import resources

from . import PAGE_VERSION, RATINGS_FORMAT, SCALE

INSTRUCTIONS = [
    "Use headphones in a quiet room, and set a comfortable volume with the first reference before you start.",
    "Each trial plays the full mix as the reference, then several samples that try to extract one source from "
    "it (the vocals, or the instrumental without the vocals).",
    "Rate every sample from 1 to 7 by how well only that source remains. The samples are unlabelled and "
    "shuffled; some are hidden controls. Listen to each sample as often as you like.",
    "When you have finished (or want to stop), download your ratings as JSON or CSV and send the file to "
    "whoever gave you this page. Nothing is sent from this page; your progress is kept in this browser.",
]


def checksum(test_id: str, rater: str, ratings: list[dict]) -> str:
    """FNV-1a (32 bit) over the UTF-8 of the canonical ratings string; the page computes the same. It
    catches edited values, not forgery (the page is public)."""
    text = f"{test_id}|{rater}|" + ";".join(f"{r['trial']}:{r['stimulus']}:{r['rating']}" for r in ratings)
    h = 0x811C9DC5
    for b in text.encode("utf-8"):
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return f"{h:08x}"


def public_data(key: dict, left_out_text: list[str]) -> dict:
    """The page's JSON: no system names, no track names, no kinds of sample."""
    trials = [{"trial": t["trial"], "source": t["source"], "excerpt": t["track_index"] + 1,
               "mix": key["tracks"][t["track_index"]]["mix_audio"],
               "stimuli": [s["id"] for s in t["stimuli"]]} for t in key["trials"]]
    return {"format": RATINGS_FORMAT, "page_version": PAGE_VERSION, "test_id": key["test_id"], "title": key["title"],
            "scale": {src: {str(k): v for k, v in w.items()} for src, w in SCALE.items()},
            "instructions": INSTRUCTIONS, "trials": trials, "left_out": left_out_text,
            "excerpts": len(key["tracks"])}


def _left_out_text(key: dict) -> list[str]:
    c = key["counts"]
    out = []
    if c["not_sampled"]:
        out.append(f"{c['not_sampled']} track(s) were not in the random sample (--tracks {key['config']['tracks']}).")
    if c["over_size"]:
        out.append(f"{c['over_size']} sampled track(s) were left out to keep this page under "
                   f"{key['config']['max_mb']:g} MiB.")
    if c["unusable"]:
        out.append(f"{c['unusable']} track(s) could not be used (a system's output or the mix was missing or "
                   "unreadable); key.json lists them.")
    return out


def render_page(key: dict, blobs: dict[str, bytes], mime: str) -> str:
    """The page's HTML: the template with the public data and the audio filled in."""
    data = public_data(key, _left_out_text(key))
    audio = {k: f"data:{mime};base64,{base64.b64encode(v).decode('ascii')}" for k, v in blobs.items()}

    def js(obj) -> str:  # JSON inside <script>: no "</" can close the element early
        return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).replace("</", "<\\/")

    template = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")
    return (template.replace("{{TITLE}}", html.escape(key["title"]))
            .replace("{{DATA}}", js(data)).replace("{{AUDIO}}", js(audio)))

"""Reading raters' files (JSON or CSV, as the page downloads them) and checking them against the key.

Each problem is one clear message for that file; a file with a problem is left out whole and the rest
are aggregated:

* another test's file (test id mismatch), a different page version, not a ratings file at all;
* tampered values: a checksum that does not match, a rating that is not a whole number 1-7, a trial or
  sample that is not in the test, a sample rated twice, a sample filed under the wrong trial;
* duplicates: the same rater twice (e.g. the JSON and the CSV of one session), or identical content.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from . import PAGE_VERSION, RATINGS_FORMAT
from .page import checksum


class RatingsFileError(ValueError):
    """One file's problem, as the one-line message the command prints."""


@dataclass
class RaterFile:
    path: str
    rater: str
    ratings: list[dict]   # {trial, stimulus, rating, plays}
    complete: bool


def _parse(path: Path) -> dict:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RatingsFileError(f"cannot read it ({exc.strerror or exc})") from None
    text = raw.decode("utf-8", "replace").lstrip("\ufeff")
    if text.lstrip()[:1] in ("{", "["):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RatingsFileError(f"not valid JSON (line {exc.lineno}: {exc.msg})") from None
        if not isinstance(doc, dict):
            raise RatingsFileError("not a ratings file of `pairminer listen` (a JSON object is expected)")
        return doc
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise RatingsFileError("not a ratings file of `pairminer listen` (neither its JSON nor its CSV)")
    head = lines[0][2:].split()
    doc: dict = {"format": head[0] if head else ""}
    for tok in head[1:]:
        k, _, v = tok.partition("=")
        doc[k] = urllib.parse.unquote(v)
    try:
        doc["page_version"] = int(doc.get("page_version", "0"))
    except ValueError:
        doc["page_version"] = doc.get("page_version")
    rows = list(csv.DictReader(io.StringIO("\n".join(lines[1:]))))
    if rows and not {"trial", "stimulus", "rating"} <= set(rows[0]):
        raise RatingsFileError("its CSV has no trial, stimulus and rating columns")
    doc["ratings"] = rows
    return doc


def _int(v, what: str) -> int:
    if isinstance(v, bool):
        raise RatingsFileError(f"tampered: {what} {v!r} is not a whole number 1-7")
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise RatingsFileError(f"tampered: {what} {v!r} is not a whole number 1-7") from None
    if f != int(f):
        raise RatingsFileError(f"tampered: {what} {v!r} is not a whole number 1-7")
    return int(f)


def read_ratings(path: str, key: dict) -> RaterFile:
    """One rater's file, checked against the key (RatingsFileError with the reason)."""
    doc = _parse(Path(path))
    if doc.get("format") != RATINGS_FORMAT:
        raise RatingsFileError(f"not a ratings file of `pairminer listen` (format {doc.get('format')!r})")
    if doc.get("test_id") != key["test_id"]:
        raise RatingsFileError(f"from another test: its test id is {doc.get('test_id')!r}, this test's is "
                               f"{key['test_id']!r}")
    if doc.get("page_version") != PAGE_VERSION or key.get("page_version") != PAGE_VERSION:
        raise RatingsFileError(f"page version {doc.get('page_version')!r}, but this pairminer reads version "
                               f"{PAGE_VERSION}; collect it with the pairminer that built the test")
    rater = doc.get("rater")
    if not isinstance(rater, str) or not rater.strip():
        raise RatingsFileError("it names no rater")
    trials = {t["trial"]: {s["id"] for s in t["stimuli"]} for t in key["trials"]}
    rows = doc.get("ratings")
    if not isinstance(rows, list):
        raise RatingsFileError("it holds no list of ratings")
    out, seen = [], set()
    for i, r in enumerate(rows, 1):
        if not isinstance(r, dict):
            raise RatingsFileError(f"tampered: rating {i} is not a record")
        trial, stim = r.get("trial"), r.get("stimulus")
        if trial not in trials:
            raise RatingsFileError(f"tampered: rating {i} names trial {trial!r}, which is not in this test")
        if stim not in trials[trial]:
            raise RatingsFileError(f"tampered: rating {i} names sample {stim!r}, which is not in trial {trial}")
        if stim in seen:
            raise RatingsFileError(f"tampered: sample {stim} is rated twice")
        seen.add(stim)
        val = _int(r.get("rating"), f"rating {i}")
        if not 1 <= val <= 7:
            raise RatingsFileError(f"tampered: rating {i} is {val}, outside the scale 1-7")
        plays = r.get("plays", 0)
        out.append({"trial": trial, "stimulus": stim, "rating": val,
                    "plays": _int(plays, f"plays of rating {i}") if plays not in (None, "") else 0})
    if checksum(key["test_id"], rater, out) != doc.get("checksum"):
        raise RatingsFileError("tampered: its checksum does not match its ratings (edited after the download?)")
    if not out:
        raise RatingsFileError("it holds no ratings")
    total = sum(len(v) for v in trials.values())
    return RaterFile(path=str(path), rater=rater.strip(), ratings=out, complete=len(out) == total)


def read_all(paths: list[str], key: dict) -> tuple[list[RaterFile], list[dict]]:
    """The usable files, and one {file, problem} per file left out (duplicates included)."""
    ok: list[RaterFile] = []
    bad: list[dict] = []
    by_rater: dict[str, str] = {}
    by_content: dict[str, str] = {}
    for p in paths:
        try:
            rf = read_ratings(p, key)
        except RatingsFileError as exc:
            bad.append({"file": str(p), "problem": str(exc)})
            continue
        digest = hashlib.sha256(repr(sorted((r["stimulus"], r["rating"]) for r in rf.ratings)).encode()).hexdigest()
        if rf.rater in by_rater:
            bad.append({"file": str(p), "problem": f"duplicate: rater {rf.rater!r} is already in {by_rater[rf.rater]}"})
            continue
        if digest in by_content and len(rf.ratings) > 2:
            bad.append({"file": str(p), "problem": f"duplicate: the same ratings as {by_content[digest]} "
                                                   f"under another rater name ({rf.rater!r})"})
            continue
        by_rater[rf.rater], by_content[digest] = str(p), str(p)
        ok.append(rf)
    return ok, bad

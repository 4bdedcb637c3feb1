"""Listening in report.html: clips per status on generated songs whose true stems are known, the size bound,
catalog-only runs, near misses, genres per stage, splits and literal text in plots."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pairminer.audio import load_audio
from pairminer.report.clips import ber_margin, listening_sample
from pairminer.report.load import load_outputs
from pairminer.report.stage import ReportConfig, run_report
from pairminer.schemas import json_schema
from pairminer.testing.report import (AUDIO_SR as SR, STATUS, VERIFY_CONFIG, console_lines, make_audio_out, make_out,
                                      run_chromium)

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")


@pytest.fixture(scope="module")
def audio_out(tmp_path_factory):
    return make_audio_out(tmp_path_factory.mktemp("listen") / "out")


@pytest.fixture(scope="module")
def listened(audio_out):
    out, stems = audio_out
    res = run_report(str(out), str(out / "report"), ReportConfig(clips_per_status=1, clip_s=4.0), progress=False)
    return out, stems, res


def _blobs(page: str) -> dict[str, list[tuple[str, bytes]]]:
    """pair_id -> [(caption, clip bytes)] from the page's <audio> elements."""
    out = {}
    for chunk in page.split('<div class="pair" id="pair-')[1:]:
        pid, body = chunk.split('"', 1)
        clips = re.findall(r'<figcaption>([^<]+)</figcaption><audio controls preload="metadata" '
                           r'src="data:audio/(?:ogg|mpeg);base64,([^"]+)"', body.split('<div class="pair"')[0])
        out[pid] = [(cap, base64.b64decode(b64)) for cap, b64 in clips]
    return out


def _decode(blob: bytes, tmp_path: Path, name: str) -> np.ndarray:
    p = tmp_path / f"{name}.ogg"
    p.write_bytes(blob)
    y, _ = load_audio(str(p), SR, check_silence=False)
    return y


def _mag(y: np.ndarray) -> np.ndarray:
    import librosa

    return np.abs(librosa.stft(y, n_fft=1024, hop_length=256))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    n = min(a.shape[1], b.shape[1])
    a, b = a[:, :n].ravel(), b[:, :n].ravel()
    return float(np.corrcoef(a, b)[0, 1])


@needs_ffmpeg
def test_clips_per_group_and_their_content(listened, tmp_path):
    out, stems, res = listened
    doc = json.loads(Path(res.json_path).read_text())
    json_schema("report").validate(doc)
    lst = doc["listening"]
    assert lst["available"] and lst["note"] == ""
    groups = {p["group"]: p for p in lst["pairs"]}
    assert set(groups) == {"verified", "lowest_margin", "too_similar", "too_different"}
    # the lowest margin: pair 2 (BER 0.33, 0.02 from max_ber) unless the random draw took it; then pair 1 (0.10)
    drawn = groups["verified"]["pair_id"]
    assert groups["lowest_margin"]["pair_id"] == ("m2__v2" if drawn != "m2__v2" else "m1__v1")
    assert groups["too_similar"]["pair_id"] == "m3__v3" and groups["too_different"]["pair_id"] == "m4__v4"
    for g in ("verified", "lowest_margin"):
        assert groups[g]["clips"] == ["mix", "version", "instrumental", "vocals"] and groups[g]["from_targets"]
    for g in ("too_similar", "too_different"):
        assert groups[g]["clips"] == ["mix", "version"] and not groups[g]["from_targets"]

    page = Path(res.html_path).read_text(encoding="utf-8")
    blobs = _blobs(page)
    assert sum(len(v) for v in blobs.values()) == sum(len(p["clips"]) for p in lst["pairs"]) == 12
    assert page.count('<img class="spec"') == 4
    # content: the resynthesised vocal target sounds like the true voice of that window, not the backing
    pair = groups["verified"]
    i = int(pair["pair_id"][1])
    st = stems[i]
    s0 = int(round(pair["clip_start_s"] * SR))
    s1 = s0 + int(4.0 * SR)
    clips = dict(blobs[pair["pair_id"]])
    voc = _decode(clips["vocal target (mix phase)"], tmp_path, "voc")
    ver = _decode(clips["version, aligned onto the mix"], tmp_path, "ver")
    mix = _decode(clips["mix"], tmp_path, "mix")
    assert abs(len(mix) / SR - 4.0) < 0.1
    true_voc, true_acc = _mag(st.vocals[s0:s1]), _mag(st.accompaniment[s0:s1])
    assert _corr(_mag(voc), true_voc) > 0.6 > _corr(_mag(voc), true_acc)
    # the version was shifted back onto the mix: it lines up with the accompaniment in the mix
    assert _corr(_mag(ver), true_acc) > 0.8
    assert _corr(_mag(mix), _mag(st.mix[s0:s1])) > 0.9


@needs_ffmpeg
def test_clip_window_is_where_the_vocals_are(listened):
    out, stems, res = listened
    doc = json.loads(Path(res.json_path).read_text())
    for p in doc["listening"]["pairs"]:
        if p["group"] not in ("verified", "lowest_margin"):
            continue
        st = stems[int(p["pair_id"][1])]
        e = np.convolve(st.vocals.astype(np.float64) ** 2, np.ones(int(4 * SR)), mode="valid")
        chosen = e[int(p["clip_start_s"] * SR)]
        assert chosen >= 0.8 * e.max()  # within the loudest vocal windows (frame resolution)


@needs_ffmpeg
def test_audio_budget_bounds_the_page(audio_out, tmp_path):
    out, _ = audio_out
    small = run_report(str(out), str(tmp_path / "small"), ReportConfig(clips_per_status=2, clip_s=4.0,
                                                                       max_audio_mb=0.2), progress=False)
    big = run_report(str(out), str(tmp_path / "big"), ReportConfig(clips_per_status=2, clip_s=4.0), progress=False)
    doc_s, doc_b = (json.loads(Path(r.json_path).read_text())["listening"] for r in (small, big))
    assert doc_s["bytes"] <= 0.2 * 2**20 < doc_b["bytes"]
    assert "left out" in doc_s["note"] and "max_audio_mb=0.2" in doc_s["note"]
    assert len(doc_s["pairs"]) < len(doc_b["pairs"])
    html_s = Path(small.html_path).stat().st_size
    html_b = Path(big.html_path).stat().st_size
    assert html_s < html_b and html_s - 1.37 * doc_s["bytes"] < 1.5 * 2**20  # base64 + the rest of the page


def test_catalog_only_run_says_so(audio_out, tmp_path):
    out, _ = audio_out
    moved = tmp_path / "out"
    shutil.copytree(out, moved, ignore=shutil.ignore_patterns("audio", "report"))
    ver = pd.read_parquet(moved / "verified.parquet")
    for col in ("mix_audio_path", "version_audio_path"):  # the audio is not copied along
        ver[col] = ver[col].str.replace(str(out), str(moved), regex=False)
    ver.to_parquet(moved / "verified.parquet")
    res = run_report(str(moved), str(tmp_path / "rep"), ReportConfig(clips_per_status=1), progress=False)
    doc = json.loads(Path(res.json_path).read_text())
    assert not doc["listening"]["available"] and "not on this machine" in doc["listening"]["note"]
    assert all("file not found" in p["error"] for p in doc["listening"]["pairs"])
    page = Path(res.html_path).read_text(encoding="utf-8")
    assert "<audio" not in page and "not on this machine" in page and "Genre breakdown" in page
    off = run_report(str(moved), str(tmp_path / "rep0"), ReportConfig(clips_per_status=0), progress=False)
    assert "Listening is off" in Path(off.html_path).read_text(encoding="utf-8")


def test_lowest_margin_is_nearest_a_threshold():
    ber = pd.Series([0.11, 0.2, 0.34, np.nan])
    m = ber_margin(ber, VERIFY_CONFIG)
    assert m.round(6).tolist()[:3] == [0.01, 0.1, 0.01] and np.isnan(m[3])
    assert ber_margin(ber, {}).isna().all()


def test_listening_sample_groups(audio_out):
    out, _ = audio_out
    stages = load_outputs(str(out))
    got = listening_sample(stages, 5, seed=0)
    by = {}
    for g, row in got:
        by.setdefault(g, []).append(row["pair_id"])
    assert sorted(by["verified"]) == ["m0__v0", "m1__v1", "m2__v2"] and "lowest_margin" not in by
    got = listening_sample(stages, 1, seed=3)
    ids = [r["pair_id"] for _, r in got]
    assert len(ids) == len(set(ids)) == 4  # no pair twice


# ---------------------------------------------------------------------------------------------------
# Near misses, genres per stage, splits, `$` in text
# ---------------------------------------------------------------------------------------------------


def _near_misses(root: Path) -> pd.DataFrame:
    rows = []
    for i, d in enumerate([1.2, -1.8, 2.5, 4.0, -7.0]):
        rows.append({"version_track_id": f"d{i}", "version_title": f"Far {i} (Instrumental)", "version_kind":
                     "instrumental", "artist": "A", "mix_track_id": f"dm{i}", "mix_title": f"Far {i}",
                     "delta_s": d, "score": 100.0, "reason": "delta_over_window"})
    for i, s in enumerate([88.0, 84.0, 79.0, 60.0]):
        rows.append({"version_track_id": f"s{i}", "version_title": f"<b>Low</b> {i} (Inst.)", "version_kind":
                     "instrumental", "artist": "B", "mix_track_id": f"sm{i}", "mix_title": f"Lo {i}",
                     "delta_s": 0.1, "score": s, "reason": "score_below_min"})
    rows.append({"version_track_id": "q0", "version_title": "Song (Live) (Instrumental)", "version_kind":
                 "instrumental", "artist": "C", "mix_track_id": None, "mix_title": None, "delta_s": None,
                 "score": None, "reason": "recording_qualifier_mismatch"})
    df = pd.DataFrame(rows)
    df.to_parquet(root / "near_misses.parquet")
    return df


def test_near_miss_page(tmp_path):
    out = make_out(tmp_path / "out", stages=("discover",))
    doc = json.loads((out / "discover-report.json").read_text())
    doc["config"] = {"max_delta": 1.0, "min_score": 90.0}
    (out / "discover-report.json").write_text(json.dumps(doc))
    _near_misses(out)
    res = run_report(str(out), str(tmp_path / "rep"), progress=False)
    nm = json.loads(Path(res.json_path).read_text())["near_misses"]
    assert nm["present"] and nm["total"] == 10
    assert nm["by_reason"] == {"delta_over_window": 5, "recording_qualifier_mismatch": 1, "score_below_min": 4}
    assert [(w["max_delta_s"], w["pairs_added"]) for w in nm["window"]["wider"]] == [(1.5, 1), (2.0, 2), (3.0, 3),
                                                                                    (5.0, 4)]
    assert [(s["min_score"], s["pairs_added"]) for s in nm["score"]["lower"]] == [(88.0, 1), (85.0, 1), (80.0, 2),
                                                                                 (70.0, 3)]
    assert [r["version_track_id"] for r in nm["rows"]["delta_over_window"]] == ["d0", "d1", "d2", "d3", "d4"]
    assert [r["version_track_id"] for r in nm["rows"]["score_below_min"]] == ["s0", "s1", "s2", "s3"]
    page = Path(res.html_path).read_text(encoding="utf-8")
    section = page.split('id="near-misses"')[1].split("<h2")[0]
    assert "recording_qualifier_mismatch" in section and "Song (Live) (Instrumental)" in section
    assert "&lt;b&gt;Low&lt;/b&gt;" in section and "<b>Low</b>" not in section
    (out / "near_misses.parquet").unlink()
    res = run_report(str(out), str(tmp_path / "rep2"), progress=False)
    page = Path(res.html_path).read_text(encoding="utf-8")
    assert "near_misses.parquet is not in OUT" in page.split('id="near-misses"')[1]


def test_genres_per_stage_and_splits(audio_out, tmp_path):
    out, _ = audio_out
    res = run_report(str(out), str(tmp_path / "rep"), ReportConfig(clips_per_status=0), progress=False)
    doc = json.loads(Path(res.json_path).read_text())
    rows = {r["genre"]: r for r in doc["genre_by_stage"]}
    ver = pd.read_parquet(out / "verified.parquet")
    ok = ver[ver.status == "verified"]
    assert sum(r["verified_pairs"] for r in rows.values()) == len(ok)
    assert rows["Pop"]["verified_pairs"] == 2 and rows["Pop"]["targets_pairs"] == 2
    pop_h = (ok[ok.genre == "Pop"].mix_duration_s + ok[ok.genre == "Pop"].version_duration_s).sum() / 3600
    assert rows["Pop"]["verified_hours"] == pytest.approx(pop_h)
    assert "candidates_pairs" not in rows["Pop"]  # discover did not run here
    sp = doc["splits"]
    man = pd.read_parquet(out / "targets" / "manifest.parquet")
    assert sp["present"] and sum(r["pairs"] for r in sp["rows"]) == man.pair_id.nunique() == len(ok)
    for r in sp["rows"]:
        assert r["artists"] == man[man.split == r["split"]].artist_key.nunique()
    assert sp["artists_in_several_splits"] == 0
    page = Path(res.html_path).read_text(encoding="utf-8")
    assert "artist-disjoint" in page and "Pairs and hours per genre at each stage" in page
    # an artist in two splits is flagged
    bad = tmp_path / "bad"
    shutil.copytree(out, bad, ignore=shutil.ignore_patterns("audio", "report"))
    man.loc[:1, "artist_key"] = "same artist"
    man.loc[:1, "split"] = ["train", "test"]
    man.to_parquet(bad / "targets" / "manifest.parquet")
    res = run_report(str(bad), str(tmp_path / "rep_bad"), ReportConfig(clips_per_status=0), progress=False)
    assert json.loads(Path(res.json_path).read_text())["splits"]["artists_in_several_splits"] == 1
    assert "1 artist(s) are in more than one split" in Path(res.html_path).read_text(encoding="utf-8")


def test_genre_table_across_three_stages(tmp_path):
    out = make_out(tmp_path / "out")
    res = run_report(str(out), str(tmp_path / "rep"), ReportConfig(top_n=2), progress=False)
    rows = json.loads(Path(res.json_path).read_text())["genre_by_stage"]
    assert sum(r["candidates_pairs"] for r in rows) == 10
    assert sum(r["verified_pairs"] for r in rows) == STATUS.count("verified")
    assert sum(r["targets_pairs"] for r in rows) == 4
    assert [r["genre"] for r in rows][:len(res.genre_table)] == res.genre_table["genre"].tolist()
    assert "Pairs and hours per genre at each stage" in Path(res.html_path).read_text(encoding="utf-8")


def test_dollar_signs_are_drawn_literally(tmp_path):
    """Genres with `$` (TeX math to matplotlib) used to crash the report; now every plot draws them as written."""

    from pairminer.report.genres import genre_breakdown
    from pairminer.report.plots import plot_genres

    table = genre_breakdown(pd.DataFrame({"genre": ["$$", "Trap $^^$", "$uicide$ Rap", "Pop"], "pair_s": [60.0] * 4}),
                            top_n=10)
    with pytest.raises(ValueError):  # the unguarded plot fails: the test can fail
        plot_genres.__wrapped__(table, "targets")
    assert plot_genres(table, "targets")[:8] == b"\x89PNG\r\n\x1a\n"
    out = make_out(tmp_path / "out")
    for name in ("candidates.parquet", "verified.parquet"):
        df = pd.read_parquet(out / name)
        df["genre"] = ["$$", "Trap $^^$", "$x$"] * 3 + ["$"]
        df.to_parquet(out / name)
    man = pd.read_parquet(out / "targets" / "manifest.parquet")
    man["genre"] = "$$"
    man.to_parquet(out / "targets" / "manifest.parquet")
    res = run_report(str(out), str(tmp_path / "rep"), progress=False)
    assert "genre_breakdown" in res.plot_paths
    assert "$$" in res.genre_table["genre"].tolist()

    from matplotlib import rcParams

    assert rcParams["text.parse_math"] is True  # the context does not leak


# ---------------------------------------------------------------------------------------------------
# In a real browser: the audio elements load, and every section renders
# ---------------------------------------------------------------------------------------------------

_PROBE = """<script>
(function () {
  function write() {
    let p = document.getElementById('probe');
    if (!p) { p = document.createElement('pre'); p.id = 'probe'; document.body.appendChild(p); }
    const secs = [...document.querySelectorAll('h2[id]')].map(h => [h.id, h.getBoundingClientRect().top + scrollY]);
    const audio = [...document.querySelectorAll('audio')].map(a => [a.readyState, a.duration, a.error && a.error.code]);
    p.textContent = JSON.stringify({secs: secs, audio: audio, height: document.documentElement.scrollHeight});
  }
  document.querySelectorAll('audio').forEach(a => { a.addEventListener('loadedmetadata', write);
                                                     a.addEventListener('error', write); });
  addEventListener('load', write); setTimeout(write, 2000);
})();
</script>"""


@pytest.mark.slow
@needs_ffmpeg
@pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
                    reason="Chromium is not installed (make test installs Debian's chromium)")
def test_audio_loads_and_every_section_renders_in_chromium(listened, tmp_path):
    from matplotlib.image import imread, imsave

    _, _, res = listened
    page = Path(res.html_path).read_text(encoding="utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    proc = run_chromium(["--virtual-time-budget=10000", "--autoplay-policy=no-user-gesture-required", "--dump-dom",
                      probe.as_uri()], tmp_path)
    m = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, flags=re.S)
    assert m, proc.stderr[-2000:]
    info = json.loads(m.group(1).replace("&quot;", '"'))
    n_audio = page.count("<audio ")
    assert n_audio == 12 and len(info["audio"]) == n_audio
    for ready, duration, error in info["audio"]:
        assert error is None and ready >= 1, info["audio"]  # HAVE_METADATA: the browser decoded the header
        assert duration == pytest.approx(4.0, abs=0.15)
    ids = [s for s, _ in info["secs"]]
    assert {"funnel", "genres", "verify", "targets", "listening", "near-misses", "examples"} <= set(ids)

    height = int(min(info["height"] + 50, 16000))
    shot = tmp_path / "full.png"
    proc = run_chromium([f"--screenshot={shot}", f"--window-size=1280,{height}", "--hide-scrollbars",
                      Path(res.html_path).resolve().as_uri()], tmp_path)
    assert shot.exists() and not console_lines(proc.stderr), proc.stderr[-2000:]
    img = imread(shot)
    tops = [int(t) for _, t in info["secs"]] + [img.shape[0]]
    for (sid, _), top, bottom in zip(info["secs"], tops, tops[1:]):
        part = img[top:min(bottom, top + 2400)]
        out = tmp_path / f"section-{sid}.png"
        imsave(out, part)
        colours = len(np.unique((part[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0))
        assert part.shape[0] > 40 and colours > 20, f"section {sid} looks blank ({colours} colours)"
    listen = img[tops[ids.index("listening")]:tops[ids.index("listening") + 1]]
    # the spectrogram pictures (magma colours) are drawn in the listening section
    assert len(np.unique((listen[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 500


def test_clip_window_stays_in_the_covered_frames():
    from pairminer.report.clips import _window, clip_energy

    voc = np.ones((4, 100))
    voc[:, 80:] = 10.0  # loudest at the end, but the version only covers frames 10..60
    assert _window(clip_energy(voc, None), 20) == 80
    start = _window(clip_energy(voc, {"cover_start_frame": 10, "cover_stop_frame": 60}), 20)
    assert 10 <= start <= 40
    assert _window(clip_energy(voc, {"cover_start_frame": None, "cover_stop_frame": None}), 20) == 80
    assert _window(np.zeros(100), 20) == 40  # no energy: the middle


def _extra_funnel_steps(stages, steps):
    steps.append({"key": "extra", "label": "Pairs an extra stage kept", "count": 3, "hours": None,
                  "parent": "targets", "level": 4, "source": "extra.parquet", "pct_of_catalog": None,
                  "pct_of_parent": None})


def test_a_registered_stage_contributes_its_funnel_steps(tmp_path, monkeypatch):
    import dataclasses

    from pairminer import stages as registry
    from pairminer.report.funnel import build_funnel

    out = make_out(tmp_path / "out")
    base = [s["key"] for s in build_funnel(load_outputs(str(out)))]
    assert base[0] == "catalog_rows" and base[-1] == "targets"
    extra = dataclasses.replace(registry.STAGES[-1], name="extra",
                                extra={"report_funnel": f"{__name__}:_extra_funnel_steps"})
    monkeypatch.setattr(registry, "STAGES", (*registry.STAGES, extra))
    steps = build_funnel(load_outputs(str(out)))
    assert [s["key"] for s in steps] == [*base, "extra"]
    assert steps[-1]["pct_of_parent"] == pytest.approx(100 * 3 / 4)  # 4 pairs with targets


@needs_ffmpeg
def test_cli_clip_options(audio_out, tmp_path):
    from click.testing import CliRunner

    from pairminer.cli import main

    out, _ = audio_out
    r = CliRunner().invoke(main, ["report", str(out), "-o", str(tmp_path / "r"), "--clips", "1", "--clip-s", "2",
                                  "--max-audio-mb", "5", "-q"])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "r" / "report.json").read_text())
    assert doc["config"]["clips_per_status"] == 1 and doc["config"]["max_audio_mb"] == 5.0
    assert {p["clip_s"] for p in doc["listening"]["pairs"]} == {2.0} and len(doc["listening"]["pairs"]) == 4
    for bad, word in ((["--clips", "-1"], "clips_per_status"), (["--clip-s", "0"], "clip_s"),
                      (["--max-audio-mb", "0"], "max_audio_mb")):
        r = CliRunner().invoke(main, ["report", str(out), "-o", str(tmp_path / "x"), *bad])
        assert r.exit_code == 2 and word in r.output and "Traceback" not in r.output

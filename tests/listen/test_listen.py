"""pairminer listen: building the page (blinding, sampling, excerpts, loudness, size cap), collecting
ratings (per-file problems, screening, statistics, paired comparison), the CLI, and the report section."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pairminer.cli import main
from pairminer.errors import ConfigError
from pairminer.listen import PAGE_VERSION, RATINGS_FORMAT, SCALE
from pairminer.listen import signal as sig
from pairminer.listen.build import _track_items, build_test
from pairminer.listen.collect import collect_ratings
from pairminer.listen.config import CollectConfig, ListenConfig
from pairminer.listen.inputs import gather
from pairminer.listen.page import checksum


def _build(d, out, **kw):
    cfg = ListenConfig(**{"tracks": 3, "excerpt_s": 2.0, "seed": 1, **kw})
    return build_test([str(d["sysA"]), str(d["sysB"])], str(out), cfg, mix_dir=str(d["mixes"]),
                      references=str(d["refs"]), progress=False)


def rater_file(path: Path, key: dict, rater: str, rate, *, fmt="json", edit=None) -> Path:
    """A ratings file as the page writes it (`rate(stimulus) -> 1..7`); `edit(doc)` tampers after the checksum."""
    ratings = [{"trial": t["trial"], "stimulus": s["id"], "rating": rate(s), "plays": 1}
               for t in key["trials"] for s in t["stimuli"]]
    doc = {"format": RATINGS_FORMAT, "page_version": PAGE_VERSION, "test_id": key["test_id"], "rater": rater,
           "complete": True, "ratings": ratings, "checksum": checksum(key["test_id"], rater, ratings)}
    if edit:
        edit(doc)
    if fmt == "json":
        path.write_text(json.dumps(doc))
    else:
        head = (f"# {doc['format']} page_version={doc['page_version']} test_id={doc['test_id']} rater={rater} "
                f"checksum={doc['checksum']}")
        path.write_text("\n".join([head, "trial,stimulus,rating,plays"] + [
            f"{r['trial']},{r['stimulus']},{r['rating']},{r['plays']}" for r in doc["ratings"]]) + "\n")
    return path


def good(s):
    return {"hidden_reference": 7, "anchor": 1}.get(s["kind"]) or {"sysA": 6, "sysB": 3}[s["system"]]


# ---------------------------------------------------------------- building the page


def test_page_is_blinded_self_contained_and_counts_add_up(setup_dirs, tmp_path):
    res = _build(setup_dirs, tmp_path / "t")
    page = Path(res.page_path).read_text()
    key = json.loads(Path(res.key_path).read_text())
    # no external URL, no system or track name, no kind of sample on the page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page) and "http://" not in page.replace(
        "http-equiv", "")
    for secret in ("sysA", "sysB", "song1", "hidden_reference", "anchor\"", "refs", "mixes"):
        assert secret not in page, secret
    for words in SCALE.values():
        assert words[1] in page and words[7] in page
    assert res.counts == {"found": 4, "included": 3, "not_sampled": 1, "unusable": 0, "over_size": 0}
    assert len(key["trials"]) == 6 == res.trials  # 3 tracks x 2 sources
    for t in key["trials"]:
        kinds = sorted(s["kind"] for s in t["stimuli"])
        assert kinds == ["anchor", "hidden_reference", "system", "system"]
        assert t["trial"] in page and all(s["id"] in page for s in t["stimuli"])
    orders = {tuple(s["kind"] + str(s["system"]) for s in t["stimuli"]) for t in key["trials"]}
    assert len(orders) > 1, "the samples must be shuffled per trial"
    assert "Nothing was left out" in page or "1 track(s) were not in the random sample" in page


def test_the_same_seed_gives_the_same_test_and_another_seed_another(setup_dirs, tmp_path):
    a, b = _build(setup_dirs, tmp_path / "a"), _build(setup_dirs, tmp_path / "b")
    c = _build(setup_dirs, tmp_path / "c", seed=2)
    assert a.test_id == b.test_id != c.test_id
    assert Path(a.page_path).read_bytes() == Path(b.page_path).read_bytes()


def test_every_system_gets_the_same_loudness_matched_excerpt(setup_dirs):
    d = setup_dirs
    cfg = ListenConfig(excerpt_s=2.0, seed=4)
    inp = gather([str(d["sysA"]), str(d["sysB"])], [], mix_dir=str(d["mixes"]), references=str(d["refs"]),
                 stems=None, mixture_system=False)
    items, meta = _track_items("song2", ["vocals"], inp, cfg, np.random.default_rng(0))
    assert meta["duration_s"] == 2.0 and 0 <= meta["start_s"] <= 2.0
    ref, est = items[("vocals", "hidden_reference")], items[("vocals", "system", "sysA")]
    r = np.corrcoef(ref[:, 0], est[:, 0])[0, 1]
    assert r > 0.99, f"sysA is the reference plus a little noise: the excerpts must line up (r={r:.3f})"
    lufs = [sig.loudness_lufs(y) for y in items.values()]
    assert max(lufs) - min(lufs) < 0.5 and abs(np.median(lufs) - meta["loudness_lufs"]) < 0.5, lufs
    # the anchor is the mix low-passed at 3.5 kHz: almost nothing above 5 kHz
    spec = lambda y: np.abs(np.fft.rfft(y[:, 0]))
    hi = np.fft.rfftfreq(len(items["mix"]), 1 / sig.RATE) > 5000
    assert spec(items["anchor"])[hi].sum() < 0.01 * spec(items["mix"])[hi].sum()


def test_bs1770_loudness_of_a_sine():
    t = np.arange(5 * sig.RATE) / sig.RATE
    assert sig.loudness_lufs(np.sin(2 * np.pi * 1000 * t)) == pytest.approx(-3.01, abs=0.1)  # BS.1770's example
    assert sig.loudness_lufs(0.1 * np.sin(2 * np.pi * 1000 * t)) == pytest.approx(-23.01, abs=0.1)
    assert sig.loudness_lufs(np.zeros(sig.RATE)) == float("-inf")


def test_the_size_cap_leaves_tracks_out_and_the_page_says_so(setup_dirs, tmp_path):
    one = _build(setup_dirs, tmp_path / "one", tracks=1)
    per_track = one.page_bytes / 2**20
    res = _build(setup_dirs, tmp_path / "cap", tracks=4, max_mb=round(0.0625 + per_track * 2.2, 2))
    c = res.counts
    assert c["included"] == 2 and c["over_size"] == 2 and c["found"] == sum(v for k, v in c.items() if k != "found")
    assert res.page_bytes <= 0.0625 * 2**20 + per_track * 2.2 * 2**20
    page = Path(res.page_path).read_text()
    assert "2 sampled track(s) were left out to keep this page under" in page
    with pytest.raises(ConfigError, match="not even one track fits under --max-mb"):
        _build(setup_dirs, tmp_path / "tiny", max_mb=0.1)


def test_tracks_missing_from_a_system_are_reported(setup_dirs, tmp_path):
    import shutil

    shutil.rmtree(setup_dirs["sysB"] / "song3")
    res = _build(setup_dirs, tmp_path / "t", tracks=10)
    assert res.counts["unusable"] == 1 and res.counts["included"] == 3
    assert res.left_out == [{"track": "song3", "reason": "not in system(s) sysB"}]


# ---------------------------------------------------------------- collecting ratings


@pytest.fixture()
def built(setup_dirs, tmp_path):
    res = _build(setup_dirs, tmp_path / "t", tracks=4)
    return res, json.loads(Path(res.key_path).read_text())


def test_collect_reports_each_bad_file_and_aggregates_the_rest(built, tmp_path):
    res, key = built
    r = tmp_path / "r"
    r.mkdir()
    ok1 = rater_file(r / "a.json", key, "ann", good)
    ok2 = rater_file(r / "b.csv", key, "ben", lambda s: max(1, good(s) - (s["kind"] == "system")), fmt="csv")
    other = rater_file(r / "other.json", key, "cy", good, edit=lambda d: d.update(test_id="0123456789abcdef"))
    version = rater_file(r / "v.json", key, "di", good, edit=lambda d: d.update(page_version=99))
    tampered = rater_file(r / "t.json", key, "ed", good, edit=lambda d: d["ratings"][0].update(rating=5))
    dup = rater_file(r / "dup.csv", key, "ann", good, fmt="csv")
    junk = r / "junk.json"
    junk.write_text("[1, 2")
    out = collect_ratings([str(p) for p in (ok1, ok2, other, version, tampered, dup, junk)], str(res.key_path),
                          str(tmp_path / "res"))
    probs = {Path(p["file"]).name: p["problem"] for p in out.problems}
    assert set(probs) == {"other.json", "v.json", "t.json", "dup.csv", "junk.json"}
    assert probs["other.json"].startswith("from another test")
    assert probs["v.json"].startswith("page version 99")
    assert "checksum does not match" in probs["t.json"]
    assert probs["dup.csv"].startswith("duplicate: rater 'ann'")
    assert probs["junk.json"].startswith("not valid JSON")
    c = out.doc["counts"]
    assert (c["files"], c["files_used"], c["files_left_out"]) == (7, 2, 5)
    assert c["ratings"] == c["ratings_kept"] + c["ratings_screened"] == 2 * res.stimuli
    means = {(s["source"], s["condition"]): s for s in out.doc["summary"]}
    a = means[("vocals", "sysA")]
    assert a["mean"] == pytest.approx(5.5) and a["ci_low"] <= a["mean"] <= a["ci_high"]
    assert means[("instrumental", "hidden reference")]["mean"] == 7
    text = out.summary()
    assert "left out" in text and "from another test" in text


def test_out_of_scale_values_are_tampering_even_with_a_matching_checksum(built, tmp_path):
    res, key = built

    def bump(d):
        d["ratings"][1]["rating"] = 9
        d["checksum"] = checksum(d["test_id"], d["rater"], d["ratings"])

    f = rater_file(tmp_path / "x.json", key, "x", good, edit=bump)
    g = rater_file(tmp_path / "y.json", key, "y", good, edit=lambda d: d["ratings"][2].update(stimulus="szzzzzz"))
    out = collect_ratings([str(f), str(g)], str(Path(res.key_path).parent), str(tmp_path / "res"))
    assert [p["problem"] for p in out.problems] == [
        "tampered: rating 2 is 9, outside the scale 1-7",
        f"tampered: rating 3 names sample 'szzzzzz', which is not in trial {key['trials'][0]['trial']}"]
    assert out.doc["counts"]["files_used"] == 0 and out.png_path is None


def test_screening_and_the_paired_comparison(built, tmp_path):
    res, key = built
    rng = np.random.default_rng(5)
    files = [rater_file(tmp_path / f"g{i}.json", key, f"g{i}", lambda s: int(np.clip(good(s) + rng.integers(-1, 2), 1, 7)))
             for i in range(4)]
    files.append(rater_file(tmp_path / "bad.json", key, "bad", lambda s: {"hidden_reference": 3, "anchor": 7}.get(
        s["kind"]) or 4))
    out = collect_ratings([str(f) for f in files], str(res.key_path), str(tmp_path / "res"),
                          CollectConfig(seed=1))
    kept = {r["rater"]: r for r in out.doc["raters"]}
    assert [k for k, r in kept.items() if not r["kept"]] == ["bad"]
    assert "hidden reference below 6 in 8 of 8" in kept["bad"]["reason"] and "anchor above 3" in kept["bad"]["reason"]
    cmp_ = {(c["source"], c["a"], c["b"]): c for c in out.doc["comparisons"]}
    v = cmp_[("vocals", "sysA", "sysB")]
    assert v["n_pairs"] == 16 and v["median_diff"] >= 2 and v["p_holm"] < 0.01
    assert "Wilcoxon signed-rank" in out.doc["test"]
    again = collect_ratings([str(f) for f in files], str(res.key_path), str(tmp_path / "res2"), CollectConfig(seed=1))
    assert again.doc["summary"] == out.doc["summary"]  # the bootstrap is seeded


# ---------------------------------------------------------------- the CLI and the report


def _one_line_error(res, code):
    assert res.exit_code == code, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in res.output, res.output
    return lines[0]


def test_cli_builds_collects_and_refuses_bad_input_in_one_line(setup_dirs, tmp_path):
    d = setup_dirs
    run = CliRunner().invoke
    res = run(main, ["listen", str(d["sysA"]), str(d["sysB"]), "--mix-dir", str(d["mixes"]), "--references",
                     str(d["refs"]), "-o", str(tmp_path / "t"), "--tracks", "2", "--excerpt-s", "2", "-q"])
    assert res.exit_code == 0, res.output
    assert "2 track(s), 4 trial(s)" in res.output and "4 found = 2 on the page + 2 not sampled" in res.output
    key = json.loads((tmp_path / "t" / "key.json").read_text())
    f = rater_file(tmp_path / "a.json", key, "a", good)
    res = run(main, ["listen", "--collect", str(f), "--test", str(tmp_path / "t"), "-o", str(tmp_path / "res")])
    assert res.exit_code == 0, res.output
    assert "1 rater(s) = 1 kept + 0 screened out" in res.output
    assert (tmp_path / "res" / "listen-results.png").exists()
    assert "does not exist" in _one_line_error(run(main, ["listen", str(tmp_path / "nope"), "--mix-dir",
                                                          str(d["mixes"]), "-o", str(tmp_path / "x")]), 2)
    assert "--collect needs --test" in _one_line_error(run(main, ["listen", "--collect", str(f), "-o", "r"]), 2)
    assert "no mixes found" in _one_line_error(run(main, ["listen", str(d["sysA"]), "-o", str(tmp_path / "x")]), 2)
    assert "--excerpt-s 0.2" in _one_line_error(run(main, ["listen", str(d["sysA"]), "--mix-dir", str(d["mixes"]),
                                                           "--excerpt-s", "0.2", "-o", str(tmp_path / "x")]), 2)
    assert "key.json" in _one_line_error(run(main, ["listen", "--collect", str(f), "--test", str(tmp_path),
                                                    "-o", str(tmp_path / "r")]), 2)
    res = run(main, ["listen", "--collect", str(tmp_path / "t" / "key.json"), "--test", str(tmp_path / "t"),
                     "-o", str(tmp_path / "r2")])
    assert res.exit_code == 1 and "left out" in res.output and "Traceback" not in res.output


def test_report_shows_listening_results_when_they_exist(built, tmp_path):
    from pairminer.report.listen_results import find_results, section_html

    res, key = built
    out = tmp_path / "OUT"
    f = rater_file(tmp_path / "a.json", key, "a", good)
    collect_ratings([str(f)], str(res.key_path), str(out / "listen" / "results"))
    docs = find_results(str(out))
    assert [d["_path"] for d in docs] == ["listen/results/listen-results.json"]
    html = section_html(docs)
    assert "Listening test results" in html and "sysA" in html and "data:image/png;base64," in html
    assert section_html(find_results(str(tmp_path / "empty"))) == ""


def test_mined_stems_are_a_system_and_wav_is_the_last_resort(setup_dirs, tmp_path, monkeypatch):
    import shutil

    stems = tmp_path / "OUT" / "stems"
    for i in (1, 2):
        dst = stems / "train" / f"song{i}"
        dst.mkdir(parents=True)
        shutil.copy(setup_dirs["mixes"] / f"song{i}.wav", dst / "mixture.wav")
        for s in ("vocals", "instrumental"):
            shutil.copy(setup_dirs["refs"] / f"song{i}" / f"{s}.wav", dst / f"{s}.wav")
    monkeypatch.setattr(sig, "codec", lambda: ("wav", "wav", "audio/wav"))  # no ffmpeg encoder
    res = build_test([str(setup_dirs["sysA"])], str(tmp_path / "t"), ListenConfig(excerpt_s=1.0), stems=str(stems), progress=False)
    key = json.loads(Path(res.key_path).read_text())
    assert key["systems"] == ["mined stems", "sysA"] and res.codec == "wav"
    # the mixes come from the stems: only their two pairs can be tested (sysA's other songs have no mix)
    assert res.counts["included"] == 2 and res.counts["unusable"] == 2
    assert "data:audio/wav;base64," in Path(res.page_path).read_text()

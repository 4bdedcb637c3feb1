"""The listening page in a real headless Chromium, used as a person would: load it over file://, play a
sample (its audio element's currentTime must advance), rate every sample by clicking, download the
ratings, then aggregate two such raters, one of whom the screening drops.

Chromium is driven over its DevTools pipe (tests/listen/cdp.py, standard library only). Without
Chromium the tests skip, saying so.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pairminer.listen.build import build_test
from pairminer.listen.collect import collect_ratings
from pairminer.listen.config import ListenConfig

from .cdp import Browser, ChromiumUnavailable, find_chromium

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")


def careful(stim: dict) -> int:
    """A rater who hears what each sample is: good system high, controls where they belong."""
    return {"hidden_reference": 7, "anchor": 1}.get(stim["kind"]) or {"sysA": 6, "sysB": 2, "mixture": 1}[stim["system"]]


def careless(stim: dict) -> int:
    """A rater who inverts the controls (rates the hidden reference low and the anchor high)."""
    return {"hidden_reference": 2, "anchor": 6}.get(stim["kind"]) or 4


def take_test(page: Path, key: dict, rate, rater: str, download_dir: Path, fmt: str = "json") -> Path:
    """Complete the test in Chromium; return the downloaded file."""
    by_id = {s["id"]: s for t in key["trials"] for s in t["stimuli"]}
    download_dir.mkdir(parents=True, exist_ok=True)
    with Browser(CHROMIUM, download_dir=str(download_dir)) as b:
        b.page(page.resolve().as_uri())
        assert b.js("document.querySelectorAll('script[src], link[href], img[src^=http]').length") == 0
        n_trials = b.js("D.trials.length")
        assert n_trials == len(key["trials"])
        # set the rater id as a person types it
        b.js(f"(() => {{ const e = document.getElementById('pm-rater'); e.value = {json.dumps(rater)}; "
             "e.dispatchEvent(new Event('input')); })()")
        for i in range(n_trials):
            shown = b.js("[...document.querySelectorAll('#pm-trial tr[data-stimulus]')].map(r => r.dataset.stimulus)")
            assert shown == [s["id"] for s in key["trials"][i]["stimuli"]]
            if i == 0:  # play the first sample: play() resolves and the audio runs
                res = b.js(f"new Promise(r => {{ const btn = document.querySelector('button[data-play=\"{shown[0]}\"]'); "
                           "btn.click(); const a = document.getElementById('pm-audio'); const t0 = a.currentTime; "
                           "setTimeout(() => r([a.paused, a.currentTime - t0, btn.textContent, a.error && a.error.code]), 1200); })")
                paused, advanced, label, err = res
                assert err is None and not paused and advanced > 0.3 and label == "Stop", res
            for sid in shown:
                b.js(f"document.querySelector('input[name=\"r-{sid}\"][value=\"{rate(by_id[sid])}\"]').click()")
            if i < n_trials - 1:
                b.js("document.getElementById('pm-next').click()")
        prog = b.js("document.getElementById('pm-progress').textContent")
        total = sum(len(t["stimuli"]) for t in key["trials"])
        assert f"{total} of {total} samples rated" in prog, prog
        b.js(f"document.getElementById('pm-download-{fmt}').click()")
        done = b.wait_event("Browser.downloadProgress", 20, lambda p: p.get("state") in ("completed", "canceled"))
        assert done["state"] == "completed", done
        assert "Downloaded all" in b.js("document.getElementById('pm-status').textContent")
        assert not b.console_errors(), b.console_errors()
    path = Path(done["filePath"]) if done.get("filePath") else next(download_dir.iterdir())
    deadline = time.monotonic() + 5
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return path


def test_a_person_completes_the_test_and_two_raters_are_aggregated(setup_dirs, tmp_path):
    d = setup_dirs
    res = build_test([str(d["sysA"]), str(d["sysB"])], str(tmp_path / "test"),
                     ListenConfig(tracks=2, excerpt_s=2.0, mixture_system=True, seed=3),
                     mix_dir=str(d["mixes"]), references=str(d["refs"]), progress=False)
    key = json.loads(Path(res.key_path).read_text())
    page = Path(res.page_path)
    try:
        good = take_test(page, key, careful, "alice", tmp_path / "dl-alice", "json")
        bad = take_test(page, key, careless, "bob", tmp_path / "dl-bob", "csv")
    except ChromiumUnavailable as exc:  # installed but cannot start here: an environment problem, said so
        pytest.skip(str(exc))
    assert good.suffix == ".json" and bad.suffix == ".csv"
    doc = json.loads(good.read_text())
    assert doc["test_id"] == res.test_id and doc["rater"] == "alice" and doc["complete"]
    assert doc["ratings"][0]["plays"] >= 1  # the sample the test played is counted
    out = collect_ratings([str(good), str(bad)], str(tmp_path / "test"), str(tmp_path / "results"))
    c = out.doc["counts"]
    assert (c["files"], c["files_used"], c["raters"], c["raters_kept"], c["raters_screened"]) == (2, 2, 2, 1, 1)
    assert c["ratings"] == 2 * res.stimuli and c["ratings_kept"] == res.stimuli
    screened = [r for r in out.doc["raters"] if not r["kept"]]
    assert [r["rater"] for r in screened] == ["bob"] and "hidden reference" in screened[0]["reason"]
    means = {(s["source"], s["condition"]): s["mean"] for s in out.doc["summary"]}
    assert means[("vocals", "sysA")] == 6 and means[("vocals", "sysB")] == 2 and means[("vocals", "anchor")] == 1
    assert Path(out.png_path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

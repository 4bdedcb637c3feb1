"""Tests of pairminer.workflow (file.py, freshness.py, run.py) and `pairminer run`: YAML round trip, key errors, freshness, plans, CLI.

The orchestration tests replace the stage calls with a fake that writes each stage's output files and
records the call (so they are fast and say exactly which stages ran); the real-stage tests run
discover + report on a small generated catalog, and tests/core/test_schemas.py runs the whole demo.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from pairminer.cli import main
from pairminer.errors import ConfigError, InputError, OutputError
from pairminer.schemas import json_schema
from pairminer.stages import STAGE_NAMES as STAGES
from pairminer.testing import make_catalog
from pairminer.workflow import file as wff
from pairminer.workflow import run as wfr
from pairminer.workflow.file import Workflow, load_workflow, workflow_from_yaml
from pairminer.workflow.freshness import audio_fingerprint, stage_outputs
from pairminer.workflow.run import run_workflow

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> str:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def run_doc(out) -> dict:
    doc = json.loads((Path(out) / "run.json").read_text(encoding="utf-8"))
    json_schema("run").validate(doc)
    return doc


def statuses(out) -> dict[str, str]:
    return {e["stage"]: e["status"] for e in run_doc(out)["stages"]}


# --------------------------------------------------------------------------------------------------
# The workflow file
# --------------------------------------------------------------------------------------------------

CUSTOM = """\
catalog: data/catalog.csv
out: out
scheduler: synchronous
discover:
  kinds: [instrumental, acapella]
  keywords: {instrumental: [instru]}
  columns: {title: track_name}
  min_score: 85
  audio_root: audio
verify:
  max_seconds: 30
  cache_dir: cache
targets:
  splits: [0.7, 0.2, 0.1]
  sr: 16000
train:
  source: instrumental
  skip_silent_target_db: 40
report:
  genre_mode: split
  genre_separators: [";", "/"]
"""


@pytest.mark.parametrize("name", ["demo.yaml", "cluster.yaml", "custom"])
def test_yaml_round_trip(tmp_path, name):
    path = write(tmp_path / "custom.yaml", CUSTOM) if name == "custom" else str(REPO / "workflows" / name)
    wf = load_workflow(path)
    again = workflow_from_yaml(wf.to_yaml())
    assert again == wf
    for s in STAGES:
        assert again.config(s) == wf.config(s)
    # and a second dump is byte-identical
    assert again.to_yaml() == wf.to_yaml()


def test_custom_values_and_path_resolution(tmp_path):
    wf = load_workflow(write(tmp_path / "custom.yaml", CUSTOM))
    assert wf.catalog == str(tmp_path / "data" / "catalog.csv")  # relative to the file, not the cwd
    assert wf.out == str(tmp_path / "out")
    assert wf.scheduler == "synchronous"
    d = wf.config("discover")
    assert d.kinds == ("instrumental", "acapella") and d.min_score == 85.0 and d.columns == {"title": "track_name"}
    assert d.audio_root == str(tmp_path / "audio")
    assert wf.config("verify").max_seconds == 30.0 and wf.config("verify").cache_dir == str(tmp_path / "cache")
    assert wf.config("targets").splits == (0.7, 0.2, 0.1) and wf.config("targets").sr == 16000
    assert wf.config("train").source == "instrumental" and wf.config("train").skip_silent_target_db == 40.0
    assert wf.train_dir == str(tmp_path / "out" / "runs" / "instrumental")
    assert wf.config("report").genre_separators == (";", "/")
    # -o and --scheduler override the file; a relative -o is relative to the current folder
    wf2 = load_workflow(str(tmp_path / "custom.yaml"), out="elsewhere", scheduler="threads")
    assert wf2.out == os.path.abspath("elsewhere") and wf2.scheduler == "threads"


def test_cluster_workflow_is_production_shaped():
    wf = load_workflow(REPO / "workflows" / "cluster.yaml")
    assert wf.scheduler.startswith("tcp://")
    assert wf.catalog.startswith("s3://") and wf.config("discover").audio_root.startswith("s3://")
    assert wf.config("verify").max_seconds is None  # full-length fingerprints
    assert wf.config("train").device == "cuda"
    assert wf.stages == STAGES
    # the workflow as recorded in run.json fits the run schema's workflow_config
    sub = json_schema("run").json_schema["properties"]["workflow_config"]
    assert set(sub["required"]) <= set(wf.to_dict())


@pytest.mark.parametrize("text, bad, hint", [
    ("catalog: c.csv\nout: o\nverify:\n  max_bre: 0.3\n", "max_bre", "max_ber"),
    ("catalog: c.csv\nout: o\ntargets:\n  nfft: 2048\n", "nfft", "n_fft"),
    ("catalog: c.csv\nout: o\nschedular: threads\n", "schedular", "scheduler"),
    ("catalog: c.csv\nout: o\nverfy: {}\n", "verfy", "verify"),
    ("catalog: c.csv\nout: o\nstages: [discover, reprot]\n", "reprot", "report"),
])
def test_unknown_keys_name_the_nearest_valid_one(tmp_path, text, bad, hint):
    with pytest.raises(ConfigError) as e:
        load_workflow(write(tmp_path / "w.yaml", text))
    assert repr(bad) in str(e.value) and repr(hint) in str(e.value)


@pytest.mark.parametrize("text, needle", [
    ("out: o\n", "catalog"),
    ("catalog: c.csv\n", "out"),
    ("- a\n- b\n", "mapping"),
    ("catalog: c.csv\nout: o\nverify: 3\n", "verify"),
    ("catalog: c.csv\nout: o\nscheduler: gpu\n", "scheduler"),
    ("catalog: c.csv\nout: o\nverify: {min_ber: 0.5, max_ber: 0.3}\n", "min_ber"),
    ("catalog: c.csv\nout: o\ndiscover: {min_score: [1\n", "YAML"),
    ("catalog: c.csv\nout: o\nfingerprint_audio: maybe\n", "fingerprint_audio"),
])
def test_bad_workflows_are_config_errors(tmp_path, text, needle):
    with pytest.raises(ConfigError, match=needle):
        load_workflow(write(tmp_path / "w.yaml", text))


def test_yaml_is_loaded_safely(tmp_path):
    text = "catalog: !!python/object/apply:os.system ['echo pwned']\nout: o\n"
    with pytest.raises(ConfigError, match="YAML"):
        load_workflow(write(tmp_path / "w.yaml", text))


def test_missing_out_may_come_from_the_command_line(tmp_path):
    wf = load_workflow(write(tmp_path / "w.yaml", "catalog: c.csv\n"), out=str(tmp_path / "o"))
    assert wf.out == str(tmp_path / "o")


def test_missing_workflow_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_workflow(tmp_path / "nope.yaml")


# --------------------------------------------------------------------------------------------------
# Orchestration with fake stages (fast; exact call records)
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def fake_stages(monkeypatch):
    """Replace the stage calls: each writes its output files (content = a call counter) and is recorded."""
    class Calls(list):
        fail: dict[str, BaseException] = {}
        fused: list[tuple[str, ...]]

    calls = Calls()
    fail = calls.fail = {}

    def fake_run(wf, stage, progress, *, resume=False):
        calls.append((stage, resume))
        if stage in fail:
            raise fail[stage]
        for p in stage_outputs(wf, stage):
            Path(p).parent.mkdir(parents=True, exist_ok=True)
            Path(p).write_text(f"{stage} call {len(calls)}\n")
        return {"stage": stage, "n": len(calls)}

    def fake_fused(wf, stages, progress):
        calls.fused.append(tuple(stages))
        return {s: fake_run(wf, s, progress) for s in stages}

    calls.fused = []
    monkeypatch.setattr(wfr, "run_stage", fake_run)
    monkeypatch.setattr(wfr, "run_fused", fake_fused)
    monkeypatch.setattr(wfr, "stage_results", lambda stage, res: {"counts": {"n": res["n"]}})
    return calls


def _wf(tmp_path, **sections) -> str:
    if not (tmp_path / "catalog.csv").exists():
        (tmp_path / "catalog.csv").write_text("track_id,artist,title,duration\n1,a,b,3\n")
    body = "catalog: catalog.csv\nout: out\n"
    for k, v in sections.items():
        body += f"{k}: {json.dumps(v)}\n"
    return write(tmp_path / "w.yaml", body)


def ran(calls) -> list[str]:
    return [c[0] for c in calls]


def test_second_run_does_no_work(tmp_path, fake_stages):
    path = _wf(tmp_path)
    first = run_workflow(path)
    assert ran(fake_stages) == list(STAGES) and first.ran == list(STAGES)
    assert statuses(tmp_path / "out") == {s: "ran" for s in STAGES}
    fake_stages.clear()
    second = run_workflow(path)
    assert fake_stages == []
    assert second.skipped == list(STAGES)
    doc = run_doc(tmp_path / "out")
    assert all(e["status"] == "skipped" and e["reason"] == "fresh" for e in doc["stages"])
    assert all(e["duration_s"] is None for e in doc["stages"])
    assert set(doc["timings_s"]) == {"total"}  # no stage time was spent
    # run.json's workflow_config is a workflow file that gives back the same workflow
    assert wff.workflow_from_dict(doc["workflow_config"]) == load_workflow(path)
    # the counts of the last real run are still there
    assert [e["last_success"]["results"]["counts"]["n"] for e in doc["stages"]] == list(range(1, len(STAGES) + 1))


@pytest.mark.parametrize("stage, change", [
    ("discover", {"min_score": 80}),
    ("verify", {"max_ber": 0.3}),
    ("targets", {"hop": 512}),
    ("train", {"lr": 0.002}),
    ("report", {"top_n": 5}),
])
def test_config_change_reruns_that_stage_and_later_ones_only(tmp_path, fake_stages, stage, change):
    run_workflow(_wf(tmp_path))
    fake_stages.clear()
    res = run_workflow(_wf(tmp_path, **{stage: change}))
    later = list(STAGES[STAGES.index(stage):])
    assert ran(fake_stages) == later
    assert res.skipped == list(STAGES[:STAGES.index(stage)])
    key, _ = next(iter(change.items()))
    old = getattr(load_workflow(_wf(tmp_path)).config(stage), key)
    new = getattr(load_workflow(_wf(tmp_path, **{stage: change})).config(stage), key)
    assert old != new
    assert res.outcome(stage).reason == f"config changed: {key} {old!r} -> {new!r}"
    for s in later[1:]:
        assert res.outcome(s).reason == f"upstream stage {stage} ran"
    # and the next run is fresh again
    fake_stages.clear()
    run_workflow(_wf(tmp_path, **{stage: change}))
    assert fake_stages == []


def test_changed_input_and_missing_output(tmp_path, fake_stages):
    path = _wf(tmp_path)
    run_workflow(path)
    fake_stages.clear()
    (tmp_path / "catalog.csv").write_text("track_id,artist,title,duration\n1,a,b,3\n2,a,c,4\n")
    res = run_workflow(path)
    assert ran(fake_stages) == list(STAGES)
    assert res.outcome("discover").reason == f"input changed: {tmp_path / 'catalog.csv'}"
    fake_stages.clear()
    os.remove(tmp_path / "out" / "verify-report.json")
    res = run_workflow(path)
    assert ran(fake_stages) == ["verify", "targets", "stems", "train", "report"]
    assert res.outcome("verify").reason.startswith("output missing")
    fake_stages.clear()
    # an output rewritten behind the workflow's back (e.g. a manual `pairminer targets`) counts as changed
    (tmp_path / "out" / "targets" / "manifest.parquet").write_text("rewritten by hand, longer than before\n")
    run_workflow(path)
    assert ran(fake_stages) == ["targets", "stems", "train", "report"]


def test_force_reruns_everything_in_range(tmp_path, fake_stages):
    path = _wf(tmp_path)
    run_workflow(path)
    fake_stages.clear()
    res = run_workflow(path, force=True, from_stage="verify", until="train")
    assert ran(fake_stages) == ["verify", "targets", "stems", "train"]
    assert res.outcome("verify").reason == "forced (--force)"
    assert statuses(tmp_path / "out") == {"discover": "not_selected", "verify": "ran", "targets": "ran", "stems": "ran",
                                          "train": "ran", "report": "not_selected"}


def test_from_until_keep_the_state_of_other_stages(tmp_path, fake_stages):
    path = _wf(tmp_path)
    res = run_workflow(path, until="verify")
    assert ran(fake_stages) == ["discover", "verify"]
    assert [o.status for o in res.outcomes] == ["ran", "ran", "not_selected", "not_selected", "not_selected", "not_selected"]
    fake_stages.clear()
    res = run_workflow(path, from_stage="targets", until="targets")
    assert ran(fake_stages) == ["targets"]
    doc = run_doc(tmp_path / "out")
    # discover and verify were not selected but keep their last success, so a full run skips them
    assert doc["stages"][0]["status"] == "not_selected" and doc["stages"][0]["last_success"] is not None
    fake_stages.clear()
    res = run_workflow(path)
    assert ran(fake_stages) == ["stems", "train", "report"]
    assert res.skipped == ["discover", "verify", "targets"]
    with pytest.raises(ConfigError, match="comes after"):
        run_workflow(path, from_stage="train", until="verify")
    with pytest.raises(ConfigError, match="'report'"):
        run_workflow(path, until="reprot")


def test_stages_key_limits_the_workflow(tmp_path, fake_stages):
    res = run_workflow(_wf(tmp_path, stages=["discover", "report"]))
    assert ran(fake_stages) == ["discover", "report"]
    assert res.outcome("train").reason == "not in this workflow's stages"


def test_dry_run_plans_and_runs_nothing(tmp_path, fake_stages):
    path = _wf(tmp_path)
    res = run_workflow(path, dry_run=True)
    assert fake_stages == [] and not (tmp_path / "out" / "run.json").exists()
    assert [(o.status, o.reason) for o in res.outcomes][:2] == [("would_run", "never ran"),
                                                                ("would_run", "upstream stage discover would run")]
    run_workflow(path)
    before = (tmp_path / "out" / "run.json").read_bytes()
    fake_stages.clear()
    res = run_workflow(_wf(tmp_path, targets={"shard_mb": 64}), dry_run=True)
    assert fake_stages == []
    assert (tmp_path / "out" / "run.json").read_bytes() == before
    plan = wfr.format_plan(res).splitlines()
    assert plan == [
        "discover: would skip (fresh)",
        "verify: would skip (fresh)",
        "targets: would run (config changed: shard_mb 256.0 -> 64.0)",
        "stems: would run (upstream stage targets would run)",
        "train: would run (upstream stage targets would run)",
        "report: would run (upstream stage targets would run)",
    ]


def test_failure_is_recorded_and_the_next_run_resumes_there(tmp_path, fake_stages):
    path = _wf(tmp_path)
    fake_stages.fail["train"] = InputError("manifest.parquet is broken; rerun targets")
    with pytest.raises(InputError, match="broken"):
        run_workflow(path)
    doc = run_doc(tmp_path / "out")
    assert doc["status"] == "failed"
    st = {e["stage"]: e for e in doc["stages"]}
    assert st["train"]["status"] == "failed" and "broken" in st["train"]["error"]
    assert st["train"]["last_success"] is None and "report" not in st
    del fake_stages.fail["train"]
    fake_stages.clear()
    res = run_workflow(path)
    assert ran(fake_stages) == ["train", "report"]
    assert res.outcome("train").reason == "last attempt failed: manifest.parquet is broken; rerun targets"


def test_verify_and_targets_run_as_one_pass_only_when_both_run(tmp_path, fake_stages):
    path = _wf(tmp_path)
    run_workflow(path)
    assert fake_stages.fused == [("verify", "targets", "stems")]
    doc = run_doc(tmp_path / "out")
    st = {e["stage"]: e for e in doc["stages"]}
    # each stage keeps its own entry, with the fingerprints that make the next run skip it
    assert st["verify"]["status"] == st["targets"]["status"] == "ran"
    verified = str(tmp_path / "out" / "verified.parquet")
    assert any(i["path"] == verified and i.get("exists", True) for i in st["targets"]["last_success"]["inputs"])
    fake_stages.clear()
    fake_stages.fused.clear()
    assert run_workflow(path).skipped == list(STAGES) and fake_stages.fused == []
    # only targets runs: the separate path
    run_workflow(_wf(tmp_path, targets={"shard_mb": 64}))
    assert fake_stages.fused == [("targets", "stems")] and ran(fake_stages) == ["targets", "stems", "train", "report"]
    # until verify: verify alone
    fake_stages.clear()
    run_workflow(_wf(tmp_path, verify={"max_ber": 0.3}), until="verify")
    assert fake_stages.fused == [("targets", "stems")] and ran(fake_stages) == ["verify"]


def test_a_failed_one_pass_marks_both_stages_failed(tmp_path, fake_stages):
    path = _wf(tmp_path)
    fake_stages.fail["targets"] = InputError("disk full")
    with pytest.raises(InputError, match="disk full"):
        run_workflow(path)
    st = {e["stage"]: e for e in run_doc(tmp_path / "out")["stages"]}
    assert st["verify"]["status"] == st["targets"]["status"] == "failed"
    assert "disk full" in st["targets"]["error"] and "train" not in st
    del fake_stages.fail["targets"]
    fake_stages.clear()
    res = run_workflow(path)
    assert ran(fake_stages) == ["verify", "targets", "stems", "train", "report"]
    assert res.outcome("verify").reason.startswith("last attempt failed")


def test_interrupted_training_resumes_but_changed_training_starts_over(tmp_path, fake_stages):
    path = _wf(tmp_path)
    fake_stages.fail["train"] = KeyboardInterrupt()  # killed: run.json still says "running"
    with pytest.raises(KeyboardInterrupt):
        run_workflow(path)
    assert statuses(tmp_path / "out")["train"] == "running"
    del fake_stages.fail["train"]
    fake_stages.clear()
    assert run_workflow(path).outcome("train").reason == "last attempt was interrupted"
    assert fake_stages[0] == ("train", True)  # same config and inputs: continue from the checkpoint
    # a config change starts a fresh run: the files the runs wrote are removed, a file the user put
    # there is not (round three #2)
    marker = Path(load_workflow(path).train_dir) / "old-checkpoint.pt"
    marker.write_text("x")
    fake_stages.clear()
    run_workflow(_wf(tmp_path, train={"lr": 0.002}))
    assert fake_stages == [("train", False), ("report", False)] and marker.read_text() == "x"


def _stage_also_writes(monkeypatch, stage: str, rel: str) -> list[bool]:
    """Make the fake `stage` also write OUT/`rel`; return, per call, whether the file was there when it
    was called (the runner removed it before the call or not)."""
    seen: list[bool] = []
    inner, inner_fused = wfr.run_stage, wfr.run_fused

    def write(wf, names):
        if stage in names:
            p = Path(wf.out) / rel
            seen.append(p.exists())
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(f"{stage} wrote this\n")

    def run(wf, name, progress, *, resume=False):
        write(wf, [name])
        return inner(wf, name, progress, resume=resume)

    def fused(wf, names, progress):
        write(wf, names)
        return inner_fused(wf, names, progress)

    monkeypatch.setattr(wfr, "run_stage", run)
    monkeypatch.setattr(wfr, "run_fused", fused)
    return seen


def test_targets_folder_is_cleared_only_when_its_config_changes(tmp_path, fake_stages, monkeypatch):
    seen = _stage_also_writes(monkeypatch, "targets", "targets/shards/shard-000000.npy")
    path = _wf(tmp_path)
    run_workflow(path)
    notes = tmp_path / "out" / "targets" / "notes.txt"  # the user's own file
    notes.write_text("mine")
    (tmp_path / "catalog.csv").write_text("track_id,artist,title,duration\n9,a,b,3\n")
    run_workflow(path)  # upstream change: targets works incrementally in its folder
    run_workflow(_wf(tmp_path, targets={"n_fft": 2048}))  # other STFT: start without its old files
    assert seen == [False, True, False]
    assert notes.read_text() == "mine"


def test_audio_fingerprint_sees_replaced_and_missing_files(tmp_path):
    audio = [tmp_path / f"{n}.flac" for n in "abcd"]
    for p in audio:
        p.write_bytes(b"0" * 10)
    table = tmp_path / "verified.parquet"
    pd.DataFrame({"mix_audio_path": [str(audio[0]), "b.flac", str(audio[2])],
                  "version_audio_path": [str(audio[1]), str(audio[3]), str(tmp_path / "gone.flac")],
                  "status": ["verified", "verified", "error"]}).to_parquet(table)
    all_ = audio_fingerprint(str(table))
    assert all_["n_files"] == 5 and all_["n_missing"] == 1  # relative b.flac resolves next to the table
    ver = audio_fingerprint(str(table), only_verified=True)
    assert ver["n_files"] == 3 and ver["n_missing"] == 0
    audio[3].write_bytes(b"0" * 11)
    changed = audio_fingerprint(str(table), only_verified=True)
    assert changed["digest"] != ver["digest"]
    assert audio_fingerprint(str(table))["digest"] != all_["digest"]
    all_changed = audio_fingerprint(str(table))
    audio[2].write_bytes(b"1" * 12)  # only in an error row: not read by targets
    assert audio_fingerprint(str(table), only_verified=True)["digest"] == changed["digest"]
    assert audio_fingerprint(str(table))["digest"] != all_changed["digest"]  # but verify reads it


# --------------------------------------------------------------------------------------------------
# Real stages: discover + report on a generated catalog (no audio needed)
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def real_workflow(tmp_path):
    g = make_catalog(400, seed=3)
    g.catalog.to_csv(tmp_path / "catalog.csv", index=False)
    return write(tmp_path / "w.yaml", """\
        catalog: catalog.csv
        out: out
        scheduler: synchronous
        stages: [discover, report]
        discover: {min_score: 90}
        report: {top_n: 5}
        """), g


def test_real_discover_and_report_skip_when_fresh(real_workflow, tmp_path, monkeypatch):
    path, g = real_workflow
    res = run_workflow(path, progress=False)
    assert res.ran == ["discover", "report"]
    cands = pd.read_parquet(tmp_path / "out" / "candidates.parquet")
    counts = res.outcome("discover").results["counts"]
    assert counts["kept"] == len(cands) > 0 and counts["rows_read"] == len(g.catalog)
    assert (tmp_path / "out" / "report" / "report.html").exists()
    mtime = os.stat(tmp_path / "out" / "candidates.parquet").st_mtime_ns

    real = wfr.run_stage
    calls = []
    monkeypatch.setattr(wfr, "run_stage", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    res = run_workflow(path, progress=False)
    assert calls == [] and res.skipped == ["discover", "report"]
    assert os.stat(tmp_path / "out" / "candidates.parquet").st_mtime_ns == mtime
    assert res.outcome("discover").results["counts"]["kept"] == len(cands)

    text = Path(path).read_text().replace("top_n: 5", "top_n: 3")
    Path(path).write_text(text)
    res = run_workflow(path, progress=False)
    assert calls == ["report"]
    assert json.loads((tmp_path / "out" / "report" / "report.json").read_text())["config"]["top_n"] == 3


def test_real_discover_with_an_fsspec_url_output(real_workflow, tmp_path):
    import fsspec

    path, _ = real_workflow
    out = f"memory://pairminer-test-{tmp_path.name}/out"
    res = run_workflow(path, out, until="discover", progress=False)
    assert res.ran == ["discover"]
    fs = fsspec.filesystem("memory")
    root = out[len("memory://"):]
    assert fs.exists(f"{root}/candidates.parquet") and fs.exists(f"{root}/run.json")
    doc = json.loads(fs.cat(f"{root}/run.json"))
    json_schema("run").validate(doc)
    assert run_workflow(path, out, until="discover", progress=False).skipped == ["discover"]
    fs.rm(f"{root}/rejects.parquet")
    res = run_workflow(path, out, until="discover", progress=False)
    assert res.ran == ["discover"] and res.outcome("discover").reason.startswith("output missing")
    fs.rm(f"/{root.split('/')[0]}", recursive=True)


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def test_cli_run_skip_dry_run_and_errors(real_workflow, tmp_path):
    path, _ = real_workflow
    r = CliRunner()
    out = tmp_path / "cli-out"
    res = r.invoke(main, ["run", path, "-o", str(out), "-q", "--until", "discover"])
    assert res.exit_code == 0, res.output
    assert "discover: running (never ran)" in res.output and "report" not in res.output.split("->")[0].replace(
        "0 skipped", "")
    res = r.invoke(main, ["run", path, "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert "discover: skipped (fresh)" in res.output and "report: running (never ran)" in res.output
    assert statuses(out) == {"discover": "skipped", "report": "ran", "verify": "not_selected", "stems": "not_selected",
                             "targets": "not_selected", "train": "not_selected"}
    res = r.invoke(main, ["run", path, "-o", str(out), "--dry-run", "--force", "--from", "report"])
    assert res.exit_code == 0, res.output
    assert "report: would run (forced (--force))" in res.output and "discover: not run" in res.output
    bad = write(tmp_path / "bad.yaml", "catalog: catalog.csv\nout: o\nverify: {max_bre: 0.3}\n")
    res = r.invoke(main, ["run", bad])
    assert res.exit_code == 2
    assert "unknown verify option 'max_bre'; did you mean 'max_ber'?" in res.output
    assert "Traceback" not in res.output
    res = r.invoke(main, ["run", path, "--until", "nope"])
    assert res.exit_code == 2 and "nope" in res.output


def test_cli_failing_stage_is_one_line(tmp_path):
    (tmp_path / "catalog.csv").write_text("not,a,catalog\n")
    path = write(tmp_path / "w.yaml", "catalog: catalog.csv\nout: out\nstages: [discover]\n")
    res = CliRunner().invoke(main, ["run", path, "-q"])
    assert res.exit_code != 0 and res.output.count("error:") == 1 and "Traceback" not in res.output
    assert "discover: failed" in res.output
    assert statuses(tmp_path / "out")["discover"] == "failed"


def test_workflow_object_api(tmp_path, fake_stages):
    wf = Workflow(catalog=str(tmp_path / "c.csv"), out=str(tmp_path / "o"), stages=("discover",))
    (tmp_path / "c.csv").write_text("x\n")
    res = run_workflow(wf)
    assert res.ran == ["discover"] and run_doc(tmp_path / "o")["workflow"] is None


# --------------------------------------------------------------------------------------------------
# Never deleting what a run did not write; content-aware freshness (issue 17 #9)
# --------------------------------------------------------------------------------------------------


def test_a_train_folder_the_workflow_did_not_create_is_never_deleted(tmp_path, fake_stages):
    path = _wf(tmp_path)
    mine = tmp_path / "out" / "runs" / "vocals"
    mine.mkdir(parents=True)
    (mine / "my-notes.txt").write_text("the user's own file")
    with pytest.raises(OutputError) as e:
        run_workflow(path)
    assert "never deletes what it did not write" in str(e.value) and str(mine) in str(e.value)
    assert (mine / "my-notes.txt").read_text() == "the user's own file"
    assert ran(fake_stages) == ["discover", "verify", "targets", "stems"]  # train refused before it ran
    assert run_doc(tmp_path / "out")["stages"][4]["status"] == "failed"


def test_a_folder_the_workflow_created_is_recorded_and_cleared_on_reconfigure(tmp_path, fake_stages, monkeypatch):
    seen = _stage_also_writes(monkeypatch, "train", "runs/vocals/old.pt")
    path = _wf(tmp_path)
    run_workflow(path)
    doc = run_doc(tmp_path / "out")
    owned = {e["stage"]: e["owned"] for e in doc["stages"]}
    assert owned == {"discover": [], "verify": [], "targets": ["targets"], "stems": ["stems"], "train": [os.path.join("runs", "vocals")],
                     "report": []}
    written = {e["stage"]: [w["path"] for w in e.get("written", [])] for e in doc["stages"]}
    assert "runs/vocals/old.pt" in written["train"] and "runs/vocals/checkpoint-last.pt" in written["train"]
    run_workflow(_wf(tmp_path, train={"lr": 0.002}))
    assert seen == [False, False]  # removed before the rerun
    # ownership is carried through runs that skip the stage
    run_workflow(_wf(tmp_path, train={"lr": 0.002}))
    assert {e["stage"]: e["owned"] for e in run_doc(tmp_path / "out")["stages"]}["train"] == owned["train"]


def test_an_empty_existing_folder_counts_as_created(tmp_path, fake_stages):
    (tmp_path / "out" / "runs" / "vocals").mkdir(parents=True)
    run_workflow(_wf(tmp_path))
    assert ran(fake_stages) == list(STAGES)


def test_touching_an_input_without_changing_it_keeps_every_stage_fresh(tmp_path, fake_stages):
    path = _wf(tmp_path)
    run_workflow(path)
    model = tmp_path / "out" / "runs" / "vocals" / "checkpoint-last.pt"
    before = model.read_text()
    fake_stages.clear()
    catalog = tmp_path / "catalog.csv"
    st = catalog.stat()
    os.utime(catalog, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # `touch`
    res = run_workflow(path)
    assert fake_stages == [] and res.skipped == list(STAGES)
    assert model.read_text() == before
    # the same size with other bytes is a change
    catalog.write_text(catalog.read_text().replace("1,a,b,3", "1,a,c,3"))
    assert catalog.stat().st_size == st.st_size
    res = run_workflow(path)
    assert ran(fake_stages) == list(STAGES)
    assert res.outcome("discover").reason == f"input changed: {catalog}"
    # an output touched behind the workflow's back is still fresh when its bytes are the same
    fake_stages.clear()
    report = tmp_path / "out" / "report" / "report.json"
    os.utime(report, ns=(report.stat().st_atime_ns, report.stat().st_mtime_ns + 10**9))
    assert run_workflow(path).skipped == list(STAGES)


def test_run_json_records_content_hashes(tmp_path, fake_stages):
    import hashlib

    path = _wf(tmp_path)
    run_workflow(path)
    entry = run_doc(tmp_path / "out")["stages"][0]["last_success"]
    want = hashlib.sha256((tmp_path / "catalog.csv").read_bytes()).hexdigest()
    assert entry["inputs"][0]["sha256"] == want
    assert all("sha256" in o for o in entry["outputs"] if o["size"] >= 0)


# --------------------------------------------------------------------------------------------------
# Checked before any work
# --------------------------------------------------------------------------------------------------


def test_url_output_without_its_backend_is_refused_before_any_work(tmp_path, fake_stages, monkeypatch):
    import fsspec

    real = fsspec.get_filesystem_class

    def no_s3(protocol):
        if protocol == "s3":
            raise ImportError("Install s3fs to access S3")
        return real(protocol)

    monkeypatch.setattr(fsspec, "get_filesystem_class", no_s3)
    with pytest.raises(ConfigError, match=r"-o / out: s3://bucket/out: Install s3fs.*not installed"):
        run_workflow(_wf(tmp_path), "s3://bucket/out", until="discover")
    assert fake_stages == []
    with pytest.raises(ConfigError, match="unknown URL scheme nosuch://"):
        run_workflow(_wf(tmp_path), "nosuch://bucket/out", until="discover")
    res = CliRunner().invoke(main, ["discover", str(tmp_path / "catalog.csv"), "-o", "s3://bucket/out", "-q",
                                    "--until", "discover"])
    assert res.exit_code == 2 and "s3fs" in res.output and "Traceback" not in res.output
    assert fake_stages == []


def test_url_output_with_local_only_stages_is_refused_before_any_work(tmp_path, fake_stages):
    with pytest.raises(ConfigError, match="targets and stems and train .* --until verify"):
        run_workflow(_wf(tmp_path), "memory://pm-wf/out")
    assert fake_stages == []


# --------------------------------------------------------------------------------------------------
# `pairminer discover` is a slice of the same runner
# --------------------------------------------------------------------------------------------------


def test_discover_writes_run_json_and_then_skips(tmp_path, fake_stages):
    _wf(tmp_path)
    r = CliRunner()
    args = ["discover", str(tmp_path / "catalog.csv"), "-o", str(tmp_path / "out"), "-q"]
    res = r.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert ran(fake_stages) == ["discover", "verify", "targets", "stems"]
    assert statuses(tmp_path / "out") == {"discover": "ran", "verify": "ran", "targets": "ran", "stems": "ran",
                                          "train": "not_selected", "report": "not_selected"}
    fake_stages.clear()
    res = r.invoke(main, args)
    assert fake_stages == [] and "discover: skipped (fresh" in res.output
    # the same folder continues with `pairminer run`: discover, verify and targets are fresh there
    (tmp_path / "w2.yaml").write_text(f"catalog: catalog.csv\nout: out\n")
    assert run_workflow(str(tmp_path / "w2.yaml")).ran == ["train", "report"]
    fake_stages.clear()
    res = r.invoke(main, [*args, "--force", "--until", "verify"])
    assert res.exit_code == 0 and ran(fake_stages) == ["discover", "verify"]


def test_discover_old_until_spellings_are_aliases_with_a_note(tmp_path, fake_stages):
    _wf(tmp_path)
    for old, new, stages_run in (("candidates", "discover", ["discover"]), ("verified", "verify", ["discover", "verify"])):
        fake_stages.clear()
        res = CliRunner().invoke(main, ["discover", str(tmp_path / "catalog.csv"), "-o", str(tmp_path / old),
                                        "-q", "--until", old])
        assert res.exit_code == 0, res.output
        assert f"note: --until {old} is an old spelling; use --until {new}" in res.stderr
        assert ran(fake_stages) == stages_run


def test_discover_config_file_reads_like_a_workflow_file(tmp_path, fake_stages, monkeypatch):
    _wf(tmp_path)
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "c.yaml").write_text("discover: {min_score: 80, audio_root: audio}\nverify: {cache_dir: cache}\n")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    res = CliRunner().invoke(main, ["discover", "../catalog.csv", "-o", "out", "--config", str(conf / "c.yaml"),
                                    "-q", "--until", "verify", "--max-delta", "2"])
    assert res.exit_code == 0, res.output
    cfg = run_doc(elsewhere / "out")["workflow_config"]
    assert cfg["catalog"] == str(tmp_path / "catalog.csv")
    assert cfg["discover"]["audio_root"] == str(conf / "audio")  # the file's folder, as in a workflow
    assert cfg["verify"]["cache_dir"] == str(conf / "cache")
    assert cfg["discover"]["min_score"] == 80.0 and cfg["discover"]["max_delta"] == 2.0  # CLI over file
    # a command-line --audio-root is relative to the current folder, for every stage that reads audio
    res = CliRunner().invoke(main, ["discover", "../catalog.csv", "-o", "out2", "--audio-root", "a", "-q",
                                    "--until", "verify"])
    cfg = run_doc(elsewhere / "out2")["workflow_config"]
    assert cfg["discover"]["audio_root"] == cfg["verify"]["audio_root"] == str(elsewhere / "a")
    # a misspelt section is an error naming the nearest one (it used to be ignored)
    (conf / "bad.yaml").write_text("verfy: {max_ber: 0.3}\n")
    res = CliRunner().invoke(main, ["discover", "../catalog.csv", "-o", "out3", "--config", str(conf / "bad.yaml")])
    assert res.exit_code == 2 and "unknown top-level key 'verfy'; did you mean 'verify'?" in res.output


def test_file_url_inputs_are_fingerprinted(tmp_path):
    from pairminer.workflow.freshness import file_fingerprint, same_file

    p = tmp_path / "c.csv"
    p.write_text("a,b\n")
    fp = file_fingerprint(f"file://{p}", content=True)
    assert fp["size"] == 4 and fp["sha256"] and fp["path"] == f"file://{p}"
    p.write_text("a,c\n")
    assert not same_file(fp, file_fingerprint(f"file://{p}"))


def test_a_touched_file_is_hashed_once_then_its_new_stats_are_recorded(tmp_path, fake_stages, monkeypatch):
    from pairminer.workflow import freshness

    path = _wf(tmp_path)
    run_workflow(path)
    catalog = tmp_path / "catalog.csv"
    st = catalog.stat()
    os.utime(catalog, ns=(st.st_atime_ns, st.st_mtime_ns + 7_000_000_000))
    assert run_workflow(path).skipped == list(STAGES)
    entry = run_doc(tmp_path / "out")["stages"][0]["last_success"]["inputs"][0]
    assert entry["mtime_ns"] == st.st_mtime_ns + 7_000_000_000 and entry["size"] == st.st_size and entry["sha256"]
    freshness._hash_of.cache_clear()
    monkeypatch.setattr(freshness, "content_hash", lambda p: pytest.fail(f"{p} hashed again"))
    assert run_workflow(path).skipped == list(STAGES)


def test_hash_in_background_records_only_files_unchanged_since_their_stat(tmp_path):
    """Input content hashes run beside the stage; a file rewritten meanwhile gets no (stale) sha256."""
    import hashlib
    import os

    from pairminer.workflow.freshness import file_fingerprint, hash_in_background

    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_bytes(b"x" * 3_000_000)
    b.write_bytes(b"y" * 10)
    fps = [file_fingerprint(str(a)), file_fingerprint(str(b)), file_fingerprint(str(tmp_path / "missing.csv"))]
    wait = hash_in_background(fps)
    b.write_bytes(b"z" * 11)  # changed after its stat: its size differs now
    os.utime(b, ns=(fps[1]["mtime_ns"] + 5_000_000_000,) * 2)
    out = wait()
    assert out[0]["sha256"] == hashlib.sha256(a.read_bytes()).hexdigest()
    assert "sha256" not in out[1] and out[1] == fps[1]
    assert out[2] == {"path": str(tmp_path / "missing.csv"), "size": -1, "mtime_ns": None}


# --------------------------------------------------------------------------------------------------
# Round three #2, #3, #4: file-level records, entries per output folder, one writer per OUT
# --------------------------------------------------------------------------------------------------


def test_rerun_removes_only_the_files_the_run_wrote(tmp_path, fake_stages, monkeypatch):
    """#2: max_steps 4 -> 5 used to wipe runs/vocals, with the user's eval.json and separated/ in it."""
    _stage_also_writes(monkeypatch, "train", "runs/vocals/metrics.jsonl")
    run_workflow(_wf(tmp_path, train={"max_steps": 4}))
    run_dir = tmp_path / "out" / "runs" / "vocals"
    (run_dir / "eval.json").write_text("{}")
    (run_dir / "separated" / "song").mkdir(parents=True)
    (run_dir / "separated" / "song" / "vocals.wav").write_bytes(b"RIFF")
    (tmp_path / "out" / "targets" / "notes.txt").write_text("mine")
    seen = _stage_also_writes(monkeypatch, "train", "runs/vocals/metrics.jsonl")
    run_workflow(_wf(tmp_path, train={"max_steps": 5}))
    assert seen == [False]  # the run's own file was removed before the rerun
    assert (run_dir / "eval.json").read_text() == "{}"
    assert (run_dir / "separated" / "song" / "vocals.wav").read_bytes() == b"RIFF"
    assert (tmp_path / "out" / "targets" / "notes.txt").read_text() == "mine"
    # --force and a targets reconfiguration keep them too
    run_workflow(_wf(tmp_path, train={"max_steps": 5}, targets={"n_fft": 2048}))
    run_workflow(_wf(tmp_path, train={"max_steps": 5}, targets={"n_fft": 2048}), force=True)
    assert (run_dir / "eval.json").exists() and (run_dir / "separated" / "song" / "vocals.wav").exists()
    assert (tmp_path / "out" / "targets" / "notes.txt").read_text() == "mine"


def test_files_of_a_killed_run_are_known_and_user_files_are_not(tmp_path, fake_stages, monkeypatch):
    run_workflow(_wf(tmp_path))
    run_dir = tmp_path / "out" / "runs" / "vocals"
    (run_dir / "eval.json").write_text("{}")
    inner = wfr.run_stage

    def killed(wf, name, progress, *, resume=False):
        if name == "train":
            (run_dir / "checkpoint-0003.pt").write_text("partial")
            raise KeyboardInterrupt
        return inner(wf, name, progress, resume=resume)

    monkeypatch.setattr(wfr, "run_stage", killed)
    with pytest.raises(KeyboardInterrupt):
        run_workflow(_wf(tmp_path, train={"lr": 0.01}))
    monkeypatch.setattr(wfr, "run_stage", inner)
    run_workflow(_wf(tmp_path, train={"lr": 0.02}))
    assert not (run_dir / "checkpoint-0003.pt").exists()
    assert (run_dir / "eval.json").read_text() == "{}"


def test_a_file_changed_after_the_run_wrote_it_is_kept(tmp_path, fake_stages, caplog):
    run_workflow(_wf(tmp_path))
    ck = tmp_path / "out" / "runs" / "vocals" / "train-report.json"
    ck.write_text("the user's edit, another size")
    run_workflow(_wf(tmp_path, train={"lr": 0.01}))
    assert any("changed since pairminer wrote it" in r.getMessage() for r in caplog.records)


def test_two_workflows_in_one_out_keep_their_own_train_entries(tmp_path, fake_stages):
    """#3: a vocals and an instrumental workflow sharing OUT shared one train entry: each run of one
    retrained (and first deleted) the other's model."""
    vocals = _wf(tmp_path, train={"source": "vocals"})
    instr = write(tmp_path / "instr.yaml", Path(vocals).read_text().replace('"vocals"', '"instrumental"'))
    run_workflow(vocals)
    run_workflow(instr)
    model_v = tmp_path / "out" / "runs" / "vocals" / "checkpoint-last.pt"
    model_i = tmp_path / "out" / "runs" / "instrumental" / "checkpoint-last.pt"
    before = model_v.read_text(), model_i.read_text()
    fake_stages.clear()
    assert run_workflow(vocals).skipped == list(STAGES)
    assert run_workflow(instr).skipped == list(STAGES)
    assert fake_stages == [] and (model_v.read_text(), model_i.read_text()) == before
    doc = run_doc(tmp_path / "out")
    outputs = sorted((e["stage"], e["output"]) for e in doc["stages"] + doc["other_entries"] if e["stage"] == "train")
    assert outputs == [("train", "runs/instrumental"), ("train", "runs/vocals")]
    # a change of the vocals training reruns vocals only
    run_workflow(_wf(tmp_path, train={"source": "vocals", "lr": 0.01}))
    assert model_i.read_text() == before[1]
    fake_stages.clear()
    assert run_workflow(instr).skipped == list(STAGES)


def _hold_lock(folder: Path, ready: Path):
    import subprocess
    import sys

    code = ("import sys, time, pathlib; from pairminer.locking import output_lock\n"
            "with output_lock(sys.argv[1], what='pairminer run other.yaml'):\n"
            "    pathlib.Path(sys.argv[2]).write_text('x'); time.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.Popen([sys.executable, "-c", code, str(folder), str(ready)], env=env)
    import time

    for _ in range(200):
        if ready.exists():
            return p
        time.sleep(0.05)
    p.kill()
    raise AssertionError("the lock holder did not start")


def test_a_second_run_into_a_locked_out_is_refused_with_the_holder(tmp_path, fake_stages):
    """#4: two runs into one OUT interleaved their files and both reported success."""
    path = _wf(tmp_path)
    out = tmp_path / "out"
    holder = _hold_lock(out, tmp_path / "ready")
    try:
        res = CliRunner().invoke(main, ["run", path, "-q"])
        assert res.exit_code == 1, res.output
        err = res.stderr if hasattr(res, "stderr") else res.output
        assert "is being written by another pairminer run" in err and f"pid {holder.pid}" in err
        assert "pairminer run other.yaml" in err and "Traceback" not in res.output + err
        assert fake_stages == [] and not (out / "run.json").exists()
        # a stage command writing inside OUT is refused as well
        res = CliRunner().invoke(main, ["train", str(out / "targets"), "-o", str(out / "runs" / "vocals"), "-q"])
        assert res.exit_code == 1 and "is being written by another pairminer run" in res.stderr
    finally:
        holder.kill()
        holder.wait()
    assert run_workflow(path).ran == list(STAGES)  # the kernel dropped the lock with its holder


def test_a_workflow_refuses_an_out_whose_train_folder_a_command_writes(tmp_path, fake_stages):
    path = _wf(tmp_path)
    run_dir = tmp_path / "out" / "runs" / "vocals"
    holder = _hold_lock(run_dir, tmp_path / "ready")
    try:
        with pytest.raises(OutputError, match="is being written by another pairminer run"):
            run_workflow(path)
    finally:
        holder.kill()
        holder.wait()
    assert ran(fake_stages) == ["discover", "verify", "targets", "stems"]  # stopped before writing the model

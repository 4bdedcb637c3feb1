"""The one registry of stages and of the artifacts they read and write.

Everything that needs to know which stages exist, in which order, where their outputs live or which
schema an output has reads it here: the workflow runner (`pairminer run`), `pairminer discover`'s
chaining (a slice of the same runner), the CLI and the docs. Nothing else names a stage or an output
file. Adding a stage is one `StageSpec` in `STAGES` (and its artifacts in `ARTIFACTS`); see
docs/architecture.md, "Add a stage".

This module imports nothing heavy (no numpy, Dask, pyarrow or torch): config classes and run
functions are named as "module:attribute" strings and imported only when asked for.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

ArtifactKind = Literal["table", "json", "folder", "file"]


@dataclass(frozen=True)
class Artifact:
    """One named thing a stage reads or writes.

    Attributes:
        name: the artifact's name, as stage specs refer to it (e.g. "candidates").
        path: where it lives, relative to the output folder OUT, with "/" separators. It may name a
            field of a stage config in braces, e.g. "runs/{train.source}" (the train run folder is named
            after the source it learns). None for an input from outside OUT (the catalog).
        kind: "table" (Parquet), "json", "folder" or "file" (anything else: PNG, HTML, checkpoint).
        schema: the name of its schema in schemas/ (tables and JSON documents), or None.
        schema_pending: the schema is being added by a change that has not landed yet; the
            completeness test skips a pending schema that is absent, and checks it once it exists.
        description: one line for the docs.
    """

    name: str
    path: str | None
    kind: ArtifactKind
    schema: str | None = None
    schema_pending: bool = False
    description: str = ""

    def relpath(self, configs: Any = None) -> str:
        """The path under OUT with its `{stage.field}` placeholders filled from `configs`.

        Args:
            configs: a callable stage name -> config, or a mapping stage name -> config.
        """
        if self.path is None:
            raise KeyError(f"artifact {self.name!r} does not live under OUT")
        if "{" not in self.path:
            return self.path
        get = configs if callable(configs) else (lambda s: (configs or {})[s])

        class _Cfgs(dict):
            def __missing__(self, stage: str) -> Any:
                return get(stage)

        return self.path.format_map(_Cfgs())


def _a(name: str, path: str | None, kind: ArtifactKind, schema: str | None = None, description: str = "",
       **kw: Any) -> Artifact:
    return Artifact(name, path, kind, schema, description=description, **kw)


ARTIFACTS: dict[str, Artifact] = {a.name: a for a in (
    _a("catalog", None, "table", "catalog", "the input catalog (CSV or Parquet; path, glob or fsspec URL)"),
    _a("candidates", "candidates.parquet", "table", "candidates", "one row per candidate pair"),
    _a("rejects", "rejects.parquet", "table", "rejects", "catalog rows refused, with a reason"),
    _a("near_misses", "near_misses.parquet", "table", "near_misses",
       "versions without a pair: their best same-artist original and why they missed"),
    _a("discover_report", "discover-report.json", "json", "discover-report", "discover's counts, config, timings"),
    _a("verified", "verified.parquet", "table", "verified", "every candidate with its verify status and reason"),
    _a("verify_report", "verify-report.json", "json", "verify-report", "verify's counts, config, timings"),
    _a("similarity_plot", "similarity.png", "file", None, "BER histogram of the compared pairs"),
    _a("fingerprint_cache", "fingerprint-cache", "folder", "fingerprints",
       "Chromaprint fingerprints by file (part-*.parquet), reused by later runs"),
    _a("targets_dir", "targets", "folder", None, "the targets folder (the train stage's input)"),
    _a("manifest", "targets/manifest.parquet", "table", "manifest", "one row per pair with targets"),
    _a("shards", "targets/shards", "folder", None, "float16 STFT frames (|mix|, instrumental, vocals)"),
    _a("targets_report", "targets/targets-report.json", "json", "targets-report", "targets' counts, failures"),
    _a("stems_dir", "stems", "folder", None, "waveform stems per pair in train/valid/test folders (MUSDB18-HQ layout)"),
    _a("stems_metadata", "stems/metadata.parquet", "table", "stems-metadata",
       "one row per exported pair: its folder, the covered range, the method and its grades"),
    _a("stems_report", "stems/stems-report.json", "json", "stems-report", "stems' counts, failures, quality"),
    _a("stems_card", "stems/README.md", "file", None, "the dataset card: counts, hours, quality, how to train"),
    _a("train_run", "runs/{train.source}", "folder", None, "one training run: config, metrics, checkpoints"),
    _a("train_config", "runs/{train.source}/config.json", "json", "train-config", "the run's config and data"),
    _a("train_checkpoint", "runs/{train.source}/checkpoint-last.pt", "file", None, "the latest checkpoint"),
    _a("train_report", "runs/{train.source}/train-report.json", "json", "train-report", "the run's losses, counts"),
    _a("report_dir", "report", "folder", None, "the audit: report.html, report.json, genre table, plots"),
    _a("report_html", "report/report.html", "file", None, "the self-contained HTML audit"),
    _a("report_json", "report/report.json", "json", "report", "the audit's numbers"),
    _a("run_record", "run.json", "json", "run", "what the workflow ran, why, and the freshness fingerprints"),
)}
"""Every artifact, by name."""


# ----------------------------------------------------------------------------------------------
# What each stage's result contributes to run.json and to `pairminer run`'s one-line summary


def _discover_results(res: Any) -> dict[str, Any]:
    return {"counts": res.counts, "hours": res.hours}


def _verify_results(res: Any) -> dict[str, Any]:
    keys = ("n_candidates", "n_verified", "n_too_similar", "n_too_different", "n_error", "n_files", "n_decoded",
            "n_cached", "n_file_errors")
    return {"counts": {k[2:]: getattr(res, k) for k in keys}}


def _targets_results(res: Any) -> dict[str, Any]:
    return {"counts": dict(res.counts), "hours": res.hours, "frames": res.frames, "bytes": res.bytes,
            "shards": len(res.shards), "failures": len(res.failures)}


def _stems_results(res: Any) -> dict[str, Any]:
    return {"counts": dict(res.counts), "hours": res.hours, "methods": dict(res.methods),
            "failures": len(res.failures)}


def _train_results(res: Any) -> dict[str, Any]:
    return {"counts": {"step": res.step, "steps_run": res.steps_run, "n_train_pairs": res.n_train_pairs,
                       "n_valid_pairs": res.n_valid_pairs},
            "best_valid_loss": res.best_valid_loss, "last_valid_loss": res.last_valid_loss}


def _report_results(res: Any) -> dict[str, Any]:
    return {"counts": {"stages_present": len(res.stages_present), "funnel_steps": len(res.funnel),
                       "plots": len(res.plot_paths)},
            "stages_present": list(res.stages_present), "html": res.html_path}


# ----------------------------------------------------------------------------------------------
# The stages


@dataclass(frozen=True)
class StageSpec:
    """One stage of the pipeline.

    The runner calls ``run(<input>, <output>, config, **kwargs)`` where <input> and <output> are the
    paths of the artifacts `run_input` and `run_output` ("catalog" is the workflow's catalog, "OUT"
    the output folder itself), kwargs holds ``progress=`` and, when `uses_scheduler`, ``scheduler=``
    and, when `resumable`, ``resume=``.

    Attributes:
        name: the stage's name: its workflow section, its `--from/--until` value, its run.json entry.
        config: "module:Class" of its StageConfig (a light module: no numpy, no Dask).
        run: "module:function" of its run function (imported only when the stage runs).
        result: "module:Class" of what the run function returns (None: not exported). The package
            root exports the run function, the config class and the result type of every stage
            under their own names (`pairminer.run_verify`, `pairminer.VerifyConfig`...).
        command: the `pairminer` command that runs it on its own.
        reads: artifacts it reads (their fingerprints make it rerun when they change).
        writes: artifacts it writes, first the ones that must exist (and be unchanged) for it to
            count as fresh (`fresh_outputs`), then the others.
        fresh_outputs: how many of `writes` (from the start) are checked for freshness.
        run_input, run_output: the artifacts passed as the run function's first two arguments.
        owns: a folder artifact the stage builds on incrementally or refuses to overwrite, which
            the runner clears before a rerun that must start afresh (see `cleared_on_reconfigure`
            and `resumable`); it is cleared only when the workflow created it (run.json records that).
        path_fields: config fields that hold local paths; in a workflow file they resolve against the
            file's folder.
        resumable: an interrupted run with the same config and inputs continues (train's checkpoint);
            any other rerun starts from an emptied `owns` folder.
        cleared_on_reconfigure: a rerun with another config (or --force) starts from an emptied
            `owns` folder; an upstream change alone keeps it (the stage works incrementally).
        audio_from: fingerprint the audio files that the table `reads[0]` names: "all" rows,
            "verified" rows only, or None.
        uses_scheduler: the run function takes `scheduler=`.
        results: result object -> its run.json `results` ({"counts": {...}, ...}).
        summary_counts: the counts `pairminer run` prints after the stage.
        doc: the docs page that describes it.
        fused_with: "module:function" of the driver that runs this stage as one step of a pass:
            consecutive stages of one invocation that name the same driver run as one pass, the
            runner calling ``function(<first's input>, [outputs], [configs], stages=[names],
            progress=, scheduler=)``, which returns {stage name: result} with each stage's usual
            result (verify, targets and stems decode each audio file once this way:
            `pairminer.audiopass`).
    """

    name: str
    config: str
    run: str
    command: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    fresh_outputs: int
    run_input: str
    run_output: str
    results: Callable[[Any], dict[str, Any]]
    owns: str | None = None
    path_fields: tuple[str, ...] = ()
    resumable: bool = False
    cleared_on_reconfigure: bool = False
    audio_from: Literal["all", "verified"] | None = None
    uses_scheduler: bool = True
    summary_counts: tuple[str, ...] = ()
    doc: str = ""
    fused_with: str | None = None
    result: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def config_class(self) -> type:
        return _load(self.config)

    def run_function(self) -> Callable[..., Any]:
        return _load(self.run)

    def result_class(self) -> type | None:
        return _load(self.result) if self.result else None

    @property
    def freshness_outputs(self) -> tuple[str, ...]:
        return self.writes[: self.fresh_outputs]


def _load(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


AUDIO_PASS = "pairminer.audiopass.run:run_chain"
"""The one driver of the audio stages (verify, targets, stems): their `fused_with`."""

_REPORT_READS = ("candidates", "rejects", "near_misses", "discover_report", "verified", "verify_report", "manifest",
                 "targets_report", "stems_metadata", "stems_report")

STAGES: tuple[StageSpec, ...] = (
    StageSpec(
        name="discover", config="pairminer.discover.config:DiscoverConfig", run="pairminer.discover.stage:run_discover",
        command="discover", reads=("catalog",),
        writes=("candidates", "rejects", "discover_report", "near_misses"), fresh_outputs=4,
        run_input="catalog", run_output="OUT", path_fields=("audio_root",), results=_discover_results,
        summary_counts=("rows_read", "kept"), doc="docs/discover.md", result="pairminer.discover.stage:DiscoverResult"),
    StageSpec(
        name="verify", config="pairminer.verify.config:VerifyConfig", run="pairminer.verify.stage:run_verify",
        command="verify", reads=("candidates",),
        writes=("verified", "verify_report", "similarity_plot", "fingerprint_cache"), fresh_outputs=2,
        run_input="candidates", run_output="OUT", path_fields=("audio_root", "cache_dir"), audio_from="all",
        results=_verify_results, summary_counts=("candidates", "verified", "error"), doc="docs/verify.md",
        fused_with=AUDIO_PASS, result="pairminer.verify.stage:VerifyResult"),
    StageSpec(
        name="targets", config="pairminer.targets.config:TargetsConfig", run="pairminer.targets.stage:run_targets",
        command="targets", reads=("verified",), writes=("manifest", "targets_report", "shards"), fresh_outputs=2,
        run_input="verified", run_output="targets_dir", owns="targets_dir", cleared_on_reconfigure=True,
        path_fields=("audio_root",), audio_from="verified", results=_targets_results,
        summary_counts=("verified_in", "written", "skipped_existing", "failed"), doc="docs/targets.md",
        fused_with=AUDIO_PASS, result="pairminer.targets.stage:TargetsResult"),
    StageSpec(
        name="stems", config="pairminer.stems.config:StemsConfig", run="pairminer.stems.stage:run_stems",
        command="stems", reads=("verified",), writes=("stems_metadata", "stems_report", "stems_card"),
        fresh_outputs=2, run_input="verified", run_output="stems_dir", owns="stems_dir", cleared_on_reconfigure=True,
        path_fields=("audio_root",), audio_from="verified", results=_stems_results,
        summary_counts=("verified_in", "written", "skipped_existing", "failed"), doc="docs/stems.md",
        fused_with=AUDIO_PASS, result="pairminer.stems.stage:StemsResult"),
    StageSpec(
        name="train", config="pairminer.train.config:TrainConfig", run="pairminer.train.loop:run_train",
        command="train", reads=("manifest",), writes=("train_config", "train_checkpoint", "train_report"),
        fresh_outputs=3, run_input="targets_dir", run_output="train_run", owns="train_run", resumable=True,
        uses_scheduler=False, results=_train_results, summary_counts=("steps_run", "step"), doc="docs/training.md",
        result="pairminer.train.loop:TrainResult"),
    StageSpec(
        name="report", config="pairminer.report.config:ReportConfig", run="pairminer.report.stage:run_report",
        command="report", reads=_REPORT_READS, writes=("report_html", "report_json"), fresh_outputs=2,
        run_input="OUT", run_output="report_dir", uses_scheduler=False, results=_report_results,
        summary_counts=("stages_present",), doc="docs/report.md", result="pairminer.report.stage:ReportResult"),
)
"""Every stage, in pipeline order."""

STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)

WORKFLOW_KEYS: tuple[str, ...] = ("catalog", "out", "scheduler", "stages", "fingerprint_audio")
"""Top-level keys of a workflow file besides the stage sections (docs/workflows.md)."""

DISCOVER_UNTIL_ALIASES: dict[str, str] = {"candidates": "discover", "verified": "verify"}
"""Old `pairminer discover --until` spellings (named after outputs), kept as aliases of stage names."""

DISCOVER_CHAIN: tuple[str, ...] = ("discover", "verify", "targets", "stems")
"""The stages `pairminer discover CATALOG` runs (as far as --until)."""


def stage(name: str) -> StageSpec:
    """The spec of stage `name`; an unknown name raises ConfigError naming the nearest stage."""
    for s in STAGES:
        if s.name == name:
            return s
    from .config import did_you_mean
    from .errors import ConfigError

    raise ConfigError(did_you_mean("stage", name, STAGE_NAMES))


def artifact(name: str) -> Artifact:
    return ARTIFACTS[name]


def config_class(name: str) -> type:
    """The StageConfig subclass of stage `name` (imported lazily)."""
    return stage(name).config_class()


def producer(artifact_name: str) -> StageSpec | None:
    """The stage that writes `artifact_name` (None for the catalog)."""
    for s in STAGES:
        if artifact_name in s.writes or artifact_name in (s.owns, s.run_output):
            return s
    return None


def register(spec: StageSpec, artifacts: tuple[Artifact, ...] = (), *, after: str | None = None) -> None:
    """Add a stage (and its artifacts) to the registry, after stage `after` (default: last).

    The built-in stages are listed above; this is for a plug-in stage and for the tests' worked
    example (docs/architecture.md). The change is process-wide; `unregister` undoes it.
    """
    global STAGES, STAGE_NAMES
    if spec.name in STAGE_NAMES:
        raise ValueError(f"stage {spec.name!r} is already registered")
    for a in artifacts:
        ARTIFACTS[a.name] = a
    names = list(STAGE_NAMES)
    at = names.index(after) + 1 if after else len(names)
    STAGES = (*STAGES[:at], spec, *STAGES[at:])
    STAGE_NAMES = tuple(s.name for s in STAGES)


def unregister(name: str, artifacts: tuple[str, ...] = ()) -> None:
    global STAGES, STAGE_NAMES
    STAGES = tuple(s for s in STAGES if s.name != name)
    STAGE_NAMES = tuple(s.name for s in STAGES)
    for a in artifacts:
        ARTIFACTS.pop(a, None)

"""Workflow files: `workflows/*.yaml` parsed into a `Workflow` (catalog, out, scheduler, one config per stage).

A workflow file names the input catalog, the output folder, the Dask scheduler and one section per
stage of the registry (pairminer/stages.py) whose keys are exactly that stage's config fields::

    catalog: ../data/sample/catalog.csv     # relative paths resolve against this file's folder
    out: ../pairminer-out/demo
    scheduler: threads
    discover: {min_score: 90}
    verify: {max_seconds: 30}
    targets: {}
    train: {max_steps: 4, device: cpu}
    report: {top_n: 10}

Where each stage reads and writes inside OUT is the registry's artifact table. `pairminer discover
CATALOG [--config FILE]` builds the same Workflow (`builtin_workflow`), so a `--config` file is read
exactly like a workflow file.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import stages as registry
from .. import storage as pio
from ..config import StageConfig, did_you_mean, load_yaml
from ..errors import ConfigError, InputError

def top_keys() -> tuple[str, ...]:
    """Keys allowed at the top level of a workflow file."""
    return (*registry.WORKFLOW_KEYS, *registry.STAGE_NAMES)


def resolve_path(path: str, base_dir: str | None) -> str:
    """A local path made absolute against `base_dir` (the workflow file's folder); URLs unchanged."""
    path = str(path)
    if pio.is_url(path):
        return path
    path = os.path.expanduser(path)
    if base_dir is not None and not os.path.isabs(path):
        path = os.path.join(base_dir, path)
    return os.path.normpath(path)


def cli_path(path: str) -> str:
    """A path given on the command line: absolute against the current folder; URLs unchanged."""
    return path if pio.is_url(path) else os.path.abspath(os.path.expanduser(path))


@dataclass(frozen=True)
class Workflow:
    """A parsed workflow file.

    Attributes:
        catalog: input catalog (CSV or Parquet), an absolute local path or an fsspec URL.
        out: output folder, absolute local path or URL (targets and train need a local folder).
        scheduler: threads | processes | synchronous | tcp://host:port.
        configs: stage name -> its frozen config (defaults for a stage without a section).
        stages: the stages this workflow runs, in pipeline order (default: all of the registry's).
        fingerprint_audio: also fingerprint (stat) the audio files that verify and targets read, so a
            replaced audio file makes them rerun. Turn off for huge remote catalogs.
        source: the file it was loaded from (not part of equality).
    """

    catalog: str
    out: str
    scheduler: str = "threads"
    configs: dict[str, StageConfig] = field(default_factory=dict)
    stages: tuple[str, ...] = field(default_factory=lambda: registry.STAGE_NAMES)
    fingerprint_audio: bool = True
    source: str | None = field(default=None, compare=False)

    def config(self, stage: str) -> StageConfig:
        return self.configs.get(stage) or registry.config_class(stage)()

    def replace(self, **changes: Any) -> "Workflow":
        """A copy with the given top-level fields changed (None values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"catalog": self.catalog, "out": self.out, "scheduler": self.scheduler}
        if tuple(self.stages) != registry.STAGE_NAMES:
            doc["stages"] = list(self.stages)
        if not self.fingerprint_audio:
            doc["fingerprint_audio"] = False
        for s in registry.STAGE_NAMES:
            doc[s] = self.config(s).to_dict()
        return doc

    def to_yaml(self) -> str:
        """The workflow as YAML; `workflow_from_yaml` of it gives an equal Workflow."""
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    # -- where each stage reads and writes: the registry's artifact table ------------------------

    def path(self, *parts: str) -> str:
        return pio.join(self.out, *parts)

    def artifact_path(self, name: str) -> str:
        """Where artifact `name` lives for this workflow ("catalog": the catalog; "OUT": the folder)."""
        if name == "catalog":
            return self.catalog
        if name == "OUT":
            return self.out
        return self.path(*registry.artifact(name).relpath(self.config).split("/"))

    @property
    def targets_dir(self) -> str:
        return self.artifact_path("targets_dir")

    @property
    def train_dir(self) -> str:
        return self.artifact_path("train_run")

    @property
    def report_dir(self) -> str:
        return self.artifact_path("report_dir")


def _check_stage_list(stages: Any, where: str) -> list[str]:
    names = registry.STAGE_NAMES
    if isinstance(stages, str):
        stages = [s.strip() for s in stages.split(",") if s.strip()]
    if not isinstance(stages, list) or not stages:
        raise ConfigError(f"{where}: `stages:` must be a non-empty list of {', '.join(names)}")
    for s in stages:
        if s not in names:
            raise ConfigError(f"{where}: stages: {did_you_mean('stage', s, names)}")
    return stages


def workflow_from_dict(doc: Any, *, base_dir: str | None = None, where: str = "workflow") -> Workflow:
    """Build a Workflow from a parsed YAML mapping.

    Args:
        doc: the mapping (top-level keys: `top_keys()`).
        base_dir: folder that relative local paths resolve against (the workflow file's folder);
            None keeps them as given.
        where: name used in error messages (the file name).

    Raises:
        ConfigError: unknown key (naming the nearest valid one), a missing catalog/out, a bad value.
    """
    names = registry.STAGE_NAMES
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: a workflow is a mapping with catalog:, out:, scheduler: and one section "
                          f"per stage ({', '.join(names)})")
    for key in doc:
        if key not in top_keys():
            raise ConfigError(f"{where}: {did_you_mean('top-level key', key, top_keys())}")
    for key in ("catalog", "out"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            raise ConfigError(f"{where}: `{key}:` is missing or empty; give the "
                              + ("input catalog (CSV or Parquet path or URL)" if key == "catalog" else
                                 "output folder (or pass -o OUT)"))
    from ..parallel import check_scheduler

    scheduler = check_scheduler(str(doc.get("scheduler") or "threads"))
    stages = _check_stage_list(doc.get("stages", list(names)), where)
    fp_audio = doc.get("fingerprint_audio", True)
    if not isinstance(fp_audio, bool):
        raise ConfigError(f"{where}: fingerprint_audio must be true or false, got {fp_audio!r}")
    configs: dict[str, StageConfig] = {}
    for spec in registry.STAGES:
        section = doc.get(spec.name)
        if section is None:
            section = {}
        if not isinstance(section, dict):
            raise ConfigError(f"{where}: the `{spec.name}:` section must be a mapping of option: value, "
                              f"got {type(section).__name__}")
        section = dict(section)
        for name in spec.path_fields:
            if isinstance(section.get(name), str):
                section[name] = resolve_path(section[name], base_dir)
        configs[spec.name] = spec.config_class().from_dict(section, where=where)
    return Workflow(
        catalog=resolve_path(doc["catalog"], base_dir),
        out=resolve_path(doc["out"], base_dir),
        scheduler=scheduler,
        configs=configs,
        stages=tuple(s for s in names if s in stages),
        fingerprint_audio=fp_audio,
    )


def workflow_from_yaml(text: str, *, base_dir: str | None = None, where: str = "workflow") -> Workflow:
    """Parse workflow YAML (safe loader; aliases and duplicate keys refused)."""
    return workflow_from_dict(parse_yaml(text, where), base_dir=base_dir, where=where)


MAX_CONFIG_BYTES = 1 << 20


def parse_yaml(text: str, where: str) -> Any:
    """`load_yaml`, with nesting too deep for the parser (300,000 `[`) a one-line ConfigError."""
    try:
        return load_yaml(text, where)
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply to be a config file; is it the right file?") from None


def read_config_text(path: str | os.PathLike, what: str = "workflow file") -> str:
    """The text of a local config file, reading at most MAX_CONFIG_BYTES + 1 bytes: /dev/zero,
    /dev/urandom or a pipe (whose size says nothing) cannot make it read until memory runs out."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{what} {path} is over {MAX_CONFIG_BYTES:,} bytes, too large for a config file "
                              "(at most 1 MiB); is it the right file?")
        return data.decode("utf-8")
    except FileNotFoundError as exc:
        raise InputError(f"{what} {path} does not exist; see workflows/demo.yaml for an example") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"cannot read {what} {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def read_yaml_file(path: str | os.PathLike, what: str = "workflow file") -> Any:
    """The parsed YAML of a local file, with one-line errors for a missing or unreadable file."""
    return parse_yaml(read_config_text(path, what), str(path))


def load_workflow(path: str | os.PathLike, *, out: str | None = None, scheduler: str | None = None) -> Workflow:
    """Load a workflow file; `out` / `scheduler` override the file's values (the CLI's -o / --scheduler).

    Relative paths in the file resolve against the file's folder; a relative `out` given here resolves
    against the current folder, like any command-line path.
    """
    doc = read_yaml_file(path)
    if isinstance(doc, dict) and out is not None:
        doc = {**doc, "out": cli_path(out)}
    if isinstance(doc, dict) and scheduler is not None:
        doc = {**doc, "scheduler": scheduler}
    wf = workflow_from_dict(doc, base_dir=str(Path(path).resolve().parent), where=str(path))
    return dataclasses.replace(wf, source=str(path))


def builtin_workflow(catalog: str, out: str, *, config_file: str | None = None, scheduler: str | None = None,
                     overrides: dict[str, dict[str, Any]] | None = None,
                     stages: tuple[str, ...] = registry.DISCOVER_CHAIN) -> Workflow:
    """The workflow behind `pairminer discover CATALOG -o OUT [--config FILE] [options]`.

    CATALOG and OUT are command-line paths (relative to the current folder). FILE is read like a
    workflow file: its relative paths resolve against its own folder, a misspelt section is an error
    naming the nearest one, and its `catalog:`/`out:` (optional here) are overridden by the command
    line. `overrides` maps a stage to option values from the command line (None values are ignored).
    """
    doc: dict[str, Any] = {}
    base_dir = None
    if config_file:
        loaded = read_yaml_file(config_file, "config file")
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{config_file}: expected a mapping with {', '.join(stages)} sections (option: value)")
        doc = dict(loaded)
        base_dir = str(Path(config_file).resolve().parent)
    doc["catalog"] = cli_path(catalog)
    doc["out"] = cli_path(out)
    if scheduler is not None or "scheduler" not in doc:
        doc["scheduler"] = scheduler or "threads"
    doc.setdefault("stages", list(stages))
    wf = workflow_from_dict(doc, base_dir=base_dir, where=str(config_file or "command line"))
    configs = dict(wf.configs)
    for stage_name, values in (overrides or {}).items():
        values = {k: (cli_path(v) if k in registry.stage(stage_name).path_fields and isinstance(v, str) else v)
                  for k, v in values.items() if v is not None}
        if values:
            configs[stage_name] = wf.config(stage_name).replace(**values)
    return dataclasses.replace(wf, configs=configs, source=str(config_file) if config_file else None)

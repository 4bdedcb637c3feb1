"""The mining pipeline behind `pairminer discover`: discover -> verify -> targets.

Each stage is also a command of its own; this module only chains them and passes the output of one
as the input of the next, in the same output folder.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import Any

from . import storage as pio
from .errors import ConfigError

log = logging.getLogger(__name__)

# (name after --until, module, config class, run function)
STAGES: tuple[tuple[str, str, str, str], ...] = (
    ("candidates", "pairminer.discover.stage", "DiscoverConfig", "run_discover"),
    ("verified", "pairminer.verify.stage", "VerifyConfig", "run_verify"),
    ("targets", "pairminer.targets.stage", "TargetsConfig", "run_targets"),
)


def stage_api(name: str) -> tuple[type, Any]:
    for until, module, cfg_name, fn_name in STAGES:
        if until == name:
            mod = importlib.import_module(module)
            return getattr(mod, cfg_name), getattr(mod, fn_name)
    raise ConfigError(f"unknown stage {name!r}")


@dataclass
class PipelineResult:
    out_dir: str
    results: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        lines = []
        for name, res in self.results.items():
            lines.append(res.summary() if hasattr(res, "summary") else f"{name}: done")
        return "\n".join(lines)


def _load_sections(config_file: str | None) -> dict[str, dict]:
    if not config_file:
        return {}
    import yaml

    try:
        with open(config_file, encoding="utf-8") as f:
            doc = yaml.safe_load(f) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_file} is not valid YAML (only plain YAML is accepted): "
                          f"{str(exc).splitlines()[0]}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{config_file}: expected a mapping with discover:/verify:/targets: sections")
    return {k: (v or {}) for k, v in doc.items() if isinstance(v, dict) or v is None}


def run_pipeline(catalog: str, out_dir: str, *, until: str | None = None, discover_overrides: dict | None = None,
                 config_file: str | None = None, scheduler: str = "threads", progress: bool = True,
                 audio_root: str | None = None) -> PipelineResult:
    """Run discover and then the later stages up to `until` (default: the last one)."""
    names = [s[0] for s in STAGES]
    until = until or names[-1]
    if until not in names:
        raise ConfigError(f"--until must be one of {', '.join(names)}")
    if until == "targets" and pio.is_url(out_dir):
        raise ConfigError(f"-o {out_dir}: targets writes memory-mappable shards and needs a local or shared "
                          "filesystem folder; use such a folder, or --until verified for a URL")
    sections = _load_sections(config_file)
    result = PipelineResult(out_dir=str(out_dir))
    inputs = {"candidates": catalog,
              "verified": pio.join(out_dir, "candidates.parquet"),
              "targets": pio.join(out_dir, "verified.parquet")}
    outs = {"candidates": str(out_dir), "verified": str(out_dir), "targets": pio.join(out_dir, "targets")}
    section_of = {"candidates": "discover", "verified": "verify", "targets": "targets"}
    for name in names[: names.index(until) + 1]:
        cfg_cls, run = stage_api(name)
        base = cfg_cls.from_dict(sections.get(section_of[name], {}), where=config_file or "")
        overrides = dict(discover_overrides or {}) if name == "candidates" else {}
        if audio_root is not None and "audio_root" in cfg_cls.field_names():
            overrides["audio_root"] = audio_root
        cfg = base.replace(**overrides)
        log.info("stage %s", section_of[name])
        result.results[section_of[name]] = run(inputs[name], outs[name], cfg, scheduler=scheduler, progress=progress)
    return result

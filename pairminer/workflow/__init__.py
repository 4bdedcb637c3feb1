"""`pairminer run`: a workflow file, a slice of the stage registry, fresh stages skipped.

file.py parses workflow files, freshness.py decides run or skip, run.py runs and records run.json.
Public names are imported lazily, so that `import pairminer.workflow` stays light.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "Workflow": "file", "load_workflow": "file", "workflow_from_dict": "file", "workflow_from_yaml": "file",
    "builtin_workflow": "file",
    "audio_fingerprint": "freshness", "config_hash": "freshness", "file_fingerprint": "freshness",
    "decide": "freshness",
    "run_workflow": "run", "format_plan": "run", "StageOutcome": "run", "WorkflowResult": "run",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

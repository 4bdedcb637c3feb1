"""Old home of the workflow runner, split into file.py, freshness.py and run.py; import from
`pairminer.workflow` instead. Kept so that code written against the old module keeps importing."""

from .file import Workflow, load_workflow, workflow_from_dict, workflow_from_yaml  # noqa: F401
from .freshness import audio_fingerprint, config_hash, decide, file_fingerprint  # noqa: F401
from .run import StageOutcome, WorkflowResult, format_plan, run_workflow  # noqa: F401

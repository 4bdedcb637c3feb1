"""The report stage: the audit of whatever stage outputs exist.

Public names are imported lazily, so that `import pairminer.report.config` stays light.
"""

from .._lazy import lazy_exports

_EXPORTS = {'ReportConfig': 'config', 'run_report': 'stage', 'ReportResult': 'stage', 'show_pair': 'show'}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

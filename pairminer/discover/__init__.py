"""The discover stage: catalog rows in, candidate (mix, version) pairs out.

Public names are imported lazily, so that `import pairminer.discover.config` stays light.
"""

from .._lazy import lazy_exports

_EXPORTS = {'DiscoverConfig': 'config', 'run_discover': 'stage', 'DiscoverResult': 'stage', 'read_catalog': 'catalog'}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

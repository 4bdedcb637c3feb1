"""Exceptions. Every message says what is wrong and how to fix it; the CLI prints it on one line."""

from __future__ import annotations


class PairminerError(Exception):
    """Base class: an expected failure that the CLI reports without a traceback."""

    exit_code = 1


class InputError(PairminerError):
    """An input file or URL is missing, unreadable, or not what the stage expects."""

    exit_code = 2


class CatalogError(InputError):
    """The catalog as a whole cannot be used (empty, wrong columns, not a CSV/Parquet file)."""


class ConfigError(PairminerError):
    """A configuration value or key is invalid."""

    exit_code = 2


class SchemaError(PairminerError):
    """A table does not match its schema. Collects every problem at once."""

    def __init__(self, name: str, problems: list[str]):
        self.name = name
        self.problems = list(problems)
        shown = "; ".join(self.problems[:8])
        more = f" (and {len(self.problems) - 8} more)" if len(self.problems) > 8 else ""
        super().__init__(f"{name}: {len(self.problems)} schema problem(s): {shown}{more}")


class OutputError(PairminerError):
    """An output location cannot be written (read-only folder, disk full)."""


class AudioError(PairminerError):
    """An audio file is missing, unreadable, truncated, silent or too short.

    Stages catch it per file and record `str(exc)` as the row's `reason`.
    """

"""docs/api.md is a session that runs: its ```python blocks run in order, in a folder like the repository's root."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "api.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


def test_the_page_has_the_session():
    blocks = python_blocks(PAGE.read_text(encoding="utf-8"))
    code = "\n".join(blocks)
    assert len(blocks) >= 6
    for name in ("run_discover", "near_misses_path", "run_verify", "run_targets", "manifest_path"):
        assert name in code, f"docs/api.md no longer shows {name}"


def test_the_api_page_runs(tmp_path, monkeypatch):
    shutil.copytree(REPO / "data" / "sample", tmp_path / "data" / "sample")
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": "__api_doc__"}
    for i, block in enumerate(python_blocks(PAGE.read_text(encoding="utf-8")), 1):
        try:
            exec(compile(block, f"docs/api.md block {i}", "exec"), ns)  # noqa: S102 - our own docs
        except Exception as exc:
            raise AssertionError(f"docs/api.md block {i} failed: {type(exc).__name__}: {exc}\n{block}") from exc
    # the session did what the page says
    assert (tmp_path / "api-demo" / "candidates.parquet").exists()
    assert (tmp_path / "api-demo" / "subset" / "targets" / "manifest.parquet").exists()
    assert len(ns["manifest"]) >= 1

"""The docs site builds with ``--strict``: a broken link, anchor or snippet path fails."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.docs.conftest import ROOT

MKDOCS = Path(sys.executable).parent / "mkdocs"


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    # Snippet paths are relative to the repository root, as `./run docs` runs it.
    done = subprocess.run(
        [str(MKDOCS), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=110,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "reference" / "dedup" / "index.html").is_file()


def test_the_readmes_python_is_the_examples_python() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    examples = [p.read_text() for p in (ROOT / "docs" / "examples").rglob("*.py")]

    assert blocks
    for block in blocks:
        assert any(block in text for text in examples), f"not in docs/examples: {block[:200]}"

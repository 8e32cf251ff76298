"""Repository hygiene: what is tracked stays small (wheels, databases, journals and generated
reports are ignored, see ``.gitignore``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 1 << 20  # 1 MiB
#: tracked files allowed over the limit (path: why); keep it short
ALLOWED: dict[str, str] = {}


def test_no_tracked_file_over_1_mb() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                         check=True).stdout.decode()
    big = {name: (ROOT / name).stat().st_size for name in out.split("\0")
           if name and (ROOT / name).is_file() and (ROOT / name).stat().st_size > LIMIT}
    unexpected = {k: v for k, v in big.items() if k not in ALLOWED}
    assert not unexpected, f"tracked files over 1 MB (add to ALLOWED with a reason, or " \
                           f"untrack them): {unexpected}"


def test_generated_files_are_ignored() -> None:
    text = (ROOT / ".gitignore").read_text()
    for pattern in ("*.whl", "*.db", "*.journal", "reports/*"):
        assert pattern in text, pattern


def test_readme_block_count_matches_the_registry() -> None:
    """The README says how many block types there are: the registry's count (a new block
    updates the sentence)."""
    import re

    from nasdepth.arch.blocks import BLOCKS

    text = " ".join((ROOT / "README.md").read_text().split())
    found = re.search(r"(\d+) block types", text)
    assert found is not None, "README.md: say 'N block types'"
    assert int(found.group(1)) == len(BLOCKS), sorted(BLOCKS)

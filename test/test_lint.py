"""The code passes ruff with the project's ruff.toml (pycodestyle, pyflakes, isort, bugbear, pyupgrade, quotes)."""

from __future__ import annotations

import subprocess
import sys
from importlib.util import find_spec

import pytest
from conftest import IN_CI, REPO

# Python sources of the package and its benchmarks; launch/ joins once it has files (a clean clone has no empty
# folders).
SOURCES = ('rtformer_ros', 'test', 'bench', 'launch', 'setup.py')


def test_ruff_finds_nothing():
    if find_spec('ruff') is None:
        reason = 'ruff is not installed: run scripts/setup_env.sh'
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    paths = [name for name in SOURCES if (REPO / name).exists()]
    result = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--no-cache', '--output-format=concise', *paths],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f'ruff check {" ".join(paths)}:\n{result.stdout}{result.stderr}'

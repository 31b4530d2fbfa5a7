"""The code passes its own static checks: ruff, and mypy (strict for protocols/ and cloud/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["protocols", "cloud", "edge", "simulators", "forgeline", "device_profiles"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, check=False)  # fmt: skip


def test_ruff_finds_nothing() -> None:
    result = _run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing() -> None:
    result = _run("mypy", "--no-incremental", *PACKAGES)
    assert result.returncode == 0, result.stdout + result.stderr

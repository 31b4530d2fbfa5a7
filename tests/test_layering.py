"""The architecture's rules, checked on the source: who may import whom, and no import side effects."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("protocols", "edge", "cloud", "simulators", "forgeline", "device_profiles")
FORBIDDEN = {
    "protocols": {"edge", "cloud", "simulators", "forgeline"},  # a library of its own
    "device_profiles": {"edge", "cloud", "simulators", "forgeline"},
    "edge": {"cloud", "simulators"},  # an industrial PC installs the edge alone
    "simulators": {"edge", "cloud"},
    "cloud": {"edge", "simulators"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_import_only_what_they_may(package: str) -> None:
    offences = [
        f"{path.relative_to(ROOT)} imports {sorted(_imports(path) & FORBIDDEN[package])}"
        for path in sorted((ROOT / package).rglob("*.py"))
        if _imports(path) & FORBIDDEN[package]
    ]
    assert offences == []


def test_importing_every_module_starts_no_thread_and_opens_no_socket() -> None:
    """No engine, thread, socket or settings object is created at import time."""
    script = f"""
import importlib, pkgutil, socket, threading, sys
opened = []
real_socket = socket.socket.__init__
def spy(self, *a, **k):
    opened.append(a)
    real_socket(self, *a, **k)
socket.socket.__init__ = spy
names = []
for package in {PACKAGES!r}:
    module = importlib.import_module(package)
    names.append(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        if ".migrations" in info.name or info.name.endswith("__main__"):
            continue  # Alembic's env.py and ``python -m`` entry points run by design
        importlib.import_module(info.name)
        names.append(info.name)
assert threading.active_count() == 1, [t.name for t in threading.enumerate()]
assert not opened, opened
print(len(names))
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) > 40


def test_the_wire_package_exports_what_it_says() -> None:
    import protocols.wire as wire

    assert sorted(wire.__all__) == sorted(
        name for name in dir(wire) if not name.startswith("_") and name not in
        {"annotations", "codec", "messages", "topics"}
    )  # fmt: skip
    for name in wire.__all__:
        assert getattr(wire, name) is not None

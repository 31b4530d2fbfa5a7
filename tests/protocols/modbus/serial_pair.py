"""A pseudo-terminal pair made by socat: a null-modem cable between two tty paths, for RTU tests."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

READY = "starting data transfer loop"


class PtyPair:
    """``socat pty,raw,echo=0,link=<dir>/sim pty,raw,echo=0,link=<dir>/edge``, started and stopped.

    Bytes written to ``sim`` come out of ``edge`` and back: the simulator opens one end, the
    edge the other, each as a serial port.
    """

    def __init__(self, directory: Path) -> None:
        self.sim = directory / "sim"
        self.edge = directory / "edge"
        self.log_path = directory / "socat.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> PtyPair:
        socat = shutil.which("socat")
        if socat is None:
            pytest.fail("socat is not installed (apt-get install socat)", pytrace=False)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    socat,
                    "-d",
                    "-d",
                    f"pty,raw,echo=0,link={self.sim}",
                    f"pty,raw,echo=0,link={self.edge}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"socat exited with {self.process.returncode}: {self.log()}")
            if READY in self.log() and self.sim.exists() and self.edge.exists():
                return self
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"socat made no pty pair within {timeout} s: {self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


@contextmanager
def pty_pair(directory: Path) -> Iterator[PtyPair]:
    pair = PtyPair(directory).start()
    try:
        yield pair
    finally:
        pair.stop()

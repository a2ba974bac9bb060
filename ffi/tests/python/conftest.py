"""Fixtures for the Python binding tests: the bindings regenerated from the library under test
(scripts/bindings), and a real songpei-server started for the session."""

import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
BINDINGS = pathlib.Path(os.environ.get("SONGPEI_BINDINGS", ROOT / "target" / "bindings")) / "python"
sys.path.insert(0, str(BINDINGS))

DISTRICT = "450802"
VILLAGE = "450802101201"


class Server:
    """A songpei-server on a free port with its own data folder."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory()
        self.data = pathlib.Path(self.dir.name) / "server"
        self.bin = ROOT / "target" / "debug" / "songpei-server"
        self.admin("init", "--district", DISTRICT, "--name", "港北区")
        self.admin("village", "add", "--code", VILLAGE, "--name", "大湾村")
        self.proc = subprocess.Popen(
            [str(self.bin), "serve", "--listen", "127.0.0.1:0", "--data", str(self.data)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "SONGPEI_LOG": "info"},
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        assert line.startswith("listening on "), line
        self.url = line.removeprefix("listening on ")

    def admin(self, *args):
        out = subprocess.run(
            [str(self.bin), "admin", "--data", str(self.data), *args],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout

    def enrollment_code(self, username, role="coordinator"):
        self.admin("account", "add", "--username", username, "--role", role, "--village", VILLAGE)
        out = self.admin("enroll-code", "--username", username)
        for line in out.splitlines():
            if line.startswith("enrollment code for"):
                return line.split(": ", 1)[1].strip()
        raise AssertionError(out)

    def stop(self):
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=30)
        self.dir.cleanup()
        return err


@pytest.fixture(scope="session")
def server():
    s = Server()
    yield s
    logs = s.stop()
    # The server's own logs never carry personal data either.
    for secret in ("张秀英", "450802198503120028", "13812345678"):
        assert secret not in logs


@pytest.fixture()
def tmp(tmp_path):
    return tmp_path


def pytest_terminal_summary(terminalreporter):
    passed = len(terminalreporter.stats.get("passed", []))
    failed = len(terminalreporter.stats.get("failed", [])) + len(terminalreporter.stats.get("error", []))
    terminalreporter.write_line(f"{passed} passed, {failed} failed")

"""Starts the real `kmsync emulator` binary for the conformance tests.

The binary is `$KMSYNC_BIN`, or `<cargo target dir>/debug/kmsync` (the target dir comes from
`cargo metadata`, because it is not always `./target`).
"""

import functools
import json
import os
import pathlib
import subprocess
import threading
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "quickstart" / "kms-seed.yaml"


@functools.lru_cache(maxsize=None)
def kmsync_bin() -> str:
    if os.environ.get("KMSYNC_BIN"):
        return os.environ["KMSYNC_BIN"]
    meta = json.loads(
        subprocess.check_output(
            ["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT
        )
    )
    return str(pathlib.Path(meta["target_directory"]) / "debug" / "kmsync")


class Emulator:
    """A running emulator: URLs parsed from its documented ready line."""

    def __init__(self, tmp_path: pathlib.Path, tls: bool, seed=None, extra_args=()):
        args = [kmsync_bin(), "emulator", "--seed", str(seed or SEED), *extra_args]
        self.ca_path = None
        if tls:
            self.ca_path = str(tmp_path / "emulator-ca.pem")
            args += ["--tls", "--ca-out", self.ca_path]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        line = {}
        reader = threading.Thread(
            target=lambda: line.setdefault("v", self.proc.stdout.readline()), daemon=True
        )
        reader.start()
        reader.join(60)
        ready = line.get("v", "")
        # Documented: `kmsync emulator ready kms=<url> admin=<url>`
        prefix = "kmsync emulator ready "
        if not ready.startswith(prefix):
            self.stop()
            raise RuntimeError(f"emulator did not start: {ready!r}")
        fields = dict(part.split("=", 1) for part in ready[len(prefix):].split())
        self.kms_url = fields["kms"]
        self.admin_url = fields["admin"]
        # Present with --metadata-listen.
        self.metadata_url = fields.get("metadata")
        scheme, rest = self.kms_url.split("://", 1)
        self.protocol = scheme
        self.endpoint = rest.rstrip("/")  # host:port, as the SDK's `endpoint` wants it

    def counters(self) -> dict:
        with urllib.request.urlopen(self.admin_url + "v1/counters") as r:
            return json.load(r)

    def admin_json(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.admin_url + path,
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req) as r:
            return json.load(r)

    def admin(self, method: str, path: str, body=None) -> int:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.admin_url + path,
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req) as r:
            return r.status

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def emulator(tmp_path):
    emu = Emulator(tmp_path, tls=False)
    yield emu
    emu.stop()


@pytest.fixture
def tls_emulator(tmp_path):
    emu = Emulator(tmp_path, tls=True)
    yield emu
    emu.stop()

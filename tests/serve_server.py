"""A real ``nmt serve`` process on a free local port, and a small HTTP client for the tests.

The server tests go through uvicorn and the network stack as clients do, not through an
in-process test client: the process is started once per test module (a few seconds: torch,
FastAPI, the tiny checkpoints) and stopped at the end.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Server:
    url: str
    port: int
    process: subprocess.Popen

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return Reply(response.status, dict(response.getheaders()), response.read())
        finally:
            connection.close()

    def post_json(self, path: str, data: Any, **kwargs: Any) -> Reply:
        body = json.dumps(data).encode()
        return self.request("POST", path, body, {"Content-Type": "application/json"}, **kwargs)

    def post_form(self, path: str, fields: dict[str, Any]) -> Reply:
        body = urlencode(fields, doseq=True).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return self.request("POST", path, body, headers)

    def metrics(self) -> dict[str, float]:
        """``/metrics`` as {'name{labels}': value}."""
        text = self.request("GET", "/metrics").body.decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        return values

    def alive(self) -> bool:
        return self.process.poll() is None and self.request("GET", "/health").status == 200


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_server(*arguments: str, startup_seconds: float = 120) -> Iterator[Server]:
    """``nmt serve ARGUMENTS`` on a free port until the block ends; its log goes to a file
    whose end is shown if it fails to start."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"nmt-serve-test-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "nmt", "serve", "--port", str(port), "--threads", "1",
             "--log-level", "warning", *arguments],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", port, process)
    try:
        _wait_until_up(server, log_path, startup_seconds)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_path.unlink(missing_ok=True)


def _wait_until_up(server: Server, log_path: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"nmt serve exited:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            if server.request("GET", "/health", timeout=2).status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nmt serve did not start in {seconds} s:\n{log_path.read_text()[-3000:]}")

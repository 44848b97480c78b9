"""Real processes for tests and benchmarks: a throwaway Redis we may kill, a uvicorn service."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
REDIS_MISSING = ("redis-server is needed: install it (Debian/Ubuntu: apt install redis-server; "
                 "macOS: brew install redis)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisProcess:
    """redis-server on its own port: persisting every write (appendfsync always) by default,
    or nothing at all (`persist=False`, the test session's throwaway server)."""

    def __init__(self, workdir: Path, persist: bool = True):
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RuntimeError(REDIS_MISSING)
        self.port = free_port()
        self.workdir = workdir
        self.persist = persist
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.persist
                       else ["--appendonly", "no"])
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
             *persistence, "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        for _ in range(200):
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.2).ping():
                    return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


class ServiceProcess:
    """`uvicorn service.main:create_app` in a subprocess, with SINE_* settings.

    Its log goes to a file: an undrained pipe fills up and blocks the server's next log
    write. `cpu` pins it (taskset) for the benchmarks; `ready` is the path that must
    answer 200 before `start` returns.
    """

    def __init__(self, env: dict[str, str], cpu: int | None = None, port: int | None = None,
                 uvicorn_args: tuple[str, ...] = ("--timeout-graceful-shutdown", "20"),
                 ready: str = "/healthz"):
        self.port = port or free_port()
        self.env = {**os.environ, "SINE_LOG_LEVEL": "info", **env}
        self.pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
        self.uvicorn_args = uvicorn_args
        self.ready = ready
        self.process: subprocess.Popen | None = None
        self.log = ROOT / ".pytest_cache" / f"service-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        self.log.parent.mkdir(exist_ok=True)
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [*self.pin, sys.executable, "-m", "uvicorn", "service.main:create_app", "--factory",
                 "--port", str(self.port), *self.uvicorn_args],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if httpx.get(f"{self.url}{self.ready}", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"service did not start: {self.log.read_text()[-2000:]}")

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

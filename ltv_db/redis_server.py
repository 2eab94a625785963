"""A private redis-server for development, demos and tests (Unix socket, nothing on disk)."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ltv_db.cluster import _socket_dir_for


class RedisServerError(RuntimeError):
    """The private redis-server could not be started or stopped."""


@dataclass
class LocalRedis:
    home: Path

    @property
    def socket_path(self) -> Path:
        return _socket_dir_for(self.home) / "redis.sock"

    @property
    def pid_file(self) -> Path:
        return self.home / "redis" / "redis.pid"

    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def _pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def is_running(self) -> bool:
        pid = self._pid()
        if pid is None:
            return False
        try:
            Path(f"/proc/{pid}").stat()
        except FileNotFoundError:
            return False
        return self.socket_path.exists()

    def start(self) -> None:
        if self.is_running():
            return
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerError("redis-server not found; run scripts/setup or set LTV_REDIS_URL")
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                binary, "--port", "0", "--unixsocket", str(self.socket_path),
                "--unixsocketperm", "700", "--daemonize", "yes",
                "--pidfile", str(self.pid_file), "--dir", str(self.pid_file.parent),
                "--save", "", "--appendonly", "no",
                "--logfile", str(self.pid_file.parent / "redis.log"),
            ],
            check=True,
            capture_output=True,
        )
        deadline = time.monotonic() + 10
        while not self.is_running():
            if time.monotonic() > deadline:
                raise RedisServerError(f"redis-server did not start; see {self.pid_file.parent}/redis.log")
            time.sleep(0.02)

    def stop(self) -> None:
        pid = self._pid()
        if pid is None or not self.is_running():
            return
        subprocess.run(["kill", str(pid)], check=False)
        deadline = time.monotonic() + 10
        while self.is_running() and time.monotonic() < deadline:
            time.sleep(0.02)

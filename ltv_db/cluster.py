"""A private PostgreSQL 15 cluster for development, demos and tests.

The cluster lives under ``<home>/pg`` and listens only on a Unix socket in ``<home>/run``, so
it never collides with a system server or another checkout and is reachable only by its owner.
``initdb`` and ``pg_ctl`` refuse to run as root; when we are root the server runs as the
``postgres`` OS user instead (DESIGN.md §7).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

PG_MAJOR = 15
SUPERUSER = "postgres"
CRON_DATABASE = "postgres"

# Settings every private cluster gets. pg_cron must be preloaded; its jobs live in the
# `postgres` database and reach the ltv databases through cron.schedule_in_database.
BASE_CONF = {
    "listen_addresses": "''",
    "shared_preload_libraries": "'pg_cron'",
    "cron.database_name": f"'{CRON_DATABASE}'",
    "cron.use_background_workers": "on",
    "max_worker_processes": "16",
    "max_connections": "200",
    "shared_buffers": "'1GB'",
    "work_mem": "'64MB'",
    "maintenance_work_mem": "'512MB'",
    "max_wal_size": "'4GB'",
    "checkpoint_timeout": "'15min'",
    "timezone": "'UTC'",
    "log_timezone": "'UTC'",
    "max_parallel_workers_per_gather": "2",
    # JIT compiles the model queries for seconds while the work sits in PL/pgSQL functions it
    # cannot speed up (customer_ltv: 3.6 s with JIT, 5 ms without).
    "jit": "off",
}
# Tests and throw-away clusters trade durability for speed.
EPHEMERAL_CONF = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"}


class ClusterError(RuntimeError):
    """The private cluster could not be created, started or stopped."""


def pg_bindir() -> Path:
    """Directory holding initdb / pg_ctl for PostgreSQL 15 (Debian keeps it off PATH)."""
    candidates = [Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")]
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.insert(0, Path(out.stdout.strip()))
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "postgres").exists():
            version = subprocess.run(
                [str(bindir / "postgres"), "--version"], capture_output=True, text=True
            ).stdout
            if f" {PG_MAJOR}." in version:
                return bindir
    raise ClusterError(
        f"PostgreSQL {PG_MAJOR} server binaries not found; run scripts/setup "
        f"(installs postgresql-{PG_MAJOR} and postgresql-{PG_MAJOR}-cron)"
    )


def _is_root() -> bool:
    return os.geteuid() == 0


def _socket_dir_for(home: Path) -> Path:
    """Unix socket paths are limited to ~107 bytes; deep checkouts get a short /tmp dir."""
    preferred = home / "run"
    if len(str(preferred / ".s.PGSQL.5432")) < 100:
        return preferred
    digest = hashlib.sha1(str(home).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"ltv-{digest}"


@dataclass
class LocalPostgres:
    """A private cluster rooted at ``home`` (``<home>/pg`` data, ``<home>/run`` socket)."""

    home: Path
    ephemeral: bool = False
    port: int = 5432

    @property
    def data_dir(self) -> Path:
        return self.home / "pg"

    @property
    def socket_dir(self) -> Path:
        return _socket_dir_for(self.home)

    @property
    def log_file(self) -> Path:
        return self.home / "log" / "postgres.log"

    def url(self, dbname: str = "ltv") -> str:
        host = quote(str(self.socket_dir), safe="")
        return f"postgresql://{SUPERUSER}@/{dbname}?host={host}&port={self.port}"

    # -- running commands as the right OS user ---------------------------------------------
    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = (["runuser", "-u", SUPERUSER, "--"] if _is_root() else []) + args
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if check and proc.returncode != 0:
            raise ClusterError(f"{' '.join(args[:2])} failed:\n{proc.stdout}{proc.stderr}")
        return proc

    def _prepare_dirs(self) -> None:
        for path in (self.home, self.data_dir.parent, self.socket_dir, self.log_file.parent):
            path.mkdir(parents=True, exist_ok=True)
        if not _is_root():
            return
        try:
            owner = pwd.getpwnam(SUPERUSER)
        except KeyError as exc:
            raise ClusterError("running as root needs a 'postgres' OS user; run scripts/setup") from exc
        for path in (self.socket_dir, self.log_file.parent):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        if self.data_dir.exists():
            os.chown(self.data_dir, owner.pw_uid, owner.pw_gid)
        # The server user must be able to traverse down to its data dir (mktemp -d makes 0700
        # parents). Grant search (x) only — never read — on the ancestors that lack it.
        for ancestor in [self.home, *self.home.parents]:
            mode = ancestor.stat().st_mode
            if not mode & 0o001:
                os.chmod(ancestor, mode | 0o001)

    # -- lifecycle -------------------------------------------------------------------------
    def is_initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def is_running(self) -> bool:
        if not self.is_initialized():
            return False
        bindir = pg_bindir()
        return self._run([str(bindir / "pg_ctl"), "status", "-D", str(self.data_dir)], check=False).returncode == 0

    def init(self) -> None:
        bindir = pg_bindir()
        self._prepare_dirs()
        if _is_root():
            self.data_dir.mkdir(mode=0o700, exist_ok=True)
            owner = pwd.getpwnam(SUPERUSER)
            os.chown(self.data_dir, owner.pw_uid, owner.pw_gid)
        self._run([
            str(bindir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
            "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync",
        ])
        conf = dict(BASE_CONF)
        conf["unix_socket_directories"] = f"'{self.socket_dir}'"
        conf["port"] = str(self.port)
        if self.ephemeral:
            conf.update(EPHEMERAL_CONF)
        lines = ["", "# ltv_db private cluster"] + [f"{k} = {v}" for k, v in conf.items()]
        with (self.data_dir / "postgresql.conf").open("a") as fh:
            fh.write("\n".join(lines) + "\n")

    def start(self) -> None:
        """Initialise if needed, start if stopped, and make sure the ltv database exists."""
        if not self.is_initialized():
            self.init()
        self._prepare_dirs()
        if not self.is_running():
            bindir = pg_bindir()
            self._run([
                str(bindir / "pg_ctl"), "start", "-w", "-t", "60",
                "-D", str(self.data_dir), "-l", str(self.log_file),
            ])
        self._bootstrap()

    def stop(self) -> None:
        if self.is_running():
            self._run([str(pg_bindir() / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.data_dir)])

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _bootstrap(self) -> None:
        import psycopg

        with psycopg.connect(self.url(CRON_DATABASE), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'ltv'").fetchone()
            if not exists:
                conn.execute("CREATE DATABASE ltv")

"""A throwaway PostgreSQL server for tests: Debian's `postgresql` binaries, a data folder of its own in /tmp, a free
loopback port, trust authentication; stopped by its PID and its folder removed. As root (CI's containers), the
server runs as the `postgres` user the package creates, since PostgreSQL refuses to run as root."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.conftest import free_port


def postgres_bin() -> Path | None:
    """The folder of initdb and postgres: on PATH, or where Debian puts them (/usr/lib/postgresql/N/bin)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


class Postgres:
    """`with Postgres() as server:` a running server; `server.url` is a database URL for SQLAlchemy (psycopg 3)."""

    def __init__(self):
        self.bin = postgres_bin()
        if self.bin is None:
            raise RuntimeError("no PostgreSQL found (CI installs Debian's postgresql)")
        self.folder = Path(tempfile.mkdtemp(prefix="plait-postgres-"))
        # setpriv execs the command itself (runuser and su fork), so the PID we hold is the server's
        self.as_postgres = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] if os.geteuid() == 0 else []
        if self.as_postgres:
            shutil.chown(self.folder, "postgres", "postgres")
        self.port = free_port()
        self.url = f"postgresql://plait@127.0.0.1:{self.port}/plait"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Postgres:
        data, log = self.folder / "data", self.folder / "server.log"
        subprocess.run([*self.as_postgres, str(self.bin / "initdb"), "-D", str(data), "-U", "plait", "-A", "trust", "-N"],
                       check=True, capture_output=True)
        self.process = subprocess.Popen(
            [*self.as_postgres, str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port), "-k", str(self.folder),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=50"],
            stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
        self.wait_until_ready(log)
        self.execute("postgres", "CREATE DATABASE plait")
        return self

    def wait_until_ready(self, log: Path, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.execute("postgres", "SELECT 1")
                return
            except Exception:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not start: {log.read_text(errors='replace')[-2000:]}") from None
                time.sleep(0.2)

    def execute(self, database: str, statement: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="plait", dbname=database, connect_timeout=5,
                             autocommit=True) as connection:
            connection.execute(statement)

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

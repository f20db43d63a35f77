"""``ggevo-server``: one MLflow tracking server for a team, backed by a real PostgreSQL, in one command.

It starts PostgreSQL (Debian's ``postgresql`` package: ``initdb`` + ``postgres``, run as the
``postgres`` user when started as root) on 127.0.0.1 and ``mlflow server`` with an artifact store
on 127.0.0.1 (``--host`` for an address other machines reach), prints the URI to export, and stops
both on Ctrl-C or SIGTERM.
Everything lives in one folder (``--dir``, default ``mlflow-server/``): ``pgdata/`` (the database
cluster, kept between starts), ``artifacts/`` (what runs log), ``postgres.log``, ``mlflow.log`` and
``pg_password`` (the database password, generated once, readable by its owner only).
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

DB_USER = "ggevo"
DB_NAME = "mlflow"


class ServerError(RuntimeError):
    """A server could not start; the message names which and why."""


def postgres_bindir() -> Path:
    """The folder holding ``initdb`` and ``postgres``: on ``PATH``, else Debian's newest ``/usr/lib/postgresql/<v>/bin``."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if versions:
        return Path(versions[-1]).parent
    raise ServerError("no PostgreSQL found: install it (Debian/Ubuntu: apt-get install -y postgresql)")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now, on ``host``."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _as_postgres_user() -> dict:
    """Popen arguments running a child as ``postgres`` when we are root (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return {}
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError as err:
        raise ServerError("running as root needs a 'postgres' user to run PostgreSQL as "
                          "(Debian's postgresql package creates it)") from err
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def _give_to_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(path, pw.pw_uid, pw.pw_gid)


@dataclass
class Postgres:
    """A PostgreSQL cluster in ``datadir`` listening on ``host:port`` only (no Unix socket)."""

    datadir: Path
    host: str
    port: int
    password: str
    log: Path
    proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"postgresql://{DB_USER}:{self.password}@{self.host}:{self.port}/{DB_NAME}"

    def init(self) -> None:
        """``initdb`` once (password authentication, user ``ggevo``); a later start reuses the cluster."""
        if (self.datadir / "PG_VERSION").is_file():
            return
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.datadir.chmod(0o700)
        _give_to_postgres(self.datadir)
        pwfile = self.datadir.parent / ".initdb.pw"
        pwfile.touch(mode=0o600)
        pwfile.write_text(self.password + "\n")
        _give_to_postgres(pwfile)
        try:
            done = subprocess.run(
                [str(postgres_bindir() / "initdb"), "-D", str(self.datadir), "-U", DB_USER, "--pwfile", str(pwfile),
                 "--auth", "scram-sha-256", "-E", "UTF8", "--no-instructions"],
                capture_output=True, text=True, **_as_postgres_user(),
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            hint = " (as root, every folder above it must be readable by the 'postgres' user)" if os.geteuid() == 0 else ""
            raise ServerError(f"initdb failed in {self.datadir}{hint}: {done.stderr.strip()[-500:]}")

    def start(self, timeout: float = 120.0) -> None:
        self.log.touch()
        _give_to_postgres(self.log)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(postgres_bindir() / "postgres"), "-D", str(self.datadir), "-p", str(self.port),
                 "-c", f"listen_addresses={self.host}", "-c", "unix_socket_directories="],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **_as_postgres_user(),
            )
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ServerError(f"PostgreSQL exited with code {self.proc.returncode}; see {self.log}")
            try:
                with psycopg.connect(self.uri.rsplit("/", 1)[0] + "/postgres", autocommit=True, connect_timeout=2) as c:
                    if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone():
                        c.execute(f"CREATE DATABASE {DB_NAME}")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise ServerError(f"PostgreSQL did not accept connections within {timeout:.0f} s; see {self.log}")
                time.sleep(0.2)

    def stop(self) -> None:
        """Fast shutdown (SIGINT: roll back open transactions, write a checkpoint), then wait."""
        _stop(self.proc, signal.SIGINT)


def _stop(proc: subprocess.Popen | None, sig: int, timeout: float = 30.0) -> None:
    """Signal ``proc``'s own process group (it was started in a new session), wait, kill it if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()


@dataclass
class MlflowServer:
    """``mlflow server`` on ``host:port`` with a backend store and a served artifact store."""

    backend_uri: str
    artifacts: Path
    host: str
    port: int
    log: Path
    workers: int = 1
    proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 600.0) -> None:  # a first start migrates the schema: minutes on a busy machine
        self.artifacts.mkdir(parents=True, exist_ok=True)
        # the database password goes through the environment, not the command line (``ps`` shows that)
        env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": self.backend_uri}
        # no job runner (GenAI scorers and evaluations, seven worker processes): training runs need none
        env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", "--host", self.host, "--port", str(self.port),
                 "--workers", str(self.workers), "--serve-artifacts", "--artifacts-destination", self.artifacts.as_uri()],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ServerError(f"mlflow server exited with code {self.proc.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"mlflow server did not answer within {timeout:.0f} s; see {self.log}")
            time.sleep(0.3)

    def stop(self) -> None:
        _stop(self.proc, signal.SIGTERM)


class TeamServer:
    """PostgreSQL + MLflow server in one folder; a context manager that stops both on exit."""

    def __init__(self, folder: Path, host: str = "127.0.0.1", port: int = 5000, pg_port: int | None = None,
                 workers: int = 1) -> None:
        self.folder = folder.resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # the postgres user must reach pgdata/ and write its log here
            self.folder.chmod(self.folder.stat().st_mode | 0o711)
        # PostgreSQL serves only the MLflow server beside it: loopback, whatever --host says
        self.postgres = Postgres(self.folder / "pgdata", "127.0.0.1", pg_port or free_port(), self._password(),
                                 self.folder / "postgres.log")
        self.mlflow = MlflowServer(self.postgres.uri, self.folder / "artifacts", host, port, self.folder / "mlflow.log",
                                   workers)

    def _password(self) -> str:
        path = self.folder / "pg_password"
        if not path.is_file():
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(24))
        return path.read_text().strip()

    @property
    def uri(self) -> str:
        return self.mlflow.uri

    def start(self) -> "TeamServer":
        try:
            self.postgres.init()
            self.postgres.start()
            self.mlflow.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.mlflow.stop()
        self.postgres.stop()

    def __enter__(self) -> "TeamServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _interrupt(signum, frame) -> None:
    """SIGTERM and SIGINT (Ctrl-C) stop both servers before we exit."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ggevo-server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("mlflow-server"),
                        help="folder for the database, the artifacts and the logs (default: mlflow-server)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address the MLflow server listens on (default: 127.0.0.1; PostgreSQL stays there)")
    parser.add_argument("--port", type=int, default=5000, help="MLflow server port (default: 5000)")
    parser.add_argument("--pg-port", type=int, default=None, help="PostgreSQL port (default: a free one)")
    parser.add_argument("--workers", type=int, default=1, help="MLflow server worker processes (default: 1)")
    args = parser.parse_args(argv)

    for sig in (signal.SIGTERM, signal.SIGINT):  # SIGINT too: a shell starting us in the background ignores it
        signal.signal(sig, _interrupt)
    server = TeamServer(args.dir, args.host, args.port, args.pg_port, args.workers)
    try:
        server.start()
        print(f"MLflow server on PostgreSQL: {server.uri} (database {server.postgres.host}:{server.postgres.port}, "
              f"artifacts in {server.mlflow.artifacts}, logs in {server.folder})\n"
              f"  export MLFLOW_TRACKING_URI={server.uri}\n"
              f"runs in the UI: {server.uri}/#/experiments?workflowType=machine_learning\n"
              f"Ctrl-C stops both servers.", flush=True)
        while server.mlflow.proc.poll() is None and server.postgres.proc.poll() is None:
            time.sleep(0.5)
        which = "mlflow server" if server.mlflow.proc.poll() is not None else "PostgreSQL"
        print(f"error: {which} stopped on its own; see the logs in {server.folder}", file=sys.stderr)
        server.stop()
        sys.exit(1)
    except ServerError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        server.stop()
        print("stopped MLflow server and PostgreSQL", flush=True)


if __name__ == "__main__":
    main()

"""The project's own PostGIS: a local PostgreSQL cluster in a folder the project owns.

`onemap db up` and the test session both use :func:`up`. ``initdb`` refuses to run as root, so when we
are root the cluster is owned by and run as the unprivileged ``postgres`` system user that Debian's
package creates. The cluster listens on 127.0.0.1 only, on a free port, with trust authentication:
it is a developer's and CI's database, not a deployment (point ONEMAP_DATABASE_URL at a real one).

Two roles, so the audit log cannot be rewritten by the application (审计日志防篡改): ``onemap`` (the
bootstrap role, :data:`DB_USER`) owns the database, the schema and every table and runs the migrations;
``onemap_app`` (:data:`APP_USER`) is what the server, the CLI and the tests connect as: no superuser,
no CREATEROLE/CREATEDB, owner of nothing, with only the table privileges ``onemap db migrate`` grants
(``scripts.migrate.grant_app_role``). Owning nothing, it cannot disable triggers, truncate or alter a
table, so the append-only trigger on ``audit_log`` holds for it.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg

DB_USER = "onemap"  # owner: the schema, the tables, the migrations
APP_USER = "onemap_app"  # the application: table privileges only
DB_NAME = "onemap"
RUN_AS = "postgres"


@dataclass
class ClusterState:
    data_dir: str
    port: int
    user: str = DB_USER
    database: str = DB_NAME
    app_user: str = APP_USER

    @property
    def url(self) -> str:
        """What the application connects as (the non-owner app role)."""
        return self.url_for(self.database)

    @property
    def owner_url(self) -> str:
        """What migrations connect as (the owner of the schema)."""
        return self.url_for(self.database, owner=True)

    def url_for(self, database: str, *, owner: bool = False) -> str:
        user = self.user if owner else self.app_user
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str | None = None) -> str:
        """A libpq DSN as the owner (creating databases, administration)."""
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={database or self.database}"


class ClusterError(RuntimeError):
    """The local cluster could not be created or started; the message says what to do."""


def find_bin(hint: Path | None = None) -> Path:
    """The folder holding initdb and pg_ctl (Debian keeps them off PATH)."""
    candidates = [hint] if hint else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    if shutil.which("pg_ctl"):
        candidates.append(Path(shutil.which("pg_ctl")).parent)  # type: ignore[arg-type]
    for folder in candidates:
        if folder and (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    raise ClusterError(
        "PostgreSQL server binaries not found. Install them with: "
        "sudo apt-get install -y postgresql-15 postgresql-15-postgis-3 (or run scripts/setup_system.sh as root)"
    )


def _as_owner(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    try:
        pwd.getpwnam(RUN_AS)
    except KeyError as exc:
        raise ClusterError(f"running as root needs the '{RUN_AS}' system user (apt-get install postgresql-15)") from exc
    return ["runuser", "-u", RUN_AS, "--", *cmd]


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(_as_owner(cmd), capture_output=True, text=True, **kw)


def _chown_tree(path: Path) -> None:
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(RUN_AS)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
            os.chown(name, entry.pw_uid, entry.pw_gid)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as PostgreSQL binds
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _initdb(bin_dir: Path, cluster: Path) -> None:
    cluster.mkdir(parents=True, exist_ok=True)
    _chown_tree(cluster.parent)
    os.chmod(cluster, 0o700)
    result = _run([str(bin_dir / "initdb"), "-D", str(cluster), "-U", DB_USER, "-A", "trust",
                   "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
    if result.returncode != 0:
        raise ClusterError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")


def is_running(bin_dir: Path, cluster: Path) -> bool:
    if not (cluster / "PG_VERSION").exists():
        return False
    return _run([str(bin_dir / "pg_ctl"), "-D", str(cluster), "status"]).returncode == 0


def _start(bin_dir: Path, cluster: Path, port: int, options: dict[str, str]) -> None:
    settings = {"listen_addresses": "127.0.0.1", "port": str(port),
                "unix_socket_directories": str(cluster), **options}
    opts = " ".join(f"-c {k}={v}" for k, v in settings.items())
    log = cluster.parent / "postgres.log"
    if os.geteuid() == 0 and not log.exists():
        log.touch()
        _chown_tree(log)
    result = _run([str(bin_dir / "pg_ctl"), "-D", str(cluster), "-o", opts, "-l", str(log), "-w", "-t", "60", "start"])
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise ClusterError(f"PostgreSQL did not start: {result.stderr.strip()}\n{tail}")


APP_ROLE_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"


def ensure_app_role(conn: psycopg.Connection, name: str = APP_USER) -> None:
    """Create the application's role (or take back any power it was given): log in, nothing else."""
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
    verb = "ALTER" if exists else "CREATE"
    conn.execute(f'{verb} ROLE "{name}" {APP_ROLE_ATTRIBUTES}')


def _ensure_database(state: ClusterState) -> None:
    with psycopg.connect(state.dsn("postgres"), autocommit=True) as conn:
        ensure_app_role(conn, state.app_user)
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (state.database,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{state.database}"')
    with psycopg.connect(state.dsn(), autocommit=True) as conn:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        except psycopg.errors.FeatureNotSupported as exc:
            raise ClusterError("PostGIS is not installed: apt-get install -y postgresql-15-postgis-3") from exc
        except psycopg.errors.UndefinedFile as exc:
            raise ClusterError("PostGIS is not installed: apt-get install -y postgresql-15-postgis-3") from exc


def up(data_dir: Path, *, bin_dir: Path | None = None, options: dict[str, str] | None = None) -> ClusterState:
    """Create (once) and start the cluster in ``data_dir``; idempotent. Returns where it listens."""
    data_dir = Path(data_dir).resolve()
    bin_dir = find_bin(bin_dir)
    cluster = data_dir / "pgdata"
    state_file = data_dir / "db.json"
    previous = json.loads(state_file.read_text()) if state_file.exists() else {}
    if not (cluster / "PG_VERSION").exists():
        _initdb(bin_dir, cluster)
    if is_running(bin_dir, cluster) and previous.get("port"):
        state = ClusterState(str(cluster), int(previous["port"]))
    else:
        port = int(previous.get("port") or 0)
        if not port or not _port_free(port):
            port = free_port()
        _start(bin_dir, cluster, port, options or {})
        state = ClusterState(str(cluster), port)
    _wait_ready(state)
    _ensure_database(state)
    state_file.write_text(json.dumps(asdict(state)))
    return state


def _wait_ready(state: ClusterState, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(state.dsn("postgres"), connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def down(data_dir: Path, *, bin_dir: Path | None = None) -> bool:
    """Stop the cluster; returns whether it was running."""
    bin_dir = find_bin(bin_dir)
    cluster = Path(data_dir).resolve() / "pgdata"
    if not is_running(bin_dir, cluster):
        return False
    result = _run([str(bin_dir / "pg_ctl"), "-D", str(cluster), "-m", "fast", "-w", "stop"])
    if result.returncode != 0:
        raise ClusterError(f"pg_ctl stop failed: {result.stderr.strip()}")
    return True


def status(data_dir: Path, *, bin_dir: Path | None = None) -> dict:
    data_dir = Path(data_dir).resolve()
    cluster = data_dir / "pgdata"
    info: dict = {"data_dir": str(data_dir), "initialised": (cluster / "PG_VERSION").exists()}
    try:
        info["running"] = is_running(find_bin(bin_dir), cluster)
    except ClusterError as exc:
        info["running"] = False
        info["error"] = str(exc)
    state_file = data_dir / "db.json"
    if state_file.exists():
        state = ClusterState(**json.loads(state_file.read_text()))
        info.update(port=state.port, url=state.url, owner_url=state.owner_url)
    return info

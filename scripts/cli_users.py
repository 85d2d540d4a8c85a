"""`onemap users add|disable|enable|reset|list` and `onemap bench load`.

There is no default administrator: the first city admin is created here, e.g.
``onemap users add admin --role city`` (the password is prompted, or read from stdin with
``--password-stdin`` for scripts).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gis.errors import OneMapError

console = Console(stderr=True)
out = Console()
users_app = typer.Typer(help="Accounts: add, disable, reset passwords, list (账号管理).", no_args_is_help=True)


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(1)


def _password(from_stdin: bool, *, confirm: bool = True) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("password", hide_input=True, confirmation_prompt=confirm)


def _grids(raw: str | None) -> list[str]:
    return [c.strip() for c in (raw or "").replace(";", ",").split(",") if c.strip()]


@users_app.command("add")
def add(username: str,
        role: Annotated[str, typer.Option(help="city, district, town, village, grid_worker, department, planner, "
                                               "analyst or viewer")],
        area: Annotated[str | None, typer.Option(help="12-digit area code the role covers (none: whole city)")] = None,
        department: Annotated[str | None, typer.Option(help="department code, for the department role")] = None,
        grids: Annotated[str | None, typer.Option(help="comma-separated grid codes, for grid workers")] = None,
        display_name: Annotated[str, typer.Option("--name", help="display name, e.g. 张伟")] = "",
        password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")] = False,
        ) -> None:
    """Create an account scoped to its area."""
    from gis.db import session_scope
    from layers.accounts.security import create_user

    password = _password(password_stdin)
    try:
        with session_scope() as session:
            user = create_user(session, username=username, password=password, role=role, area_code=area,
                               department=department, grid_codes=_grids(grids), display_name=display_name)
            out.print(f"added {user.username} ({user.role}{' ' + user.area_code if user.area_code else ''})")
    except (OneMapError, RuntimeError) as exc:
        _fail(getattr(exc, "message", str(exc)))


def _set_disabled(username: str, disabled: bool) -> None:
    from gis.db import session_scope
    from layers.accounts.security import set_disabled

    try:
        with session_scope() as session:
            set_disabled(session, username, disabled)
    except (OneMapError, RuntimeError) as exc:
        _fail(getattr(exc, "message", str(exc)))
    out.print(f"{username} {'disabled: its tokens no longer work' if disabled else 'enabled'}")


@users_app.command("disable")
def disable(username: str) -> None:
    """Refuse an account's sign-ins and revoke its tokens at once."""
    _set_disabled(username, True)


@users_app.command("enable")
def enable(username: str) -> None:
    """Allow a disabled account again."""
    _set_disabled(username, False)


@users_app.command("reset")
def reset(username: str,
          password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")] = False,
          ) -> None:
    """Set a new password; clears a lock-out and revokes the account's tokens."""
    from gis.db import session_scope
    from layers.accounts.security import set_password

    password = _password(password_stdin)
    try:
        with session_scope() as session:
            set_password(session, username, password)
    except (OneMapError, RuntimeError) as exc:
        _fail(getattr(exc, "message", str(exc)))
    out.print(f"password of {username} reset")


@users_app.command("list")
def list_users() -> None:
    """Every account with its role and scope."""
    from sqlalchemy import select

    from gis.db import session_scope
    from layers.accounts.models import User

    try:
        with session_scope() as session:
            rows = session.scalars(select(User).order_by(User.username)).all()
    except RuntimeError as exc:
        _fail(str(exc))
    table = Table("username", "name", "role", "area", "department", "grids", "state")
    for u in rows:
        state = "disabled" if u.disabled else ("locked" if u.locked_until else "active")
        table.add_row(u.username, u.display_name, u.role, u.area_code or "city", u.department or "",
                      ",".join(u.grid_codes or []), state)
    out.print(table)


def bench_load(url: Annotated[str, typer.Option(help="base URL of a running OneMap")] = "http://127.0.0.1:8000",
               rate: Annotated[float, typer.Option(help="target requests per second")] = 200.0,
               seconds: Annotated[float, typer.Option(help="how long to run")] = 60.0,
               token: Annotated[str | None, typer.Option(envvar="ONEMAP_BENCH_TOKEN",
                                                         help="bearer token when auth is on")] = None,
               skip: Annotated[list[str] | None, typer.Option(help="leave a kind out: map, tile, resolve, create, "
                                                                   "move, gps")] = None,
               serve: Annotated[int, typer.Option(help="start a server with this many processes on a free port "
                                                       "against the configured database (0: use --url)")] = 0,
               warmup: Annotated[float, typer.Option(help="seconds of the same load first, reported apart "
                                                          "(caches and connection pools fill)")] = 10.0) -> None:
    """Mixed loopback load (map reads, resolves, ticket creates and moves, GPS ingest): throughput, p50/p99
    per kind, and a count afterwards that no accepted write was lost."""
    from gis.settings import database_settings
    from scripts.bench_cpu import CpuProbe, postmaster
    from scripts.bench_load import run

    server = None
    try:
        if serve:
            from gis.pg import free_port
            from scripts.bench_http import start_server, wait_warm

            port = free_port()
            server = start_server(port, serve)
            url = f"http://127.0.0.1:{port}"
            wait_warm(url, "/resolve?lon=118.8&lat=36.88", token=token)
            out.print(f"server: {serve} process(es) at {url}")
        probe = CpuProbe(server.pid if server else None, postmaster(database_settings().data_dir))
        report = run(url, rate=rate, seconds=seconds, token=token, skip=tuple(skip or ()), warmup=warmup,
                     probe=probe)
    except (OneMapError, RuntimeError, ValueError) as exc:
        _fail(getattr(exc, "message", str(exc)))
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
    out.print(report.text())
    if report.lost:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    bench = next((g.typer_instance for g in app.registered_groups if g.name == "bench"), None)
    if bench is not None:
        bench.command("load")(bench_load)

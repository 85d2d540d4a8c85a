"""`onemap tickets ...`: create, list, show, move, simulate, cards, kpis, ranking.

Thin wrappers over layers.incidents (the same functions the API calls); errors are one line and exit 1.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gis.errors import OneMapError

tickets_app = typer.Typer(
    help="Tickets (事件工单): intake, moves, simulation, KPIs.", no_args_is_help=True
)
CsvOpt = Annotated[Path | None, typer.Option(help="Write UTF-8 CSV (with BOM) here.")]
err = Console(stderr=True)
out = Console()


def _guard(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OneMapError as exc:
            err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
            raise typer.Exit(1) from None
        except RuntimeError as exc:  # no database configured
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper


def _json(value: Any) -> None:
    out.print_json(json.dumps(value, ensure_ascii=False, default=str))


@tickets_app.command("create")
@_guard
def create(
    category: str = typer.Option(..., help="4-digit category code, e.g. 0102"),
    description: str = typer.Option(...),
    channel: str = typer.Option("hotline"),
    severity: str = typer.Option("general"),
    lon: float | None = typer.Option(None),
    lat: float | None = typer.Option(None),
    crs: str = typer.Option("EPSG:4326", help="EPSG code, gcj02 or bd09"),
    address: str | None = typer.Option(None),
    phone: str | None = typer.Option(None),
    name: str | None = typer.Option(None),
) -> None:
    """Receive a report (受理)."""
    from gis.db import session_scope
    from layers.incidents.intake import create_ticket

    with session_scope() as session:
        t = create_ticket(
            session,
            channel=channel,
            category=category,
            description=description,
            severity=severity,
            lon=lon,
            lat=lat,
            crs=crs,
            address=address,
            reporter_phone=phone,
            reporter_name=name,
            actor="cli",
        )
        where = f"unplaced ({t.unplaced_reason})" if t.unplaced else f"grid {t.grid_code}"
        dup = f", duplicate of #{t.duplicate_of}" if t.duplicate_of else ""
        out.print(f"ticket #{t.id} {t.state} in {where}{dup}")


@tickets_app.command("list")
@_guard
def list_(
    state: str | None = None,
    town: str | None = None,
    grid: str | None = None,
    category: str | None = None,
    channel: str | None = None,
    overdue: bool | None = typer.Option(None, "--overdue/--not-overdue"),
    unplaced: bool | None = typer.Option(None, "--unplaced/--placed"),
    limit: int = 30,
    offset: int = 0,
) -> None:
    """List tickets, newest first (phones masked)."""
    from gis.db import session_scope
    from layers.incidents.read import list_tickets

    with session_scope() as session:
        total, rows = list_tickets(
            session,
            state=state,
            town=town,
            grid=grid,
            category=category,
            channel=channel,
            overdue=overdue,
            unplaced=unplaced,
            limit=limit,
            offset=offset,
        )
    table = Table(title=f"{total} tickets")
    for col in ("id", "created", "channel", "category", "state", "card", "grid", "phone"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["id"]),
            f"{r['created_at']:%m-%d %H:%M}",
            r["channel"],
            f"{r['category']} {r['category_name']}",
            r["state"],
            r["card"],
            r["grid_code"] or "(unplaced)",
            r["reporter_phone"] or "",
        )
    out.print(table)


@tickets_app.command("show")
@_guard
def show(ticket_id: int) -> None:
    """A ticket with its timeline, as JSON."""
    from gis.db import session_scope
    from layers.incidents.read import detail

    with session_scope() as session:
        _json(detail(session, ticket_id))


@tickets_app.command("move")
@_guard
def move(
    ticket_id: int,
    name: str,
    actor: str = typer.Option(...),
    role: str = typer.Option(...),
    note: str | None = None,
    payload: str = typer.Option("{}", help='JSON, e.g. {"assignee": "370783001000"}'),
) -> None:
    """Make one move (dispatch, grab, split, join, return, sign, ..., revisit, close, sign_off)."""
    from gis.db import session_scope
    from gis.errors import InvalidInput
    from layers.incidents.moves import apply_move

    try:
        data = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--payload is not JSON: {exc.msg}") from None
    with session_scope() as session:
        t = apply_move(session, ticket_id, name, actor=actor, role=role, note=note, payload=data)
        out.print(f"ticket #{t.id} is now {t.state}")


@tickets_app.command("simulate")
@_guard
def simulate(days: int = 7, per_day: int = 150, seed: int = 20261001) -> None:
    """Fill the demo city with a realistic stretch of tickets ending now."""
    from gis.db import session_scope
    from layers.incidents.simulate import simulate as run

    with session_scope() as session:
        out.print(run(session, days=days, per_day=per_day, seed=seed).text())


@tickets_app.command("cards")
@_guard
def cards() -> None:
    """Recompute yellow/red cards now, at this machine's time (each change is recorded as an event).

    The server does this on its own every ONEMAP_CARDS_EVERY_S seconds; this runs it at once (an
    admin's tool: it needs the database's credentials). Refused while a server is running it."""
    from datetime import timedelta

    from gis.db import session_scope
    from gis.settings import api_settings
    from layers.incidents.cards import run_cards_job

    with session_scope() as session:
        counts = run_cards_job(session, every=timedelta(seconds=api_settings().cards_every_s), force=True)
    if counts is None:
        err.print("a server is refreshing the cards right now; try again in a moment")
        raise typer.Exit(1)
    out.print(counts)


def _cell(value: Any) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    if isinstance(value, float):
        return f"{value:.1%}" if value <= 1 else f"{value:.2f}"
    return str(value)


def _frame_out(frame, csv: Path | None, columns: list[str]) -> None:
    from layers.incidents.kpis import to_csv

    if csv:
        csv.write_bytes(to_csv(frame))
        out.print(f"wrote {len(frame)} rows to {csv}")
        return
    table = Table()
    for col in columns:
        table.add_column(HEADERS.get(col, col), no_wrap=True)
    for row in frame[columns].itertuples(index=False):
        table.add_row(*(_cell(v) for v in row))
    Console(width=max(out.width, 150)).print(table)


HEADERS = {
    "received": "受理",
    "timely_sign_rate": "及时签收率",
    "on_time_completion_rate": "按期办结率",
    "first_time_fix_rate": "一次性完工率",
    "satisfaction_rate": "满意率",
    "closure_rate": "办结率",
    "score": "得分",
}


def _month(month: str | None) -> str:
    from gis.settings import CITY_TZ

    return month or datetime.now(CITY_TZ).strftime("%Y-%m")


@tickets_app.command("kpis")
@_guard
def kpis(
    level: str = "town",
    month: str | None = None,
    code: str | None = None,
    csv: CsvOpt = None,
) -> None:
    """KPIs per town, department or grid for a month (YYYY-MM, default this month)."""
    from gis.db import session_scope
    from layers.incidents import kpis as K

    with session_scope() as session:
        frame = K.kpis(session, level, month=_month(month), code=code)
    _frame_out(frame, csv, ["code", "name", "received", *K.RATES])


@tickets_app.command("ranking")
@_guard
def ranking(level: str = "town", month: str | None = None, csv: CsvOpt = None) -> None:
    """The monthly ranking of towns or departments."""
    from gis.db import session_scope
    from layers.incidents import kpis as K

    with session_scope() as session:
        frame = K.ranking(session, level, month=_month(month))
    _frame_out(frame, csv, ["rank", "code", "name", "received", *K.RATES, "score"])


def register(app: typer.Typer) -> None:
    app.add_typer(tickets_app, name="tickets")

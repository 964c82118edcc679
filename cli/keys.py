"""`imagebatch keys create|list|revoke`: API-key admin tooling that talks to the database directly."""

import json
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, TypedDict

import typer
from rich.table import Table
from sqlalchemy.exc import OperationalError, ProgrammingError

from imagebatch.cli.console import err, out
from imagebatch.core.config import settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

keys_app = typer.Typer(help="API keys (admin: reads and writes the database directly).", no_args_is_help=True)


class _KeyRow(TypedDict):
    id: int
    tenant: str
    name: str | None
    created_at: str
    revoked_at: str | None


def _session_scope() -> AbstractContextManager["Session"]:
    # The database layer is imported lazily, so `imagebatch --help` stays fast.
    from imagebatch.db.migrate import upgrade_to_head
    from imagebatch.db.session import session_scope

    if settings.AUTO_MIGRATE:
        upgrade_to_head()  # a fresh embedded install has no api_keys table before the API first starts
    return session_scope()


def _database_error(exc: Exception) -> typer.Exit:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    err.print(
        f"[bold red]error:[/bold red] database unavailable or not migrated (`imagebatch migrate`): {reason}",
        highlight=False,
        soft_wrap=True,
    )
    return typer.Exit(5)


@keys_app.command("create")
def create(
    tenant: str = typer.Option(..., "--tenant", help="Tenant the key's jobs belong to."),
    name: str | None = typer.Option(None, "--name", help="A label to tell keys apart."),
) -> None:
    """Create a key; its secret is printed once (only its SHA-256 is stored)."""
    from imagebatch.db.keys import create_key

    try:
        with _session_scope() as session:
            key = create_key(session, tenant=tenant, name=name)
    except ValueError as exc:
        err.print(f"[bold red]error:[/bold red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    except (OperationalError, ProgrammingError) as exc:
        raise _database_error(exc) from None
    err.print(f"key {key.id} for tenant {key.tenant!r} created; the secret below is shown only now:", highlight=False)
    typer.echo(key.secret)


@keys_app.command("list")
def list_(
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant's keys."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List keys (never their secrets)."""
    from imagebatch.db.keys import list_keys

    try:
        with _session_scope() as session:
            rows: list[_KeyRow] = [
                {
                    "id": k.id,
                    "tenant": k.tenant,
                    "name": k.name,
                    "created_at": k.created_at.isoformat(),
                    "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
                }
                for k in list_keys(session, tenant=tenant)
            ]
    except (OperationalError, ProgrammingError) as exc:
        raise _database_error(exc) from None
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "tenant", "name", "created", "revoked")
    for row in rows:
        table.add_row(str(row["id"]), row["tenant"], row["name"] or "", row["created_at"], row["revoked_at"] or "")
    out.print(table)


@keys_app.command("revoke")
def revoke(key_id: int = typer.Argument(..., help="The key's id (from `keys list`).")) -> None:
    """Revoke a key at once: requests with it get 401 from now on."""
    from imagebatch.db.keys import revoke_key

    try:
        with _session_scope() as session:
            done = revoke_key(session, key_id)
    except (OperationalError, ProgrammingError) as exc:
        raise _database_error(exc) from None
    if not done:
        err.print(f"[bold red]error:[/bold red] no active key with id {key_id}", highlight=False)
        raise typer.Exit(4)
    out.print(f"key {key_id} revoked", highlight=False)

"""What every command shares: the documented exit codes, the model choice, one-line failures."""

import enum

import typer

from imagebatch.cli.console import err
from imagebatch.core.catalog import MODEL_NAMES

EXIT_CODES = (
    "Exit codes: 0 success; 1 the job ended failed or cancelled (--wait), or the demo could not finish; "
    "2 bad arguments or input files; 3 API unreachable; 4 no such job; 5 any other API error; "
    "6 API key missing, wrong or revoked; 130 interrupted."
)
EXIT_JOB_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_NOT_FOUND, EXIT_API_ERROR, EXIT_AUTH = 1, 2, 3, 4, 5, 6

# typer shows and checks an Enum's members as the choices. Built from the catalog, so mypy (which
# reads only literal members) cannot list them: it still knows the type, only not its members.
ModelName = enum.Enum("ModelName", {m: m for m in MODEL_NAMES}, type=str)  # type: ignore[misc]


def fail(message: str, code: int) -> typer.Exit:
    """Print `message` as one red line on stderr; raise the returned Exit to end with `code`."""
    err.print(f"[bold red]error:[/bold red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)

"""The `imagebatch` command line: run the services, submit jobs, inspect and export results."""

import typer

from imagebatch.cli import jobs, model_tools, services, tools, training
from imagebatch.cli.common import EXIT_CODES
from imagebatch.cli.keys import keys_app
from imagebatch.core.config import settings

app = typer.Typer(
    help=f"imagebatch: bulk image classification with ResNet.\n\n{EXIT_CODES}",
    no_args_is_help=True,
    # --install-completion / --show-completion for bash, zsh, fish and PowerShell.
    add_completion=True,
)
# Top-level commands, listed by --help in this order: the services, the API's commands, the tools.
for commands in (services.app, jobs.app, training.app, model_tools.app, tools.app):
    app.registered_commands += commands.registered_commands
app.add_typer(tools.weights_app, name="weights")
app.add_typer(keys_app, name="keys")
training.models_app.registered_commands += model_tools.models_commands.registered_commands
app.add_typer(training.models_app, name="models")


@app.callback()
def main(
    ctx: typer.Context,
    url: str = typer.Option(settings.API_URL, "--url", envvar="IMAGEBATCH_API_URL", help="API address."),
    api_key: str | None = typer.Option(None, "--api-key", envvar="IMAGEBATCH_API_KEY", help="Bearer token."),
) -> None:
    """Global options shared by the client commands."""
    # No logging set-up here: `serve` and `worker` configure their own from IMAGEBATCH_LOG_LEVEL.
    ctx.obj = {"url": url, "api_key": api_key}

"""`imagebatch demo|bench|weights`: the whole service on sample photos, the benchmark, weights helpers."""

from pathlib import Path

import typer

from imagebatch.cli.common import EXIT_CODES, EXIT_USAGE, ModelName, fail
from imagebatch.console import err

app = typer.Typer()
weights_app = typer.Typer(help="Model weights helpers.", no_args_is_help=True)


@app.command(epilog=EXIT_CODES)
def demo(
    images: int = typer.Option(16, "--images", min=1, help="How many sample photos to classify."),
    random_weights: bool | None = typer.Option(
        None, "--random-weights/--no-random-weights",
        help="Use seeded random weights when the real ones cannot be had. "
        "Default: yes when not interactive, ask when stdin is a terminal.",
    ),
    keep: bool = typer.Option(False, "--keep", help="Keep the demo's data folder (database, uploads, logs)."),
) -> None:
    """Run the whole service on this machine with no configuration and classify sample photos."""
    from imagebatch.demo import run_demo

    raise typer.Exit(run_demo(images=images, random_weights=random_weights, keep=keep))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
def bench(ctx: typer.Context) -> None:
    """Throughput benchmark: seed loop, offline script, model bound, decode, service e2e (see `bench --help`)."""
    from imagebatch.bench.cli import main as bench_main

    raise typer.Exit(bench_main(list(ctx.args)))


@weights_app.command("random")
def weights_random(
    model: ModelName,
    torch_home: Path | None = typer.Option(None, help="Default: $TORCH_HOME, else ~/.cache/torch."),
    seed: int = typer.Option(0, help="Seed for the random initialisation."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing weights file."),
) -> None:
    """Write a seeded RANDOM checkpoint under the official file name (for offline tests only)."""
    from imagebatch.demo import checkpoint_path, torch_home_dir

    home = (torch_home or torch_home_dir()).expanduser().resolve()
    target = checkpoint_path(model.value, home)
    if target.exists() and not force:
        raise fail(f"{target} already exists (real weights?); pass --force to overwrite it", EXIT_USAGE)
    from worker.random_weights import write_random_checkpoint

    path = write_random_checkpoint(model.value, home, seed=seed)
    err.print(f"[bold yellow]RANDOM WEIGHTS[/bold yellow] written to {path} (seed {seed}); "
              "predictions made with them are meaningless.", highlight=False)
    typer.echo(str(path))

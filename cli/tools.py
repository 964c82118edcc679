"""`imagebatch demo|bench|weights`: the whole service on sample photos, the benchmark, weights helpers."""

from pathlib import Path

import typer

from imagebatch.cli.common import EXIT_CODES, EXIT_USAGE, ModelName, fail
from imagebatch.cli.console import err

app = typer.Typer()
weights_app = typer.Typer(help="Model weights helpers.", no_args_is_help=True)


@app.command(epilog=EXIT_CODES)
def demo(
    images: int = typer.Option(16, "--images", min=1, help="How many sample photos to classify."),
    random_weights: bool | None = typer.Option(
        None,
        "--random-weights/--no-random-weights",
        help="Use seeded random weights when the real ones cannot be had. "
        "Default: yes when not interactive, ask when stdin is a terminal.",
    ),
    keep: bool = typer.Option(False, "--keep", help="Keep the demo's data folder (database, uploads, logs)."),
    train: bool = typer.Option(
        False, "--train", help="Then train a ResNet-18 on the UCI digits, evaluate it and show its scores."
    ),
) -> None:
    """Run the whole service on this machine with no configuration and classify sample photos."""
    from imagebatch.cli.demo import run_demo

    raise typer.Exit(run_demo(images=images, random_weights=random_weights, keep=keep, train=train))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
def bench(ctx: typer.Context) -> None:
    """Throughput benchmark from a source checkout: seed loop, offline script, model bound, decode, service e2e."""
    raise typer.Exit(run_checkout_benchmark(list(ctx.args)))


def run_checkout_benchmark(args: list[str]) -> int:
    """The benchmark lives in the checkout's bench/ folder (it is not shipped): run it from there."""
    import sys

    checkout = Path(__file__).resolve().parents[1]
    if not (checkout / "bench" / "cli.py").is_file():
        raise fail(
            "the benchmark is not installed with the package: run scripts/benchmark.py "
            'from a source checkout (pip install -e ".[worker,test]")',
            EXIT_USAGE,
        )
    sys.path.insert(0, str(checkout))
    from bench.cli import main as bench_main

    return bench_main(args)


@weights_app.command("random")
def weights_random(
    model: ModelName,
    torch_home: Path | None = typer.Option(None, help="Default: $TORCH_HOME, else ~/.cache/torch."),
    seed: int = typer.Option(0, help="Seed for the random initialisation."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing weights file."),
) -> None:
    """Write a seeded RANDOM checkpoint under the official file name (for offline tests only)."""
    from imagebatch.cli.demo import checkpoint_path, torch_home_dir

    home = (torch_home or torch_home_dir()).expanduser().resolve()
    target = checkpoint_path(model.value, home)
    if target.exists() and not force:
        raise fail(f"{target} already exists (real weights?); pass --force to overwrite it", EXIT_USAGE)
    from imagebatch.worker.random_weights import write_random_checkpoint

    path = write_random_checkpoint(model.value, home, seed=seed)
    err.print(
        f"[bold yellow]RANDOM WEIGHTS[/bold yellow] written to {path} (seed {seed}); "
        "predictions made with them are meaningless.",
        highlight=False,
    )
    typer.echo(str(path))

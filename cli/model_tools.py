"""`imagebatch models export` and `imagebatch gradcam`: a model as an ONNX/TorchScript file, and what it looks at."""

import enum
from collections.abc import Callable
from pathlib import Path

import typer

from imagebatch.cli.common import EXIT_API_ERROR, EXIT_CODES, fail
from imagebatch.cli.console import err, out
from imagebatch.cli.jobs import _client, friendly_errors
from imagebatch.client.errors import WaitTimeout
from imagebatch.core.artefacts import EXPORT_FORMATS, GRADCAM_FORMATS

ExportFormat = enum.Enum("ExportFormat", {f: f for f in EXPORT_FORMATS}, type=str)  # type: ignore[misc]
MapFormat = enum.Enum("MapFormat", {f: f for f in GRADCAM_FORMATS}, type=str)  # type: ignore[misc]

app = typer.Typer()
models_commands = typer.Typer()  # joined to `imagebatch models` (cli/__init__.py)


def _waiting(what: str) -> Callable[[float], None]:
    shown: list[float] = []

    def note(waited: float) -> None:
        if not shown:
            err.print(f"a worker is building the {what}…", highlight=False)
            shown.append(waited)

    return note


@models_commands.command("export", epilog=EXIT_CODES)
@friendly_errors
def export(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="resnet18, resnet50, or a custom model's name[:version]"),
    file_format: ExportFormat = typer.Option("onnx", "--format", help="onnx or torchscript"),
    out_path: Path = typer.Option(..., "--out", help="Where to write the file."),
    timeout: float = typer.Option(900.0, "--timeout", help="Seconds to wait for a worker to build it."),
) -> None:
    """Download a model as ONNX or TorchScript, waiting while a worker builds it.

    Input float32 N×3×H×W normalised as the model's transforms; outputs logits, then the embedding.
    The file's metadata names the model, its classes, the transforms and the weights' SHA-256."""
    with _client(ctx) as client:
        try:
            path = client.export_model(
                name, out_path, format=file_format.value, timeout=timeout, on_wait=_waiting("export")
            )
        except WaitTimeout as exc:
            raise fail(str(exc), EXIT_API_ERROR) from None
    out.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", highlight=False)


@app.command(epilog=EXIT_CODES)
@friendly_errors
def gradcam(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., help="The job."),
    index: int = typer.Argument(..., help="The image's index in the job."),
    out_path: Path = typer.Option(..., "--out", help="Where to write the PNG."),
    class_: str | None = typer.Option(None, "--class", help="A class index or label (default: the top-1 class)."),
    map_format: MapFormat = typer.Option("heatmap", "--format", help="heatmap (grey) or overlay (on the crop)."),
    timeout: float = typer.Option(900.0, "--timeout", help="Seconds to wait for a worker to compute it."),
) -> None:
    """Save the Grad-CAM map of one image (what the model looks at for a class) as a PNG at the model's crop."""
    with _client(ctx) as client:
        try:
            path = client.gradcam(
                job_id,
                index,
                out_path,
                class_=class_,
                format=map_format.value,
                timeout=timeout,
                on_wait=_waiting("Grad-CAM map"),
            )
        except WaitTimeout as exc:
            raise fail(str(exc), EXIT_API_ERROR) from None
    out.print(f"wrote {path}", highlight=False)

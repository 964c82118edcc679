"""`imagebatch demo`: a real API and worker on embedded defaults, classifying sample photos."""

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.panel import Panel
from rich.table import Column, Table

from imagebatch.cli.demo_training import train_and_evaluate
from imagebatch.client import ApiError, ApiUnreachable, Client, Job
from imagebatch.core.catalog import MODELS

DEMO_MODEL = "resnet18"
WEIGHTS_BASE_URL = "https://download.pytorch.org/models/"
_PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Settings that would point the demo at someone's real services instead of its own folder.
_SCRUBBED_ENV = (
    "REDIS_URL",
    "DATABASE_URL",
    "IMAGEBATCH_REDIS_URL",
    "IMAGEBATCH_DATABASE_URL",
    "IMAGEBATCH_STORAGE_URL",
    "IMAGEBATCH_API_URL",
    "IMAGEBATCH_API_KEY",
    "IMAGEBATCH_WORKER_MODELS",
    "IMAGEBATCH_AUTO_MIGRATE",
)
_RANDOM_BANNER = "RANDOM WEIGHTS — predictions are meaningless"

console = Console()


def torch_home_dir() -> Path:
    """torch.hub's cache root, resolved the way torch does it but without importing torch."""
    if os.environ.get("TORCH_HOME"):
        return Path(os.environ["TORCH_HOME"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(cache).expanduser() / "torch"


def checkpoint_path(model: str, torch_home: Path) -> Path:
    return Path(torch_home) / "hub" / "checkpoints" / MODELS[model].weights_file


def download_weights(model: str, target: Path) -> str | None:
    """Fetch the official checkpoint once, as torchvision would; returns why it failed, or None."""
    name = MODELS[model].weights_file
    expected = name.rsplit("-", 1)[1].split(".")[0]  # torch.hub names files <arch>-<sha256 prefix>
    partial = target.with_name(name + ".partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    try:
        with httpx.stream(
            "GET", WEIGHTS_BASE_URL + name, timeout=httpx.Timeout(60, connect=10), follow_redirects=True
        ) as response:
            response.raise_for_status()
            with open(partial, "wb") as out:
                for block in response.iter_bytes(1 << 20):
                    digest.update(block)
                    out.write(block)
    except (httpx.HTTPError, OSError) as exc:
        partial.unlink(missing_ok=True)
        return str(exc) or type(exc).__name__
    if not digest.hexdigest().startswith(expected):
        partial.unlink(missing_ok=True)
        return f"downloaded file's SHA-256 does not start with {expected}"
    partial.replace(target)
    return None


def _want_random(choice: bool | None) -> bool:
    if choice is not None:
        return choice
    if not sys.stdin.isatty():
        return True
    import typer

    return typer.confirm("Continue with seeded RANDOM weights (meaningless predictions)?", default=False)


def prepare_weights(data_dir: Path, random_weights: bool | None) -> tuple[Path | None, bool]:
    """(TORCH_HOME for the worker, whether it holds random weights); (None, False) to give up."""
    home = torch_home_dir()
    target = checkpoint_path(DEMO_MODEL, home)
    if target.exists():
        console.print(f"Using the {DEMO_MODEL} weights in {target}", highlight=False)
        return home, False
    console.print(f"{target.name} is not in {target.parent}; downloading it once ...", highlight=False)
    reason = download_weights(DEMO_MODEL, target)
    if reason is None:
        console.print(f"Downloaded {target}", highlight=False)
        return home, False
    console.print(
        f"[bold red]Could not download the {DEMO_MODEL} weights[/bold red] ({reason}).\n"
        f"For real predictions put [bold]{target.name}[/bold] (from {WEIGHTS_BASE_URL}{target.name}) "
        f"into [bold]{target.parent}[/bold], or point TORCH_HOME at a folder holding "
        f"hub/checkpoints/{target.name}.",
        highlight=False,
    )
    if not _want_random(random_weights):
        console.print("No weights, so no demo. Run again with --random-weights to see the pipeline work.")
        return None, False
    private = data_dir / "torch"  # never the user's cache: random weights must not pass for real ones
    done = subprocess.run(
        [sys.executable, "-m", "imagebatch.cli", "weights", "random", DEMO_MODEL, "--torch-home", str(private)],
        env=_child_env(data_dir),
        cwd=data_dir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        console.print(f"[bold red]Could not write random weights:[/bold red]\n{done.stderr.strip()}")
        return None, False
    console.print(f"Wrote seeded random weights to {checkpoint_path(DEMO_MODEL, private)}", highlight=False)
    return private, True


def _child_env(data_dir: Path, torch_home: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env["IMAGEBATCH_DATA_DIR"] = str(data_dir)
    env["IMAGEBATCH_WORKER_MODELS"] = DEMO_MODEL
    # The demo's API listens on 127.0.0.1 only and lives for one run: no API keys to set up.
    env["IMAGEBATCH_AUTH_ENABLED"] = "false"
    # The children run inside the data folder (no stray .env), yet must import this checkout.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    if torch_home is not None:
        env["TORCH_HOME"] = str(torch_home)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Services:
    """The API and one worker as child processes; stop() ends both, politely first."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir, self.env = data_dir, env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str) -> None:
        with open(self.data_dir / f"{name}.log", "ab") as log:
            # A session of their own: Ctrl-C reaches only the demo, which then stops them in order.
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "imagebatch.cli", *args],
                env=self.env,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"the {name} process exited with code {proc.returncode}")

    def wait_ready(self, client: Client, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                client.ready()
                return
            except (ApiUnreachable, ApiError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the API did not become ready within {timeout:.0f}s") from None
                time.sleep(0.3)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def log_tails(self, lines: int = 25) -> str:
        parts = []
        for name in self.procs:
            path = self.data_dir / f"{name}.log"
            text = path.read_text(errors="replace") if path.exists() else ""
            # uvicorn's access lines (the demo's own polling) would push the real error out of view.
            tail = [ln for ln in text.splitlines() if not ln.startswith("INFO:     127.0.0.1:")][-lines:]
            parts.append(f"--- {path} (last {len(tail)} lines) ---\n" + "\n".join(tail))
        return "\n".join(parts)


def _banner() -> None:
    console.print(Panel(f"[bold white on red] {_RANDOM_BANNER} [/]", border_style="red", expand=False))


def _show_reproducibility(job: Job) -> None:
    table = Table("reproducibility", Column("value", overflow="fold"), title="How these results were made")
    for key, value in (job.reproducibility or {}).items():
        style = "bold" if key == "weights_sha256" else ""
        table.add_row(key, f"[{style}]{value}[/{style}]" if style else str(value))
    console.print(table)


def _classify(services: Services, data_dir: Path, images: int, csv_path: Path, train: bool = False) -> Job:
    from imagebatch.cli.console import render_results
    from imagebatch.worker.samples import write_sample_photos

    with Client(services.url, timeout=60) as client:
        console.print(f"Starting the API on {services.url} ...", highlight=False)
        services.wait_ready(client)
        services.start("worker", "worker", "--models", DEMO_MODEL)
        photos = write_sample_photos(data_dir / "photos", images)
        console.print(f"Submitting {len(photos)} sample photos from {data_dir / 'photos'}", highlight=False)
        job = client.submit(data_dir / "photos", model=DEMO_MODEL, top_k=5)
        console.print(f"Job {job.id} queued; the worker loads {DEMO_MODEL} and classifies ...", highlight=False)
        job.wait(poll=0.5, progress=True, check=services.check_alive)
        if job.state != "completed":
            console.print(f"[bold red]Job {job.id} ended {job.state}:[/bold red] {job.data.get('error')}")
        console.print(render_results(list(client.iter_results(job.id))))
        job.export(csv_path)
        console.print(f"Results CSV: [bold]{csv_path}[/bold]", highlight=False)
        _show_reproducibility(job)
        if train and job.state == "completed" and not train_and_evaluate(client, data_dir, console):
            job.data["state"] = "failed"  # the demo's exit code says the training part failed
        return job


def run_demo(images: int = 16, random_weights: bool | None = None, keep: bool = False, train: bool = False) -> int:
    """Run the whole demo; returns the process exit code (0 when the job completed)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    data_dir = (Path(".imagebatch") / f"demo-{stamp}").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    csv_path = data_dir.parent / f"demo-{stamp}-results.csv"
    console.print(f"Demo data folder: {data_dir}", highlight=False)
    console.print(
        "[yellow]Authentication is OFF for the demo (IMAGEBATCH_AUTH_ENABLED=false); "
        "never run a shared API like that.[/yellow]",
        highlight=False,
    )
    torch_home, is_random = prepare_weights(data_dir, random_weights)
    if torch_home is None:
        shutil.rmtree(data_dir, ignore_errors=True)
        return 1
    if is_random:
        _banner()
    services = Services(data_dir, _child_env(data_dir, torch_home))
    ok = False
    try:
        services.start("api", "serve", "--host", "127.0.0.1", "--port", str(services.port))
        job = _classify(services, data_dir, images, csv_path, train)
        ok = job.state == "completed"
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted; stopping the API and the worker.[/yellow]")
        return 130
    except Exception as exc:  # noqa: BLE001 - any failure ends with the logs, not a traceback
        console.print(f"[bold red]Demo failed:[/bold red] {exc}\n{services.log_tails()}", highlight=False)
        return 1
    finally:
        services.stop()
        if is_random:
            _banner()
        if ok and not keep:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            console.print(f"Kept {data_dir} (database, uploads, api.log, worker.log)", highlight=False)
    return 0 if ok else 1

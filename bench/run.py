"""One benchmark run: the same images and weights through every pipeline, then ratios, a table and JSON."""

import json
import logging
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from bench import offline
from bench.images import bench_images, kind_of

if TYPE_CHECKING:
    from imagebatch.worker.context import WorkerContext

logger = logging.getLogger(__name__)


@dataclass
class BenchOptions:
    model: str = "resnet18"
    precision: str = "auto"
    # The offline script's precision; None: the service's, except bf16 when the service runs int8
    # (int8 is the service's; the script is the best a careful user writes with torch alone).
    offline_precision: str | None = None
    mix: str = "bench"  # bench: bench/images.py's generated photos; photos: scikit-image's real photos
    images: int = 1000
    batch_size: int = 32
    workers: int = 1  # worker processes
    concurrency: int = 2  # chunks in flight per worker process
    forward_slots: int = 0  # forwards at once per worker process (0 = the worker's automatic choice)
    decode: str = "fast"
    loader_workers: int = 1  # DataLoader decode processes of the offline script
    seed_images: int = 200  # the seed loop is slow: timed on the first N images
    e2e_images: int | None = None  # default: `images`; more repeats the image set (RSS runs)
    torch_threads: int = 0
    decode_threads: int = 0
    embedding_dtype: str = "float32"
    seed: int = 0
    torch_home: Path | None = None
    admin_pg_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    database: str = "imagebatch_bench"
    redis_url: str = "redis://127.0.0.1:6379/6"
    skip_e2e: bool = False
    skip_submission: bool = False


def prepare_weights(model: str, torch_home: Path | None) -> tuple[Path, bool]:
    """A TORCH_HOME holding the model's official weights file; (home, whether they are random)."""
    from imagebatch.cli.demo import checkpoint_path
    from imagebatch.worker.random_weights import write_random_checkpoint

    home = Path(torch_home or os.environ.get("TORCH_HOME") or Path.home() / ".cache" / "torch")
    if checkpoint_path(model, home).is_file():
        return home, False
    home = Path(tempfile.gettempdir()) / "imagebatch-bench" / "torch-random"
    if not checkpoint_path(model, home).is_file():
        write_random_checkpoint(model, home, seed=0)
    logger.warning("no %s weights found: using seeded RANDOM weights in %s", model, home)
    return home, True


def machine_facts() -> dict:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_at_start": os.getloadavg(),
    }


def options_record(o: BenchOptions) -> dict:
    """The options as JSON-ready values, for the result file."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(o).items()}


def worker_context() -> "WorkerContext":
    """The worker's context in this process, from its settings; models load on first use, once."""
    from imagebatch.core.config import settings
    from imagebatch.worker.context import WorkerContext

    return WorkerContext.build(settings)


def service_model(ctx: "WorkerContext", o: BenchOptions):
    """(loaded model, resolved precision) as the worker would run them."""
    from imagebatch.worker.devices import resolve_precision

    model = ctx.models.get(o.model)
    return model, resolve_precision(o.precision, model.device, ctx.capabilities)


def offline_precision(ctx: "WorkerContext", o: BenchOptions, model):
    from imagebatch.worker.devices import resolve_precision

    # An int8 service's baseline is the best float precision, which is what `auto` resolves to on a CPU: bf16
    # (issue 12) where the CPU computes it natively, else fp32 (bf16 autocast is emulated there: the offline
    # script ran 4.75 img/s at bf16 on an AVX2-only EPYC, below even the one-image fp32 loop's 23.8).
    requested = o.offline_precision or ("auto" if o.precision == "int8" else o.precision)
    return resolve_precision(requested, model.device, ctx.capabilities)


def int8_maker(ctx: "WorkerContext", model, precision):
    """None, or what builds the worker's int8 model anew (a fresh instance takes the current torch threads).

    Quantizing here also fills the on-disk cache under the benchmark's TORCH_HOME, which the worker
    processes then load instead of quantizing again (same weights, engine and calibration set).
    """
    if precision.resolved != "int8":
        return None
    from imagebatch.worker.modeltools.int8 import engine_class

    served = ctx.int8.get(model)
    return lambda streams=1: engine_class(served.engine).load(served.cache_entry).with_streams(streams)


def mix_paths(o: BenchOptions) -> list[Path]:
    if o.mix == "bench":
        return bench_images(o.images, o.seed)
    if o.mix == "photos":
        from imagebatch.worker.samples import write_sample_photos

        return write_sample_photos(Path(tempfile.gettempdir()) / "imagebatch-bench" / f"photos-{o.images}", o.images)
    raise ValueError(f"unknown image mix {o.mix!r}: bench or photos")


def mix_counts(o: BenchOptions, paths: list[Path]) -> dict[str, int]:
    if o.mix == "bench":
        return {k: sum(kind_of(i) == k for i in range(len(paths))) for k in ("jpeg", "phone", "png")}
    return {suffix: sum(p.suffix == f".{suffix}" for p in paths) for suffix in ("jpg", "png")}


def _offline_part(ctx: "WorkerContext", o: BenchOptions, paths: list[Path], home: Path) -> dict:
    os.environ["TORCH_HOME"] = str(home)  # torch.hub reads it at call time
    if o.torch_threads:
        torch.set_num_threads(o.torch_threads)
    model, precision = service_model(ctx, o)
    script_precision = offline_precision(ctx, o, model)
    t0 = time.perf_counter()
    make_int8 = int8_maker(ctx, model, precision)
    quantize_s = time.perf_counter() - t0
    sample = paths[: min(len(paths), 300)]
    phones = [p for i, p in enumerate(paths) if o.mix == "bench" and kind_of(i) == "phone"][:40]
    fidelity_paths = list(dict.fromkeys(paths[:200] + phones))
    int8_net = make_int8() if make_int8 else None
    steps = {
        "seed_loop_img_s": lambda: offline.seed_loop(model, paths[: o.seed_images]),
        "offline_script_img_s": lambda: offline.offline_script(
            model, paths, script_precision, o.batch_size, o.loader_workers
        ),
        "model_bound_layouts": lambda: model_bound_layouts(model, precision, o.batch_size, len(paths), make_int8),
        "decode_img_s": lambda: offline.decode_only(ctx, model, sample, o.decode == "fast"),
        "decode_exact_img_s": lambda: offline.decode_only(ctx, model, sample, False),
        "both_busy": lambda: offline.decode_beside_forward(ctx, model, sample * 2, precision, o.batch_size, make_int8),
        "fidelity": lambda: offline.fidelity(ctx, model, fidelity_paths, precision, o.batch_size, int8_net),
    }
    result = {
        "device": model.device,
        "precision_resolved": precision.resolved,
        "offline_precision": script_precision.resolved,
        "int8_quantize_or_load_s": quantize_s if make_int8 else None,
        "weights_sha256": model.weights_sha256,
    }
    for name, step in steps.items():
        t0 = time.perf_counter()
        result[name] = step()
        logger.info("%s: %s (%.1fs)", name, result[name], time.perf_counter() - t0)
    result["model_bound_img_s"] = max(result["model_bound_layouts"].values())
    return result


def model_bound_layouts(model, precision, batch_size: int, images: int, make_net=None) -> dict[str, float]:
    """The model bound with one forward on every core, and (CPU) one forward per core at once.

    The bound is the faster of the two: the machine's limit, whichever way the worker shares it.
    """
    cores = os.cpu_count() or 1
    # int8 forwards are ~10x faster: more batches keep the timing above the noise.
    batches = max(6, min(20, images // batch_size)) * (3 if make_net else 1)
    layouts = {f"1x{cores}": offline.model_bound(model, precision, batch_size, batches, make_net=make_net)}
    if cores > 1 and not model.device.startswith("cuda"):
        layouts[f"{cores}x1"] = offline.model_bound(
            model, precision, batch_size, batches, streams=cores, make_net=make_net
        )
    return layouts


def e2e_part(o: BenchOptions, paths: list[Path], home: Path) -> dict:
    from bench.e2e import Services
    from bench.service import run_service

    env_options = {
        "CHUNK_SIZE": o.batch_size,
        "WORKER_CONCURRENCY": o.concurrency,
        "DECODE_MODE": o.decode,
        "WORKER_MODELS": o.model,
        "EMBEDDING_DTYPE": o.embedding_dtype,
        "TORCH_THREADS": o.torch_threads,
        "DECODE_THREADS": o.decode_threads,
        "FORWARD_SLOTS": o.forward_slots,
    }
    return run_service(
        paths,
        services=Services(o.admin_pg_url, o.database, o.redis_url),
        torch_home=home,
        model=o.model,
        precision=o.precision,
        e2e_images=o.e2e_images or o.images,
        workers=o.workers,
        env_options=env_options,
        submission=not o.skip_submission,
    )


def _remeasure_baselines(ctx: "WorkerContext", o: BenchOptions, paths: list[Path], result: dict) -> None:
    """Measure the two batched baselines again right after e2e and keep the faster of each.

    On a machine shared with other work, load shifts within minutes; the best of two runs
    bracketing the e2e part is the conservative bar for the ratios. Both runs are recorded.
    """
    model, precision = service_model(ctx, o)
    layouts = model_bound_layouts(model, precision, o.batch_size, len(paths), int8_maker(ctx, model, precision))
    result["model_bound_layouts_runs"] = [result["model_bound_layouts"], layouts]
    script_precision = offline_precision(ctx, o, model)
    again = {
        "model_bound_img_s": max(layouts.values()),
        "offline_script_img_s": offline.offline_script(model, paths, script_precision, o.batch_size, o.loader_workers),
    }
    for key, value in again.items():
        result[f"{key}_runs"] = [result[key], value]
        result[key] = max(result[key], value)
    result["load_average_at_end"] = os.getloadavg()


def ratios(result: dict) -> dict:
    """The target ratios, and each one's ceiling: the ratio if the service ran at the model bound.

    The service cannot beat the model bound (it runs the same forwards, and decodes too), so a
    target above its ceiling cannot be met on this machine whatever the pipeline does.
    """
    e2e, bound = result.get("e2e_img_s"), result["model_bound_img_s"]
    ceiling = decode_forward_ceiling(result)
    result["decode_forward_ceiling_img_s"] = ceiling
    baselines = {
        "offline_script": result["offline_script_img_s"],
        "model_bound": bound,
        "decode_forward_ceiling": ceiling,
        "seed_loop": result["seed_loop_img_s"],
    }
    # What the service could reach: the model bound, or decoding and forwards sharing the cores.
    out = {f"ceiling_e2e_over_{name}": min(bound, ceiling) / value for name, value in baselines.items()}
    if e2e:
        out |= {f"e2e_over_{name}": e2e / value for name, value in baselines.items()}
    return out


def decode_forward_ceiling(result: dict) -> float:
    """Images/s if the cores did nothing but decode (the service's mode, one thread per core) and run forwards
    (at the model bound): each image costs 1/decode of a core plus cores/bound of core time."""
    cores = result["machine"]["cpus"] or 1
    return cores / (1 / result["decode_img_s"] + cores / result["model_bound_img_s"])


def run_benchmark(o: BenchOptions) -> dict:
    """Every measurement of one run, as one JSON-ready dict."""
    t0 = time.perf_counter()
    paths = mix_paths(o)
    home, random_weights = prepare_weights(o.model, o.torch_home)
    result: dict = {
        "options": options_record(o),
        "machine": machine_facts(),
        "random_weights": random_weights,
        "image_mix": {"name": o.mix, **mix_counts(o, paths)},
    }
    ctx = worker_context()
    try:
        result.update(_offline_part(ctx, o, paths, home))
        if not o.skip_e2e:
            result.update(e2e_part(o, paths, home))
            _remeasure_baselines(ctx, o, paths, result)
    finally:
        ctx.close()
    result.update(ratios(result))
    result["benchmark_seconds"] = time.perf_counter() - t0
    return result


def write_json(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str))

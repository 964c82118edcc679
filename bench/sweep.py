"""Tuning sweep: the service end to end under several worker settings, in one run, against one bound.

`imagebatch bench --sweep batch_size=16,32,64 forward_slots=1,0` runs the e2e part once per
combination (the grid's product) on the same images and weights, with the model bound measured
before and after, and prints images/s and the per-chunk split of each.
"""

import dataclasses
import itertools
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from bench.images import bench_images
from bench.run import (
    BenchOptions,
    e2e_part,
    int8_maker,
    machine_facts,
    model_bound_layouts,
    options_record,
    prepare_weights,
    service_model,
    worker_context,
)

if TYPE_CHECKING:
    from imagebatch.worker.context import WorkerContext

logger = logging.getLogger(__name__)

SWEEPABLE = ("batch_size", "concurrency", "forward_slots", "torch_threads", "decode_threads", "workers", "decode")


def parse_grid(specs: list[str]) -> dict[str, list]:
    """["batch_size=16,32", "decode=fast,exact"] -> {"batch_size": [16, 32], "decode": ["fast", "exact"]}."""
    grid: dict[str, list] = {}
    types = {f.name: f.type for f in dataclasses.fields(BenchOptions)}
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in SWEEPABLE or not values.strip():
            raise ValueError(f"--sweep takes KEY=V1,V2 with KEY one of {', '.join(SWEEPABLE)}, not {spec!r}")
        cast = int if types[key] in (int, "int") else str
        grid[key] = [cast(v.strip()) for v in values.split(",") if v.strip()]
    return grid


def combinations(grid: dict[str, list]) -> list[dict]:
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


def _bound(ctx: "WorkerContext", o: BenchOptions, count: int) -> dict[str, float]:
    model, precision = service_model(ctx, o)
    return model_bound_layouts(model, precision, o.batch_size, count, int8_maker(ctx, model, precision))


def _sweep_run(o: BenchOptions, combo: dict, paths: list[Path], home: Path) -> dict:
    options = dataclasses.replace(o, **combo, skip_submission=True)
    logger.info("sweep: %s", combo)
    e2e = e2e_part(options, paths, home)
    return {
        "settings": combo,
        "e2e_img_s": e2e["e2e_img_s"],
        "split": e2e["split"],
        "worker_rss_peak_mib": e2e["worker_rss_peak_mib"],
        "job_state": e2e["job_state"],
        "cpu_during_e2e": e2e["cpu_during_e2e"],
    }


def run_sweep(o: BenchOptions, grid: dict[str, list]) -> dict:
    """One e2e run per combination; the model bound (both layouts) before and after all of them."""
    t0 = time.perf_counter()
    paths = bench_images(o.images, o.seed)
    home, random_weights = prepare_weights(o.model, o.torch_home)
    os.environ["TORCH_HOME"] = str(home)
    ctx = worker_context()
    try:
        before = _bound(ctx, o, len(paths))
        runs = [_sweep_run(o, combo, paths, home) for combo in combinations(grid)]
        after = _bound(ctx, o, len(paths))
    finally:
        ctx.close()
    bound = max(*before.values(), *after.values())
    for run in runs:
        run["e2e_over_model_bound"] = run["e2e_img_s"] / bound
    return {
        "options": options_record(o),
        "machine": machine_facts(),
        "random_weights": random_weights,
        "grid": grid,
        "model_bound_layouts_runs": [before, after],
        "model_bound_img_s": bound,
        "runs": runs,
        "benchmark_seconds": time.perf_counter() - t0,
    }


def render_sweep(result: dict, console: Console | None = None) -> None:
    console = console or Console(width=max(160, Console().width))
    keys = list(result["grid"])
    table = Table(
        *keys,
        "e2e img/s",
        "e2e / bound",
        "read+decode s",
        "forward s",
        "wait s",
        "write s",
        "between chunks s",
        "forward s / wall",
        "peak RSS MiB",
        "CPU stolen",
    )
    for run in result["runs"]:
        s = run["split"]
        table.add_row(
            *(str(run["settings"][k]) for k in keys),
            f"{run['e2e_img_s']:.1f}",
            f"{run['e2e_over_model_bound']:.2f}",
            f"{s['read_decode_s']:.3f}",
            f"{s['forward_s']:.3f}",
            f"{s['forward_wait_s']:.3f}",
            f"{s['write_s']:.3f}",
            f"{s['overhead_between_chunks_s']:.3f}",
            f"{s['forward_busy_share']:.2f}",
            f"{run['worker_rss_peak_mib']:.0f}",
            f"{run['cpu_during_e2e']['steal']:.0%}",
        )
    console.print(
        f"model bound {result['model_bound_img_s']:.1f} img/s (best layout, before/after: "
        f"{result['model_bound_layouts_runs']})"
    )
    console.print(table)

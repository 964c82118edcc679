"""Command-line entry of the benchmark: parse options, run, print the table, write JSON."""

import argparse
import logging
from pathlib import Path

from bench.run import BenchOptions, run_benchmark, write_json
from imagebatch.core.options import PRECISIONS


def parser() -> argparse.ArgumentParser:
    d = BenchOptions()
    p = argparse.ArgumentParser(
        prog="imagebatch bench",
        description=(
            "Throughput of the service vs a seed loop, an offline DataLoader script and the model-only "
            "bound, on generated photos (cached in the temp dir). The e2e part needs PostgreSQL and Redis."
        ),
    )
    p.add_argument("--model", default=d.model, choices=("resnet18", "resnet50"))
    p.add_argument("--precision", default=d.precision, choices=PRECISIONS)
    p.add_argument(
        "--offline-precision",
        default=None,
        choices=[p for p in PRECISIONS if p != "int8"],
        help=(
            "the offline script's precision (default: the service's; when the service runs int8, "
            "bf16 where the CPU has it natively, else fp32)"
        ),
    )
    p.add_argument("--mix", default=d.mix, choices=("bench", "photos"), help="bench: generated photos; photos: real")
    p.add_argument("--images", type=int, default=d.images, help="generated images (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="service chunk size = batch size")
    p.add_argument("--workers", type=int, default=d.workers, help="worker processes")
    p.add_argument("--concurrency", type=int, default=d.concurrency, help="chunks in flight per worker")
    p.add_argument(
        "--forward-slots",
        type=int,
        default=d.forward_slots,
        help="forwards at once per worker (0 = automatic: one per chunk in flight on a CPU)",
    )
    p.add_argument("--decode", default=d.decode, choices=("fast", "exact"))
    p.add_argument("--loader-workers", type=int, default=d.loader_workers, help="offline script's DataLoader workers")
    p.add_argument("--seed-images", type=int, default=d.seed_images, help="images timed in the seed loop")
    p.add_argument("--e2e-images", type=int, default=None, help="images in the timed job (repeats the set)")
    p.add_argument("--torch-threads", type=int, default=d.torch_threads, help="0 = torch default")
    p.add_argument("--decode-threads", type=int, default=d.decode_threads, help="0 = one per core")
    p.add_argument("--embedding-dtype", default=d.embedding_dtype, choices=("float32", "float16"))
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--torch-home", type=Path, default=None, help="where the weights are (else random weights)")
    p.add_argument("--admin-pg-url", default=d.admin_pg_url, help="libpq URL used to create the scratch database")
    p.add_argument("--database", default=d.database, help="scratch database, dropped afterwards")
    p.add_argument("--redis-url", default=d.redis_url, help="a Redis db the benchmark may flush")
    p.add_argument("--skip-e2e", action="store_true")
    p.add_argument("--skip-submission", action="store_true")
    p.add_argument(
        "--sweep",
        nargs="+",
        metavar="KEY=V1,V2",
        default=None,
        help="instead of the full benchmark, run the service e2e once per combination of these "
        "settings (batch_size, concurrency, forward_slots, torch_threads, decode_threads, "
        "workers, decode) against one model bound",
    )
    p.add_argument("--json", type=Path, default=None, help="write every figure to this JSON file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = vars(parser().parse_args(argv))
    json_path, sweep = args.pop("json"), args.pop("sweep")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if sweep:
        from bench.sweep import parse_grid, render_sweep, run_sweep

        try:
            grid = parse_grid(sweep)
        except ValueError as exc:
            parser().error(str(exc))
        result = run_sweep(BenchOptions(**args), grid)
        render_sweep(result)
    else:
        from bench.report import render

        result = run_benchmark(BenchOptions(**args))
        render(result)
    if json_path:
        write_json(result, json_path)
    return 0

"""In-process baselines: seed loop, DataLoader script, model-only bound, decode-only, precision/decode fidelity."""

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from imagebatch.worker.context import WorkerContext
from imagebatch.worker.devices import Precision
from imagebatch.worker.gpu import plan_for
from imagebatch.worker.inference import Forward, entropy
from imagebatch.worker.models import LoadedModel
from imagebatch.worker.preprocess import DecodedImage

logger = logging.getLogger(__name__)


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("nan")


def seed_loop(model: LoadedModel, paths: Sequence[Path]) -> float:
    """Images/s of the single-image dashboard way: open, transform, forward one at a time in fp32."""
    net = model.net.to(memory_format=torch.contiguous_format)
    try:
        t0 = time.perf_counter()
        for path in paths:
            with Image.open(path) as im:
                x = model.transform(im.convert("RGB")).unsqueeze(0)
            with torch.no_grad():
                logits, _ = net(x)
                torch.softmax(logits, dim=-1).topk(5)
        return _rate(len(paths), time.perf_counter() - t0)
    finally:
        model.net.to(memory_format=torch.channels_last)


class _Files(Dataset):
    def __init__(self, paths: Sequence[Path], transform) -> None:
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.paths[i]) as im:
            return self.transform(im.convert("RGB"))


def offline_script(
    model: LoadedModel, paths: Sequence[Path], precision: Precision, batch_size: int, workers: int
) -> float:
    """Images/s of a careful hand-written script: DataLoader decode workers, batched channels_last
    forward (BatchNorm folded, as the service runs it) at `precision` (autocast: fp32, bf16, fp16),
    top-5 + entropy + embedding kept in memory."""
    loader = DataLoader(
        _Files(paths, model.transform),
        batch_size=batch_size,
        num_workers=workers,
        persistent_workers=False,
        prefetch_factor=2 if workers else None,
    )
    kept: list[tuple[torch.Tensor, ...]] = []
    t0 = time.perf_counter()
    for batch in loader:
        with torch.inference_mode(), precision.autocast():
            logits, embedding = model.inference_net(batch.to(memory_format=torch.channels_last))
        probs = torch.softmax(logits.float(), dim=-1)
        kept.append((*probs.topk(5), entropy(probs), embedding.float()))
    seconds = time.perf_counter() - t0
    assert sum(len(k[0]) for k in kept) == len(paths)
    return _rate(len(paths), seconds)


def model_bound(
    model: LoadedModel,
    precision: Precision,
    batch_size: int,
    batches: int,
    streams: int = 1,
    make_net: Callable[[int], Forward] | None = None,
) -> float:
    """Images/s of forward passes alone on ready tensors: this machine's limit for the model.

    streams > 1 runs that many forwards at once from as many threads, each on cores / streams
    torch threads: the worker's layout with several forward slots. `make_net(streams)` (called once those
    threads are set: the int8 runtimes read them when built) gives the forward; else the model's own.
    """
    x = torch.randn(batch_size, 3, 224, 224).to(model.device, memory_format=torch.channels_last)
    per_stream = max(1, batches // streams)
    threads_before = torch.get_num_threads()

    def run(n: int) -> None:
        with torch.inference_mode(), precision.autocast():
            for _ in range(n):
                net(x)

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // streams))
    try:
        net = make_net(streams) if make_net else model.inference_net
        run(2)  # warm-up: oneDNN picks and caches its kernels
        workers = [threading.Thread(target=run, args=(per_stream,)) for _ in range(streams)]
        t0 = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if model.device.startswith("cuda"):
            torch.cuda.synchronize()
        return _rate(batch_size * per_stream * streams, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads_before)


def decode_only(ctx: WorkerContext, model: LoadedModel, paths: Sequence[Path], fast: bool) -> float:
    """Images/s of read + decode + preprocess (+ thumbnail) on one thread (the service's reader, per core)."""
    decode = ctx.decoder(model, "fast" if fast else "exact")  # the worker's own, thumbnails included
    t0 = time.perf_counter()
    for path in paths:
        outcome = ctx.reader.read_image(f"file:{path}", decode)
        assert isinstance(outcome, DecodedImage), outcome
    return _rate(len(paths), time.perf_counter() - t0)


def decode_beside_forward(
    ctx: WorkerContext,
    model: LoadedModel,
    paths: Sequence[Path],
    precision: Precision,
    batch_size: int,
    make_net: Callable[[int], Forward] | None = None,
    min_forwards: int = 3,
    max_seconds: float = 600.0,
) -> dict[str, float]:
    """Decode on one thread while forwards run on another (one torch thread each): the two rates when both
    cores are busy, as in the service, against decode_only and the model bound measured each alone.

    The decode thread goes through `paths` at least once and then round again until at least
    `min_forwards` forwards have ended inside its window, however slow a forward is next to a
    decode (TimeoutError after `max_seconds`). The decode rate is over that window; the forward
    rate is taken between the first and the last forward ending inside it (whole forwards only).
    Their loaded ceiling, `cores / (1/decode + 1/forward)` per image, is what any pipeline could
    reach here while the two stages share the machine.
    """
    if min_forwards < 2:
        raise ValueError("a forward rate needs at least two forwards ending in the window")
    decode = ctx.decoder(model, "fast")
    x = torch.randn(batch_size, 3, 224, 224).to(memory_format=torch.channels_last)
    stop = threading.Event()
    ended: list[float] = []  # perf_counter() at the end of each forward
    failed: list[BaseException] = []

    def run_forwards() -> None:
        try:
            with torch.inference_mode(), precision.autocast():
                while not stop.is_set():
                    net(x)
                    ended.append(time.perf_counter())
        except BaseException as exc:  # handed to the decode thread, which would otherwise wait for ever
            failed.append(exc)

    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)
    runner = threading.Thread(target=run_forwards, daemon=True)  # a stuck forward must not hold the process
    try:
        net = make_net(1) if make_net else model.inference_net  # built on one thread (the int8 runtimes read it)
        with torch.inference_mode(), precision.autocast():
            net(x)  # warm-up
        runner.start()
        t0, decoded = time.perf_counter(), 0
        while decoded < len(paths) or sum(t > t0 for t in ended) < min_forwards:
            if failed:
                raise RuntimeError("the forward thread failed") from failed[0]
            if time.perf_counter() - t0 > max_seconds:
                raise TimeoutError(f"{len(ended)} forward(s) ended in {max_seconds:.0f}s of decoding; is one stuck?")
            outcome = ctx.reader.read_image(f"file:{paths[decoded % len(paths)]}", decode)
            assert isinstance(outcome, DecodedImage), outcome
            decoded += 1
        t1 = time.perf_counter()
    finally:
        stop.set()
        if runner.is_alive():
            runner.join(timeout=max_seconds)
        torch.set_num_threads(threads_before)
    inside = [t for t in ended if t0 < t <= t1]
    decode_rate = _rate(decoded, t1 - t0)
    forward_rate = _rate((len(inside) - 1) * batch_size, inside[-1] - inside[0])
    cores = os.cpu_count() or 1
    return {
        "decode_img_s": decode_rate,
        "forward_img_s": forward_rate,
        "ceiling_img_s": cores / (1 / decode_rate + 1 / forward_rate),
        "decoded": decoded,
        "forwards": len(inside),
    }


def _probabilities(
    model: LoadedModel, tensors: list[torch.Tensor], precision: Precision, batch: int, net: Forward | None = None
) -> torch.Tensor:
    """Softmax of `net` (default: the model's eager fp32 module, the reference) batch by batch."""
    out = []
    for i in range(0, len(tensors), batch):
        x = torch.stack(tensors[i : i + batch]).to(memory_format=torch.channels_last)
        with torch.inference_mode(), precision.autocast():
            logits, _ = (net or model.net)(x)
        out.append(torch.softmax(logits.float(), dim=-1))
    return torch.cat(out)


def agreement(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """Top-1 agreement and max |Δp| between two probability matrices of the same images."""
    return {
        "top1_agreement": float((a.argmax(-1) == b.argmax(-1)).float().mean()) if len(a) else float("nan"),
        "max_abs_dp": float((a - b).abs().max()) if len(a) else float("nan"),
        "images": len(a),
    }


def fidelity(
    ctx: WorkerContext,
    model: LoadedModel,
    paths: Sequence[Path],
    precision: Precision,
    batch_size: int,
    int8: Forward | None = None,
) -> dict[str, dict[str, float]]:
    """Each reduced precision (int8 when given) and the folded fp32 forward vs fp32, and fast decode
    (reduced decode, region resize) vs exact on the images it changes.

    bf16 and fp16 are both measured whatever the service resolved to: on a CPU without native
    support they run emulated (slowly), with the same rounding, so the agreement still holds.
    """
    reference = plan_for("cpu").decoder(model.transform, fast=False)  # weights.transforms(), bit for bit
    service_fast = ctx.plan.decoder(model.transform, fast=True)  # as the worker runs it
    exact = [ctx.reader.read_image(f"file:{p}", reference) for p in paths]
    fast = [ctx.reader.read_image(f"file:{p}", service_fast) for p in paths]
    fp32 = Precision("fp32", "fp32", precision.device_type)
    exact_t = [d.tensor for d in exact]
    reference = _probabilities(model, exact_t, fp32, batch_size)
    result = {}
    for reduced in ("bf16", "fp16"):
        candidate = Precision(reduced, reduced, precision.device_type)
        result[f"{reduced}_vs_fp32"] = agreement(_probabilities(model, exact_t, candidate, batch_size), reference)
    result["folded_fp32_vs_fp32"] = agreement(
        _probabilities(model, exact_t, fp32, batch_size, model.inference_net), reference
    )
    if int8 is not None:
        result["int8_vs_fp32"] = agreement(_probabilities(model, exact_t, fp32, batch_size, int8), reference)
    changed = [i for i, (e, f) in enumerate(zip(exact, fast, strict=True)) if not torch.equal(e.tensor, f.tensor)]
    drafted = _probabilities(model, [fast[i].tensor for i in changed], fp32, batch_size) if changed else reference[:0]
    result["fast_decode_vs_exact"] = agreement(drafted, reference[changed])
    return result

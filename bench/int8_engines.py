"""int8 engines vs fp32/bf16 (with and without folded BatchNorm): speed interleaved in one run, agreement, costs.

Run from the checkout: `python -m bench.int8_engines --model resnet18 --threads 2`. Every candidate
is built first; then the timed forwards go round-robin (A, B, C, A, B, C, ...) so that load from
other processes hits all candidates alike; the table reports medians and ratios to fp32.
"""

import argparse
import json
import logging
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from bench import int8_fx  # noqa: F401  (registers the "fx" engine for comparison)
from bench.images import bench_images
from bench.run import prepare_weights
from imagebatch.worker.fold import fold_batchnorm
from imagebatch.worker.modeltools.calibration import calibration_set
from imagebatch.worker.modeltools.int8 import engine_class, quantize_model
from imagebatch.worker.modeltools.int8_engine import Int8Unsupported, Outputs
from imagebatch.worker.samples import write_sample_photos

logger = logging.getLogger(__name__)

FLOAT = ("fp32", "bf16", "fold-fp32", "fold-bf16")
INT8 = ("openvino", "onnxruntime", "pt2e", "fx")
BENCH_ONLY = ("pt2e-compile",)  # PT2E run through torch.compile (static shapes) instead of AOTInductor


@dataclass
class Candidate:
    name: str
    call: Callable[[torch.Tensor], Outputs] = field(repr=False)
    prepare_s: float = 0.0  # quantize (or fold) time
    load_s: float = math.nan  # load of the saved artefact, as a worker's warm start
    artefact_mb: float = math.nan
    first_call_s: float = math.nan  # includes any compilation done on first use
    times: list[float] = field(default_factory=list)
    agreement: dict = field(default_factory=dict)


def _eager(net: torch.nn.Module, bf16: bool) -> Callable[[torch.Tensor], Outputs]:
    def call(x: torch.Tensor) -> Outputs:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits, embedding = net(x)
        return logits.float(), embedding.float()

    return call


def _pt2e_compile(net: torch.nn.Module, batches: list[torch.Tensor]) -> Callable[[torch.Tensor], Outputs]:
    import torch._inductor.config as inductor_config

    from imagebatch.worker.modeltools.int8_pt2e import pt2e_program

    inductor_config.freezing = True
    compiled = torch.compile(pt2e_program(net, batches).module(), dynamic=False)

    def call(x: torch.Tensor) -> Outputs:
        with torch.inference_mode():
            return compiled(x.contiguous())

    return call


def _int8(engine: str, net: torch.nn.Module, batches: list[torch.Tensor]) -> Candidate:
    t0 = time.perf_counter()
    model = quantize_model(net, batches, engine)
    prepare = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp))
        size = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 2**20
        t0 = time.perf_counter()
        loaded = engine_class(engine).load(Path(tmp))  # the benchmark runs what a worker would load
        load = time.perf_counter() - t0
    return Candidate(engine, loaded, prepare_s=prepare, load_s=load, artefact_mb=size)


def build(name: str, net: torch.nn.Module, batches: list[torch.Tensor]) -> Candidate:
    logger.info("preparing %s", name)
    if name in INT8:
        return _int8(name, net, batches)
    t0 = time.perf_counter()
    if name == "pt2e-compile":
        call = _pt2e_compile(net, batches)
    else:
        model = fold_batchnorm(net) if name.startswith("fold-") else net
        call = _eager(model, bf16=name.endswith("bf16"))
    return Candidate(name, call, prepare_s=time.perf_counter() - t0)


def agreement(reference: Outputs, outputs: Outputs) -> dict:
    """Top-1 agreement, max |Δp| of the softmax, and the worst embedding cosine, against fp32."""
    (ref_logits, ref_emb), (logits, emb) = reference, outputs
    probs, ref_probs = logits.float().softmax(-1), ref_logits.float().softmax(-1)
    return {
        "top1_agreement": float((probs.argmax(-1) == ref_probs.argmax(-1)).float().mean()),
        "max_abs_dp": float((probs - ref_probs).abs().max()),
        "min_embedding_cosine": float(torch.nn.functional.cosine_similarity(emb.float(), ref_emb.float()).min()),
    }


def measure(candidates: list[Candidate], eval_batches: list[torch.Tensor], rounds: int) -> None:
    """Agreement on every evaluation batch, then `rounds` interleaved timed forwards of one batch."""
    reference = [candidates[0].call(b) for b in eval_batches]  # candidates[0] is fp32
    for c in candidates:
        t0 = time.perf_counter()
        outputs = [c.call(b) for b in eval_batches]
        c.first_call_s = time.perf_counter() - t0
        joined = (torch.cat([o[0] for o in outputs]), torch.cat([o[1] for o in outputs]))
        c.agreement = agreement((torch.cat([r[0] for r in reference]), torch.cat([r[1] for r in reference])), joined)
        c.call(eval_batches[0])  # one more warm-up
    batch = eval_batches[0]
    for r in range(rounds):
        for c in candidates:
            t0 = time.perf_counter()
            c.call(batch)
            c.times.append(time.perf_counter() - t0)
        logger.info("round %d/%d done", r + 1, rounds)


def table(candidates: list[Candidate], batch_size: int) -> str:
    base = statistics.median(candidates[0].times)
    header = (
        "| candidate | img/s (median) | × fp32 | top-1 agree | max abs dp | min emb cos | prepare s "
        "| load s | first call s | artefact MB |"
    )
    lines = [header, "|" + "---|" * 10]
    for c in candidates:
        med, a = statistics.median(c.times), c.agreement
        lines.append(
            f"| {c.name} | {batch_size / med:.0f} | {base / med:.2f} | {a['top1_agreement']:.3f} "
            f"| {a['max_abs_dp']:.4f} | {a['min_embedding_cosine']:.4f} | {c.prepare_s:.1f} | {c.load_s:.1f} "
            f"| {c.first_call_s:.1f} | {c.artefact_mb:.1f} |"
        )
    return "\n".join(lines)


def images(model: str, calibration: int, evaluation: int, batch_size: int) -> tuple[list, list, str]:
    """(calibration batches, evaluation batches, calibration sha256) for `model`'s transforms."""
    from imagebatch.worker.models import get_spec, weights_enum

    transform = weights_enum(get_spec(model)).transforms()
    with tempfile.TemporaryDirectory() as tmp:
        cal = calibration_set(write_sample_photos(Path(tmp), calibration), transform, batch_size)
    # Held out: crops of the same scenes at other framings, with noise, never seen by the observers.
    held_out = calibration_set(bench_images(evaluation, seed=1), transform, batch_size)
    return list(cal.batches), list(held_out.batches), cal.sha256


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.int8_engines", description=__doc__)
    p.add_argument("--model", default="resnet18", choices=("resnet18", "resnet50"))
    p.add_argument("--threads", type=int, default=2, help="torch/ONNX Runtime/OpenVINO threads")
    p.add_argument("--rounds", type=int, default=15, help="interleaved timed forwards per candidate")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--calibration", type=int, default=64, help="sample photos for calibration")
    p.add_argument("--evaluation", type=int, default=64, help="held-out benchmark photos for agreement")
    p.add_argument("--candidates", nargs="+", default=[*FLOAT, *INT8], choices=[*FLOAT, *INT8, *BENCH_ONLY])
    p.add_argument("--torch-home", type=Path, default=None, help="where the weights are (else random weights)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    return p


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    o = parser().parse_args()
    torch.set_num_threads(o.threads)
    home, random_weights = prepare_weights(o.model, o.torch_home)
    os.environ["TORCH_HOME"] = str(home)
    from imagebatch.worker.models import load_model

    net = load_model(o.model, device="cpu").net
    cal, held_out, cal_sha = images(o.model, o.calibration, o.evaluation, o.batch_size)
    names = ["fp32", *(n for n in o.candidates if n != "fp32")]
    candidates = []
    for name in names:
        try:
            candidates.append(build(name, net, cal))
        except Int8Unsupported as exc:  # pt2e on a CPU without VNNI
            logger.warning("%s left out: %s", name, exc)
    measure(candidates, held_out, o.rounds)
    facts = {
        "model": o.model,
        "threads": o.threads,
        "batch": o.batch_size,
        "random_weights": random_weights,
        "cpu": cpu_model(),
        "load_average": os.getloadavg(),
        "calibration_sha256": cal_sha,
        "torch": torch.__version__,
    }
    print(json.dumps(facts))
    print(table(candidates, o.batch_size))
    if o.json:
        rows = [{k: v for k, v in asdict(c).items() if k != "call"} for c in candidates]
        o.json.write_text(json.dumps({"facts": facts, "candidates": rows}, indent=1))


if __name__ == "__main__":
    main()

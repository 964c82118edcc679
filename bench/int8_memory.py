"""Peak memory of a worker-like process serving each int8 engine, against the fp32 torch model.

Run from the checkout: `python -m bench.int8_memory --model resnet18`. The parent quantizes each
engine once into a scratch cache; then one fresh process per candidate imports torch (as the worker
does), loads the model (fp32 from its weights, int8 from the cache), runs one batch of 32 and
reports its peak RSS.
"""

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.int8_engines import images
from bench.run import prepare_weights

logger = logging.getLogger(__name__)

ENGINES = ("openvino", "onnxruntime", "pt2e")


def peak_rss_mb() -> int:
    """VmHWM: this process image's peak RSS (ru_maxrss would carry the parent's peak across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(model: str, engine: str, entry: str, threads: int) -> dict:
    """Load one candidate, run a batch, report (this process's) peak RSS."""
    torch.set_num_threads(threads)
    started = time.perf_counter()
    if engine == "fp32":
        from imagebatch.worker.models import load_model

        net = load_model(model, device="cpu").net

        def call(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return net(x.contiguous(memory_format=torch.channels_last))
    else:
        from imagebatch.worker.modeltools.int8 import engine_class

        call = engine_class(engine).load(Path(entry))
    loaded = time.perf_counter() - started
    with torch.inference_mode():
        call(torch.randn(32, 3, 224, 224))
    return {"candidate": engine, "load_s": round(loaded, 2), "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    p = argparse.ArgumentParser(prog="python -m bench.int8_memory", description=__doc__)
    p.add_argument("--model", default="resnet18", choices=("resnet18", "resnet50"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", nargs=2, metavar=("ENGINE", "ENTRY"), help=argparse.SUPPRESS)
    o = p.parse_args()
    home, _ = prepare_weights(o.model, None)
    os.environ["TORCH_HOME"] = str(home)
    if o.child:
        print(json.dumps(child(o.model, *o.child, o.threads)))
        return
    from imagebatch.worker.models import load_model
    from imagebatch.worker.modeltools.calibration import CalibrationSet
    from imagebatch.worker.modeltools.int8_cache import cached_quantize

    loaded = load_model(o.model, device="cpu")
    cal, _, sha = images(o.model, 64, 32, 32)
    with tempfile.TemporaryDirectory() as root:
        entries = {"fp32": ""}
        for engine in ENGINES:
            entries[engine] = str(
                cached_quantize(
                    loaded.net,
                    CalibrationSet(tuple(cal), sha, ()),
                    model_name=o.model,
                    weights_sha256=loaded.weights_sha256,
                    engine=engine,
                    root=Path(root),
                ).path
            )
        for engine, entry in entries.items():
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.int8_memory",
                    "--model",
                    o.model,
                    "--threads",
                    str(o.threads),
                    "--child",
                    engine,
                    entry,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            print(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()

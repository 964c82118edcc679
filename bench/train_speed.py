"""Training images/s per image size and precision: python -m bench.train_speed --sizes 32,64,128,224."""

import argparse
import json
import os
import time

import torch

from imagebatch.worker.devices import Precision, detect_capabilities, resolve_precision
from imagebatch.worker.training import TrainingConfig
from imagebatch.worker.training.images import Preprocessing
from imagebatch.worker.training.loop import Stepper
from imagebatch.worker.training.model import build_network
from imagebatch.worker.training.trainer import training_precision


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Time training steps (forward, backward, AdamW) of a ResNet on the CPU.")
    p.add_argument("--sizes", default="32,64,128,224", help="crop sides, comma-separated")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--model", default="resnet18", choices=("resnet18", "resnet50"))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=8, help="timed steps per case, after 2 warm-up steps")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    return p


def images_per_second(model: str, size: int, precision: Precision, batch: int, steps: int) -> float:
    """Steps on random uint8 crops through the trainer's own Stepper (one-cycle AdamW, autocast)."""
    config = TrainingConfig(base_model=model, mode="scratch", epochs=1, batch_size=batch, image_size=size)
    net, _ = build_network(config, num_classes=10)
    prep = Preprocessing.for_model(model, size)
    stepper = Stepper(net, config, prep, batch * (steps + 2), "cpu", precision)
    stepper.net.train()
    x = prep.normalize(torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8))
    y = torch.randint(0, 10, (batch,))
    for _ in range(2):
        stepper._step(x, y)
    started = time.perf_counter()
    for _ in range(steps):
        stepper._step(x, y)
    return batch * steps / (time.perf_counter() - started)


def main() -> None:
    args = parser().parse_args()
    torch.set_num_threads(args.threads)
    caps = detect_capabilities()
    rows = []
    for size in map(int, args.sizes.split(",")):
        for name in args.precisions.split(","):
            precision = resolve_precision(name, "cpu", caps)
            rate = images_per_second(args.model, size, precision, args.batch_size, args.steps)
            auto = training_precision("auto", "cpu", caps, size).resolved
            rows.append({"size": size, "precision": precision.resolved, "images_per_s": round(rate, 1), "auto": auto})
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"model": args.model, "threads": args.threads, "load_avg": os.getloadavg(), "cases": rows}))


if __name__ == "__main__":
    main()

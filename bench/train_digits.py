"""Time and score training runs on the UCI digits: python -m bench.train_digits --size 32 --epochs 15."""

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import torch

from imagebatch.worker.training import TrainingConfig, prepare_dataset, train
from imagebatch.worker.training.digits import write_digits


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train a ResNet on the digits (train/ 1,437, held-out test/ 360).")
    p.add_argument("--size", type=int, default=32, help="image side written and trained at")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--mode", default="scratch", choices=("transfer", "finetune", "scratch"))
    p.add_argument("--model", default="resnet18", choices=("resnet18", "resnet50"))
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--augment", action="store_true", help="random resized crops (no flip: digits are not symmetric)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    p.add_argument("--no-cache", action="store_true", help="decode every image again each epoch")
    p.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "imagebatch-digits")
    return p


def summary(config: TrainingConfig, dataset, result, prepared: float) -> dict:
    """The run as one JSON object: accuracy and loss per epoch, throughput, times, the precision used."""
    epochs = [e["seconds"] for e in result.history]
    seen = len(dataset.train) + len(dataset.val)  # images per epoch: a training and a validation pass
    return {
        "config": config.to_dict(),
        "threads": torch.get_num_threads(),
        "load_avg": os.getloadavg(),
        "precision": result.precision.resolved,
        "precision_note": result.precision.note,
        "images_per_second": round(seen * len(epochs) / sum(epochs), 1),
        "prepare_seconds": round(prepared, 2),
        "seconds_per_epoch": round(sum(epochs) / len(epochs), 2),
        "total_seconds": round(sum(epochs) + prepared, 1),
        "val_accuracy": [round(e["val_accuracy"], 4) for e in result.history],
        "train_loss": [round(e["train_loss"], 4) for e in result.history],
        "best_epoch": result.best_epoch,
        "best_val_accuracy": result.meta["best"]["val_accuracy"],
        "macro_f1": result.meta["evaluation"]["macro_avg"]["f1"],
    }


def main() -> None:
    args = parser().parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    root = args.data / str(args.size)
    folders = write_digits(root, args.size) if not (root / "test").is_dir() else None
    train_dir, test_dir = (folders.train, folders.test) if folders else (root / "train", root / "test")
    config = TrainingConfig(
        base_model=args.model,
        mode=args.mode,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        image_size=args.size,
        augment=args.augment,
        horizontal_flip=False,
        precision=args.precision,
    )
    started = time.perf_counter()
    dataset = prepare_dataset(train_dir, config, val_source=test_dir, cache_bytes=0 if args.no_cache else 2**31)
    prepared = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as out:
        result = train(dataset, config, output_dir=Path(out))
    print(json.dumps(summary(config, dataset, result, prepared)))


if __name__ == "__main__":
    main()

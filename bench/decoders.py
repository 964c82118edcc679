"""Decode + preprocess options, interleaved in one run on four image mixes: speed, and fidelity to the exact path.

Run from the checkout: `python -m bench.decoders [--bench-images 200] [--rounds 5] [--json out.json]`.
Each option turns bytes into resnet18's float32 3x224x224 input and the channel mean/std the service
stores. Timing goes image by image, every option in turn (rotating which goes first), for `rounds`
passes over each mix, so load from other processes hits every option alike; the table gives each
option's median throughput and its median per-round ratio to the exact and to today's fast path.
Fidelity compares the first pass's outputs with the exact path's: input pixels (in levels of 255),
statistics, and the softmax of resnet18 with seeded random weights (max |dp|, max |d entropy|, top-1),
each checked against turbo.FAST_DECODE_TOLERANCE. Mixes: bench/images.py's photos, a varied mix
(bench/decoder_mixes.py: phone and small JPEGs, PNG modes, CMYK/progressive/rotated/grey JPEGs),
scikit-image's real photos, and a stress test of native-resolution textures tiled to 640-3024 px.
"""

import argparse
import json
import logging
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from bench.decoder_mixes import Sample, bench_mix, photo_mix, texture_mix, varied_mix
from bench.decoder_options import Option, Output, build_options
from bench.int8_engines import cpu_model
from bench.run import prepare_weights
from imagebatch.worker.preprocess.turbo import FAST_DECODE_TOLERANCE

logger = logging.getLogger(__name__)

REFERENCE, TODAY_FAST = "pillow-exact", "pillow-draft"


def timed_rounds(options: list[Option], samples: list[Sample], rounds: int) -> dict[str, list[list[float]]]:
    """Seconds per image, per option and round: every option on an image before the next image."""
    times: dict[str, list[list[float]]] = {o.name: [[] for _ in range(rounds)] for o in options}
    for r in range(rounds):
        for i, sample in enumerate(samples):
            shift = (r * len(samples) + i) % len(options)
            for option in options[shift:] + options[:shift]:
                t0 = time.perf_counter()
                option.call(sample.data)
                times[option.name][r].append(time.perf_counter() - t0)
        logger.info("round %d/%d done, load average %s", r + 1, rounds, os.getloadavg())
    return times


def speed(times: dict[str, list[list[float]]], samples: list[Sample]) -> dict[str, dict]:
    """Median images/s, median per-round ratios to the reference and today's fast path, ms per image by kind."""
    rate = {name: [len(samples) / sum(r) for r in rounds] for name, rounds in times.items()}
    out = {}
    for name, rounds in times.items():
        kinds: dict[str, list[float]] = defaultdict(list)
        for sample, *per_round in zip(samples, *rounds, strict=True):
            kinds[sample.kind].append(statistics.median(per_round) * 1e3)
        out[name] = {
            "images_per_s": statistics.median(rate[name]),
            "x_exact": statistics.median(a / b for a, b in zip(rate[name], rate[REFERENCE], strict=True)),
            "x_fast": statistics.median(a / b for a, b in zip(rate[name], rate[TODAY_FAST], strict=True)),
            "ms_by_kind": {k: statistics.mean(v) for k, v in kinds.items()},
        }
    return out


def probabilities(net: torch.nn.Module, outputs: list[Output]) -> np.ndarray:
    batch = torch.from_numpy(np.stack([o.tensor for o in outputs]))
    with torch.inference_mode():
        logits = torch.cat([net(chunk)[0] for chunk in batch.split(32)])
    return torch.softmax(logits.float(), dim=1).numpy()


def _entropy(p: np.ndarray) -> np.ndarray:
    return -(p * np.log(np.clip(p, 1e-30, None))).sum(1)


def _by_kind(kinds: list[str], values: list[float]) -> dict[str, float]:
    worst: dict[str, float] = defaultdict(float)
    for kind, value in zip(kinds, values, strict=True):
        worst[kind] = max(worst[kind], float(value))
    return dict(sorted(worst.items()))


def fidelity(ref: list[Output], got: list[Output], p_ref: np.ndarray, p: np.ndarray, std: np.ndarray) -> dict:
    """Differences from the exact path: input pixels in levels of 255, statistics, softmax."""
    levels = [np.abs(g.tensor - r.tensor) * std * 255 for r, g in zip(ref, got, strict=True)]
    d_mean = [np.abs(np.subtract(g.mean, r.mean)).max() for r, g in zip(ref, got, strict=True)]
    d_std = [np.abs(np.subtract(g.std, r.std)).max() for r, g in zip(ref, got, strict=True)]
    d_p = np.abs(p - p_ref).max(1)
    per_image = {
        "max_levels": [lv.max() for lv in levels],
        "mean_levels": [lv.mean() for lv in levels],
        "p99_levels": [np.percentile(lv, 99) for lv in levels],
        "d_mean": d_mean,
        "d_std": d_std,
        "dp": d_p,
    }
    return {
        "per_image": {k: [float(v) for v in values] for k, values in per_image.items()},
        "changed_images": int(sum(bool(lv.max() > 1e-3) for lv in levels)),
        "max_levels": float(max(lv.max() for lv in levels)),
        "mean_levels": float(np.mean([lv.mean() for lv in levels])),
        "worst_image_mean_levels": float(max(lv.mean() for lv in levels)),
        "worst_image_p99_levels": float(max(per_image["p99_levels"])),
        "max_d_mean": float(max(d_mean)),
        "max_d_std": float(max(d_std)),
        "max_dp": float(d_p.max()),
        "max_d_entropy": float(np.abs(_entropy(p) - _entropy(p_ref)).max()),
        "top1_agreement": float((p.argmax(1) == p_ref.argmax(1)).mean()),
        "worst_dp_image": int(d_p.argmax()),
    }


def within_tolerance(f: dict) -> bool:
    """Every image within FAST_DECODE_TOLERANCE of the exact path."""
    tol = FAST_DECODE_TOLERANCE
    return (
        f["worst_image_mean_levels"] <= tol.mean_levels
        and f["max_dp"] <= tol.probability
        and f["max_d_entropy"] <= tol.entropy
        and f["max_d_mean"] <= tol.channel_mean
        and f["max_d_std"] <= tol.channel_std
    )


def run_mix(options: list[Option], samples: list[Sample], rounds: int, net: torch.nn.Module, std: np.ndarray) -> dict:
    outputs = {o.name: [o.call(s.data) for s in samples] for o in options}  # also the warm-up
    p_ref = probabilities(net, outputs[REFERENCE])
    result = {"images": len(samples), "kinds": dict(sorted(_count(samples).items())), "options": {}}
    times = timed_rounds(options, samples, rounds)
    for name, figures in speed(times, samples).items():
        fid = fidelity(outputs[REFERENCE], outputs[name], p_ref, probabilities(net, outputs[name]), std)
        fid["worst_dp_image"] = samples[fid["worst_dp_image"]].name
        kinds = [s.kind for s in samples]
        fid["by_kind"] = {k: _by_kind(kinds, v) for k, v in fid.pop("per_image").items()}
        fid["within_tolerance"] = within_tolerance(fid)
        result["options"][name] = {**figures, "fidelity": fid}
    return result


def _count(samples: list[Sample]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for s in samples:
        counts[s.kind] += 1
    return counts


def table(mix: str, result: dict, descriptions: dict[str, str]) -> str:
    kinds = list(result["kinds"])
    head = ["option", "img/s", "× exact", "× fast", *(f"ms {k}" for k in kinds)]
    head += [
        "max Δ lv",
        "worst mean Δ lv",
        "worst p99 Δ lv",
        "max Δmean",
        "max Δstd",
        "max |Δp|",
        "max |ΔH|",
        "top-1",
        "in tolerance",
    ]
    lines = [f"{mix}: {result['images']} images {result['kinds']}", "| " + " | ".join(head) + " |"]
    lines.append("|" + "---|" * len(head))
    for name, r in result["options"].items():
        f = r["fidelity"]
        cells = [f"{name} ({descriptions[name]})", f"{r['images_per_s']:.0f}", f"{r['x_exact']:.2f}"]
        cells += [f"{r['x_fast']:.2f}", *(f"{r['ms_by_kind'][k]:.2f}" for k in kinds)]
        cells += [f"{f['max_levels']:.0f}", f"{f['worst_image_mean_levels']:.2f}", f"{f['worst_image_p99_levels']:.0f}"]
        cells += [f"{f['max_d_mean']:.2f}", f"{f['max_d_std']:.2f}"]
        cells += [
            f"{f['max_dp']:.4f}",
            f"{f['max_d_entropy']:.4f}",
            f"{f['top1_agreement']:.1%}",
            "✔" if f["within_tolerance"] else "✘",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bench-images", type=int, default=200, help="images from bench/images.py (1 in 20 phone-sized)")
    p.add_argument("--photos", type=int, default=60, help="scikit-image photos and their variants")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timed passes over each mix")
    p.add_argument(
        "--options", nargs="+", default=None, help="option names (default: all; the two Pillow paths always)"
    )
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    return p


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    o = parser().parse_args()
    torch.set_num_threads(1)  # decode runs on one core per decode thread
    home, random_weights = prepare_weights("resnet18", None)
    os.environ["TORCH_HOME"] = str(home)
    from imagebatch.worker.models import load_model

    model = load_model("resnet18", device="cpu")
    options = build_options(model.transform)
    if o.options:
        options = [opt for opt in options if opt.name in {REFERENCE, TODAY_FAST, *o.options}]
    std = np.asarray(model.transform.std, dtype=np.float32).reshape(3, 1, 1)
    load_start = os.getloadavg()
    mixes = {
        "bench": bench_mix(o.bench_images),
        "varied": varied_mix(),
        "photos": photo_mix(o.photos),
        "textures": texture_mix(),
    }
    results = {name: run_mix(options, samples, o.rounds, model.net, std) for name, samples in mixes.items()}
    facts = {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "rounds": o.rounds,
        "random_weights": random_weights,
        "torch": torch.__version__,
    }
    print(json.dumps(facts))
    descriptions = {opt.name: opt.description for opt in options}
    for name, result in results.items():
        print(table(name, result, descriptions) + "\n")
    if o.json:
        o.json.write_text(json.dumps({"facts": facts, "mixes": results}, indent=1))


if __name__ == "__main__":
    main()

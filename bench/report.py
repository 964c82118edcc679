"""The benchmark's table: throughput per pipeline, ratios against the targets, time split, memory."""

from rich.console import Console
from rich.table import Table

PIPELINES = (
    ("seed_loop_img_s", "seed loop (1 image at a time, fp32)"),
    ("offline_script_img_s", "offline script (DataLoader, batched)"),
    ("model_bound_img_s", "model-only bound (ready tensors)"),
    ("decode_img_s", "decode-only, one thread"),
    ("decode_exact_img_s", "decode-only, one thread, exact"),
    ("e2e_img_s", "service end to end"),
)
PIPELINES += (("decode_forward_ceiling_img_s", "decode + forward ceiling (cores shared)"),)
TARGETS = (
    ("e2e_over_offline_script", "e2e / offline script", 1.2),
    # Issue 12 replaced the bound target (0.8) by the ceiling: an int8 forward leaves decoding most of the work.
    ("e2e_over_model_bound", "e2e / model bound", None),
    ("e2e_over_decode_forward_ceiling", "e2e / decode+forward ceiling", 0.85),
    ("e2e_over_seed_loop", "e2e / seed loop", 5.0),
)
# An int8 service is held to 2x the offline script at bf16 (issue 12; fp32 on a CPU without native bf16, where
# bf16 is emulated and no baseline), a float one to 1.2x at its own precision.
INT8_OFFLINE_TARGET = 2.0


def _fmt(value: object, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "-"


def render(result: dict, console: Console | None = None) -> None:
    console = console or Console()
    o = result["options"]
    console.print(
        f"[bold]{o['model']}[/] precision {o['precision']} -> {result.get('precision_resolved')} "
        f"(offline script {result.get('offline_precision')}) "
        f"on {result.get('device')}, batch {o['batch_size']}, {result['machine']['cpus']} CPUs, "
        f"{'RANDOM' if result.get('random_weights') else 'given'} weights, images {result['image_mix']}"
    )
    table = Table("pipeline", "img/s")
    for key, label in PIPELINES:
        table.add_row(label, _fmt(result.get(key)))
    console.print(table)
    layouts = result.get("model_bound_layouts")
    if layouts:
        console.print(
            "model bound by layout (forwards at once x torch threads each): "
            + ", ".join(f"{k} {_fmt(v)}" for k, v in layouts.items())
        )
    targets = Table("ratio", "measured", "target", "met", "ceiling here")
    for key, label, goal in TARGETS:
        if key == "e2e_over_offline_script" and result.get("precision_resolved") == "int8":
            goal = INT8_OFFLINE_TARGET
        value, ceiling = result.get(key), result.get(f"ceiling_{key}")
        if goal is None:
            targets.add_row(label, _fmt(value, 2), "-", "-", _fmt(ceiling, 2))
            continue
        met = "-" if value is None else ("yes" if value >= goal else "NO")
        if ceiling is not None and ceiling < goal:
            met += " (out of reach here)"
        targets.add_row(label, _fmt(value, 2), f">= {goal}", met, _fmt(ceiling, 2))
    console.print(targets)
    split = result.get("split") or {}
    if split:
        rows = Table("per chunk (mean)", "seconds")
        for key in (
            "read_decode_s",
            "forward_s",
            "write_s",
            "forward_wait_s",
            "overhead_between_chunks_s",
            "queue_wait_first_chunk_s",
        ):
            rows.add_row(key, _fmt(split.get(key), 3))
        rows.add_row("model busy share of e2e wall", _fmt(split.get("forward_busy_share"), 2))
        console.print(rows)
    busy = result.get("both_busy")
    if busy:
        ceiling, e2e = busy["ceiling_img_s"], result.get("e2e_img_s")
        console.print(
            f"both cores busy (decode on one thread beside 1-thread forwards): decode {_fmt(busy['decode_img_s'])}, "
            f"forward {_fmt(busy['forward_img_s'])} img/s; loaded ceiling {_fmt(ceiling)}"
            + (f", e2e / loaded ceiling {e2e / ceiling:.2f}" if e2e else "")
        )
    cpu = result.get("cpu_during_e2e")
    if cpu:
        console.print(
            f"machine CPU during e2e: busy {cpu['busy']:.0%}, idle {cpu['idle']:.0%}, "
            f"stolen by the hypervisor {cpu['steal']:.0%}"
        )
    if "worker_rss_start_mib" in result:
        console.print(
            f"worker RSS MiB: start {_fmt(result['worker_rss_start_mib'])}, after "
            f"{result['worker_rss_mark_images']} images {_fmt(result['worker_rss_at_mark_mib'])}, "
            f"end {_fmt(result['worker_rss_end_mib'])}, peak {_fmt(result['worker_rss_peak_mib'])}"
        )
    for name, stats in (result.get("fidelity") or {}).items():
        console.print(
            f"{name}: top-1 agreement {_fmt(100 * stats['top1_agreement'])}% , "
            f"max |dp| {stats['max_abs_dp']:.2e} over {stats['images']} images"
        )
    sub = result.get("submission")
    if sub:
        console.print(
            f"submission: {sub['manifest_uris']}-URI manifest -> {sub['manifest_status']} in "
            f"{sub['manifest_accept_s']:.2f}s; {sub['upload_files']} files ({sub['upload_mib']:.0f} MiB) uploaded "
            f"in {sub['upload_s']:.1f}s, API RSS {sub['api_rss_before_upload_mib']:.0f} -> "
            f"{sub['api_rss_after_upload_mib']:.0f} MiB"
        )

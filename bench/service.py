"""The benchmark's service part: end-to-end throughput, time split, worker RSS, submission costs."""

import itertools
import logging
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx

from bench.e2e import (
    Services,
    chunk_timings,
    cleanup,
    commit_window,
    rss_mib,
    stack_env,
    submit_and_wait,
)
from imagebatch.client import Client
from tests.harness.stack import Stack

logger = logging.getLogger(__name__)

MANIFEST_URIS = 10_000


def _split(records: list[dict], submitted: float, wall: float, workers: int) -> dict:
    """Mean per-chunk seconds of each stage, the gaps between a thread's chunks, the model's busy share."""
    if not records:
        return {}
    by_thread: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_thread[r["thread"] + str(r.get("pid", ""))].append(r)
    gaps = []
    for chunks in by_thread.values():
        chunks.sort(key=lambda r: r["began"])
        gaps += [b["began"] - a["ended"] for a, b in itertools.pairwise(chunks)]
    mean = lambda key: statistics.fmean(r[key] for r in records)  # noqa: E731
    return {
        "chunks": len(records),
        "read_decode_s": mean("read_seconds"),
        "forward_s": mean("forward_seconds"),
        "write_s": mean("write_seconds"),
        "forward_wait_s": mean("wait_seconds"),
        # Claim, finalize, ack and fetching the next message: everything outside the stages.
        "overhead_between_chunks_s": statistics.fmean(gaps) if gaps else 0.0,
        "queue_wait_first_chunk_s": min(r["began"] for r in records) - submitted,
        "forward_busy_share": sum(r["forward_seconds"] for r in records) / (wall * workers),
    }


def cpu_times() -> list[int]:
    """The machine's cumulative CPU time per state (user, nice, system, idle, iowait, irq, softirq, steal)."""
    with open("/proc/stat") as stat:
        return [int(v) for v in stat.readline().split()[1:9]]


def cpu_share(before: list[int], after: list[int]) -> dict[str, float]:
    """How the machine's CPU time went between two readings: busy, idle and stolen (by the hypervisor).

    Steal is time a virtual machine's cores were runnable but the host ran something else: a
    noisy neighbour, which slows every pipeline measured while it lasts.
    """
    delta = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(delta) or 1
    return {
        "busy": (total - delta[3] - delta[4] - delta[7]) / total,
        "idle": (delta[3] + delta[4]) / total,
        "steal": delta[7] / total,
    }


class _RssSampler:
    """Worker RSS when the job first passes 1,000 (or 10%) finished images, and at its end."""

    def __init__(self, pids: list[int], total: int) -> None:
        self.pids, self.mark = pids, min(1000, max(1, total // 10))
        self.at_mark: float | None = None

    def total_rss(self) -> float:
        return sum(rss_mib(pid)["VmRSS"] for pid in self.pids)

    def __call__(self, job: dict) -> None:
        done = job["counts"]["succeeded"] + job["counts"]["failed"]
        if self.at_mark is None and done >= self.mark:
            self.at_mark = self.total_rss()


def _submission_costs(url: str, paths: list[Path], model: str, api_pid: int) -> dict:
    """Accept time of a 10,000-URI manifest and upload rate + API memory for the image files."""
    uris = [str(paths[i % len(paths)]) for i in range(MANIFEST_URIS)]
    with httpx.Client(base_url=url, timeout=120) as http, Client(url, timeout=120) as client:
        t0 = time.perf_counter()
        response = http.post("/v1/jobs", json={"uris": uris, "model": model})
        manifest_s = time.perf_counter() - t0
        if response.status_code == 202:
            client.cancel(response.json()["id"])
        before = rss_mib(api_pid)
        t0 = time.perf_counter()
        job = client.submit(paths, model=model)
        upload_s = time.perf_counter() - t0
        after = rss_mib(api_pid)
        client.cancel(job.id)
    megabytes = sum(p.stat().st_size for p in paths) / 2**20
    return {
        "manifest_uris": MANIFEST_URIS,
        "manifest_status": response.status_code,
        "manifest_accept_s": manifest_s,
        "upload_files": len(paths),
        "upload_mib": megabytes,
        "upload_s": upload_s,
        "upload_mib_s": megabytes / upload_s,
        "api_rss_before_upload_mib": before["VmRSS"],
        "api_rss_after_upload_mib": after["VmRSS"],
    }


def run_service(
    paths: list[Path],
    *,
    services: Services,
    torch_home: Path,
    model: str,
    precision: str,
    e2e_images: int,
    workers: int,
    env_options: dict,
    submission: bool = True,
) -> dict:
    """Start the stack, warm it up, run one timed job, measure submission; always tear down."""
    root = Path(tempfile.mkdtemp(prefix="imagebatch-bench-"))
    services.reset()
    env = stack_env(services, root / "data", paths[0].parent, torch_home, env_options)
    stack = Stack(env=env, log_dir=root / "logs")
    try:
        stack.start_api()
        for _ in range(workers):
            stack.start_worker(model)
        # The job says its decode mode: an fp32 job would otherwise get exact whatever DECODE_MODE says.
        options = {"model": model, "precision": precision, "decode": env_options.get("DECODE_MODE", "fast")}
        uris = [str(paths[i % len(paths)]) for i in range(e2e_images)]
        with httpx.Client(base_url=stack.url, timeout=60) as http:
            # Warm-up: workers finish loading and oneDNN picks its kernels before the clock starts.
            submit_and_wait(http, stack, uris[: 2 * int(env_options.get("CHUNK_SIZE") or 32)], options)
            pids = [p.pid for p in stack.workers]
            sampler = _RssSampler(pids, e2e_images)
            rss_start = sampler.total_rss()
            cpu_before = cpu_times()
            job, submitted = submit_and_wait(http, stack, uris, options, sample=sampler)
            cpu_during = cpu_share(cpu_before, cpu_times())
            rss_end = sampler.total_rss()
            peak = sum(rss_mib(pid)["VmHWM"] for pid in pids)
        _created, committed = commit_window(services.database_url, job["id"])
        wall = committed - submitted
        records = [r for r in chunk_timings(stack.log_dir) if r["job"] == job["id"]]
        result = {
            "e2e_images": e2e_images,
            "e2e_seconds": wall,
            "e2e_img_s": e2e_images / wall,
            "job_state": job["state"],
            "job_counts": job["counts"],
            "reproducibility": job.get("reproducibility"),
            "worker_rss_start_mib": rss_start,
            "worker_rss_at_mark_mib": sampler.at_mark,
            "worker_rss_mark_images": sampler.mark,
            "worker_rss_end_mib": rss_end,
            "worker_rss_peak_mib": peak,
            "split": _split(records, submitted, wall, workers),
            "cpu_during_e2e": cpu_during,
        }
        stack.stop_workers()
        if submission:
            result["submission"] = _submission_costs(stack.url, paths[:1000], model, stack.api.pid)
        return result
    finally:
        stack.stop()
        services.reset(create=False)
        cleanup(root / "data")
        logger.info("benchmark logs kept in %s", root / "logs")

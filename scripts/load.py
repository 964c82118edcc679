"""Load an imagebatch API: submitters post small jobs while pollers read them back, for a fixed time.

With --stack it starts its own API and one worker on a scratch PostgreSQL database (the test
server, IMAGEBATCH_TEST_PG_URL) and a private redis-server, auth on with a fresh key, and
checks afterwards that the jobs in the database are exactly the submissions answered 202;
otherwise it loads --url. Prints each status code's count (5xx must be 0), p50/p99 latency
(all, submits, polls), transport errors and the API's RSS before and after.
Example: python scripts/load.py --stack --submitters 200 --pollers 200 --duration 60 --json load.json
"""

import argparse
import asyncio
import io
import ipaddress
import json
import os
import random
import socket
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MAX_CLIENTS, MAX_DURATION = 400, 600


@dataclass
class Tally:
    codes: dict[str, Counter] = field(default_factory=lambda: {"submit": Counter(), "poll": Counter()})
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"submit": [], "poll": []})
    transport_errors: Counter = field(default_factory=Counter)
    accepted: list[str] = field(default_factory=list)


def small_jpeg(seed: int, size: int = 64) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def require_loopback(url: str) -> None:
    """This script only ever loads a local API: refuse anything that resolves elsewhere."""
    host = urlparse(url).hostname or ""
    addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise SystemExit(f"load.py: {url} is not a loopback address; refusing to send load there")


async def timed(tally: Tally, kind: str, request) -> httpx.Response | None:
    began = time.perf_counter()
    try:
        response = await request
    except httpx.HTTPError as exc:
        tally.transport_errors[f"{kind}: {type(exc).__name__}"] += 1
        return None
    tally.latencies[kind].append(time.perf_counter() - began)
    tally.codes[kind][response.status_code] += 1
    return response


async def submitter(client: httpx.AsyncClient, tally: Tally, args, n: int, images: list[bytes], stop_at: float) -> None:
    """Submit jobs back to back; after a 429 or 503, wait its Retry-After (within the run's time)."""
    sent = 0
    while time.monotonic() < stop_at:
        files = [
            ("files", (f"s{n}_{sent}_{i}.jpg", images[(n + sent + i) % len(images)], "image/jpeg"))
            for i in range(args.images)
        ]
        sent += 1
        response = await timed(tally, "submit", client.post("/v1/jobs", files=files))
        if response is not None and response.status_code == 202:
            tally.accepted.append(response.json()["id"])
        elif response is not None and response.status_code in (429, 503):
            wait = float(response.headers.get("retry-after", "1"))
            await asyncio.sleep(min(wait, max(stop_at - time.monotonic(), 0)))


async def poller(client: httpx.AsyncClient, tally: Tally, args, stop_at: float) -> None:
    """Read a random accepted job every poll interval, as clients watching their jobs do."""
    while time.monotonic() < stop_at:
        if tally.accepted:
            await timed(tally, "poll", client.get(f"/v1/jobs/{random.choice(tally.accepted)}"))
        await asyncio.sleep(args.poll_interval)


def percentile(values: list[float], q: int) -> float | None:
    if len(values) < 2:
        return values[0] if values else None
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def summary(tally: Tally, seconds: float, args) -> dict:
    ms = lambda v: None if v is None else round(v * 1000, 1)  # noqa: E731
    everything = tally.latencies["submit"] + tally.latencies["poll"]
    codes = tally.codes["submit"] + tally.codes["poll"]
    return {
        "submitters": args.submitters,
        "pollers": args.pollers,
        "duration_s": round(seconds, 1),
        "images_per_job": args.images,
        "requests": sum(codes.values()),
        "requests_per_s": round(sum(codes.values()) / seconds, 1),
        "status_codes": {str(code): count for code, count in sorted(codes.items())},
        "submit_status_codes": {str(code): count for code, count in sorted(tally.codes["submit"].items())},
        "poll_status_codes": {str(code): count for code, count in sorted(tally.codes["poll"].items())},
        "5xx": sum(count for code, count in codes.items() if code >= 500),
        "transport_errors": dict(tally.transport_errors),
        "p50_ms": ms(percentile(everything, 50)),
        "p99_ms": ms(percentile(everything, 99)),
        "submit_p50_ms": ms(percentile(tally.latencies["submit"], 50)),
        "submit_p99_ms": ms(percentile(tally.latencies["submit"], 99)),
        "poll_p50_ms": ms(percentile(tally.latencies["poll"], 50)),
        "poll_p99_ms": ms(percentile(tally.latencies["poll"], 99)),
        "accepted_202": len(tally.accepted),
    }


async def run(args, url: str, key: str | None, tally: Tally) -> dict:
    images = [small_jpeg(seed) for seed in range(16)]
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    clients = args.submitters + args.pollers
    # Idle connections are dropped well before uvicorn's 5 s keep-alive ends, so that a request is
    # rarely sent on a connection the server is closing (a ReadError that says nothing about the API);
    # a starved client can still take seconds between picking a connection and writing to it.
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients, keepalive_expiry=1.0)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=args.timeout, limits=limits) as client:
        began = time.monotonic()
        stop_at = began + args.duration
        await asyncio.gather(
            *(submitter(client, tally, args, n, images, stop_at) for n in range(args.submitters)),
            *(poller(client, tally, args, stop_at) for _ in range(args.pollers)),
        )
        return summary(tally, time.monotonic() - began, args)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_with_stack(args) -> dict:
    """The run against a private stack, then the database's side: jobs created versus 202s answered."""
    from load_stack import private_stack  # scripts/load_stack.py

    with private_stack(args.workers) as stack:
        tally = Tally()
        before, load_before = rss_mib(stack.api_pid), os.getloadavg()[0]
        cpu = {name: cpu_seconds(pid) for name, pid in stack.pids().items()}
        result = asyncio.run(run(args, stack.url, stack.key, tally))
        result["api_rss_mib_before"], result["api_rss_mib_after"] = before, rss_mib(stack.api_pid)
        # Where the machine's time went: the API's CPU seconds per request is its cost under load.
        result["cpu_seconds"] = {name: round(cpu_seconds(pid) - cpu[name], 1) for name, pid in stack.pids().items()}
        created, accepted = stack.job_ids(), set(tally.accepted)
        result["jobs_created"] = len(created)
        result["jobs_created_not_answered_202"] = len(created - accepted)
        result["answered_202_not_created"] = len(accepted - created)
        result["api_tracebacks"] = stack.api_log().count("Traceback")
        # The machine may be shared: its load says how much of it the run had.
        result["load_average_1m_before"] = round(load_before, 2)
        result["load_average_1m_after"] = round(os.getloadavg()[0], 2)
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the API to load (without --stack)")
    parser.add_argument("--stack", action="store_true", help="start a private API + worker on PostgreSQL + Redis")
    parser.add_argument("--workers", type=int, default=1, help="worker processes with --stack")
    parser.add_argument("--submitters", type=int, default=8)
    parser.add_argument("--pollers", type=int, default=8)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds")
    parser.add_argument("--images", type=int, default=4, help="64x64 JPEGs uploaded per job")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds between one poller's reads")
    parser.add_argument("--timeout", type=float, default=120.0, help="per request, seconds")
    parser.add_argument("--api-key", help="sent as Authorization: Bearer (without --stack, when auth is on)")
    parser.add_argument("--json", help="also write the summary to this file")
    args = parser.parse_args(argv)
    clients_ok = 1 <= args.submitters <= MAX_CLIENTS and 0 <= args.pollers <= MAX_CLIENTS
    if not clients_ok or not 0 < args.duration <= MAX_DURATION:
        raise SystemExit(
            f"load.py: --submitters 1..{MAX_CLIENTS}, --pollers 0..{MAX_CLIENTS}, --duration up to {MAX_DURATION}s"
        )
    if args.stack:
        result = run_with_stack(args)
    else:
        require_loopback(args.url)
        result = asyncio.run(run(args, args.url, args.api_key, Tally()))
    for key, value in result.items():
        sys.stdout.write(f"{key:>28}: {value}\n")
    sys.stdout.write(json.dumps(result) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    ok = result["5xx"] == 0 and result.get("jobs_created", result["accepted_202"]) == result["accepted_202"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

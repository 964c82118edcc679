"""Bounded load on a loopback imagebatch API: clients submit small jobs and poll them for a fixed time.

Reports requests/s, p50/p99 latency (all, submits, polls) and errors, as a table and as JSON.
Example: python scripts/load.py --url http://127.0.0.1:8000 --clients 8 --duration 30
"""

import argparse
import asyncio
import io
import ipaddress
import json
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

import httpx
import numpy as np
from PIL import Image

MAX_CLIENTS, MAX_DURATION = 64, 600


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"submit": [], "poll": []})
    errors: dict[str, int] = field(default_factory=dict)
    jobs_submitted: int = 0
    jobs_finished: int = 0
    requests: int = 0

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


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
    t0 = time.perf_counter()
    try:
        response = await request
    except httpx.HTTPError as exc:
        tally.error(f"{kind}: {type(exc).__name__}")
        return None
    finally:
        tally.requests += 1
    tally.latencies[kind].append(time.perf_counter() - t0)
    if response.status_code >= 400:
        tally.error(f"{kind}: HTTP {response.status_code}")
        return None
    return response


async def client_loop(
    client: httpx.AsyncClient, tally: Tally, args: argparse.Namespace, n: int, stop_at: float
) -> None:
    """Submit a job, poll it until it ends (or time is up), repeat."""
    jobs = 0
    while time.monotonic() < stop_at and tally.requests < args.max_requests:
        files = [
            ("files", (f"c{n}_{jobs}_{i}.jpg", small_jpeg(n * 1000 + jobs * 10 + i), "image/jpeg"))
            for i in range(args.images)
        ]
        response = await timed(tally, "submit", client.post("/v1/jobs", files=files))
        jobs += 1
        if response is None:
            await asyncio.sleep(args.poll_interval)
            continue
        tally.jobs_submitted += 1
        job_id = response.json()["id"]
        while time.monotonic() < stop_at and tally.requests < args.max_requests:
            await asyncio.sleep(args.poll_interval)
            polled = await timed(tally, "poll", client.get(f"/v1/jobs/{job_id}"))
            if polled is not None and polled.json()["state"] in ("completed", "failed", "cancelled"):
                tally.jobs_finished += 1
                break


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def summary(tally: Tally, seconds: float, args: argparse.Namespace) -> dict:
    everything = tally.latencies["submit"] + tally.latencies["poll"]
    ms = lambda v: None if v is None else round(v * 1000, 1)  # noqa: E731
    return {
        "url": args.url,
        "clients": args.clients,
        "duration_s": round(seconds, 1),
        "images_per_job": args.images,
        "requests": tally.requests,
        "requests_per_s": round(tally.requests / seconds, 1) if seconds else None,
        "p50_ms": ms(percentile(everything, 50)),
        "p99_ms": ms(percentile(everything, 99)),
        "submit_p50_ms": ms(percentile(tally.latencies["submit"], 50)),
        "submit_p99_ms": ms(percentile(tally.latencies["submit"], 99)),
        "poll_p50_ms": ms(percentile(tally.latencies["poll"], 50)),
        "poll_p99_ms": ms(percentile(tally.latencies["poll"], 99)),
        "errors": sum(tally.errors.values()),
        "error_kinds": tally.errors,
        "jobs_submitted": tally.jobs_submitted,
        "jobs_finished_in_window": tally.jobs_finished,
    }


async def run(args: argparse.Namespace) -> dict:
    tally = Tally()
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(base_url=args.url, headers=headers, timeout=args.timeout, limits=limits) as client:
        began = time.monotonic()
        stop_at = began + args.duration
        await asyncio.gather(*(client_loop(client, tally, args, n, stop_at) for n in range(args.clients)))
        return summary(tally, time.monotonic() - began, args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds")
    parser.add_argument("--images", type=int, default=2, help="64x64 JPEGs uploaded per job")
    parser.add_argument("--poll-interval", type=float, default=0.2)
    parser.add_argument("--max-requests", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    parser.add_argument("--api-key", help="sent as Authorization: Bearer (when auth is on)")
    parser.add_argument("--json", help="also write the summary to this file")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= MAX_CLIENTS or not 0 < args.duration <= MAX_DURATION:
        raise SystemExit(f"load.py: --clients 1..{MAX_CLIENTS} and --duration up to {MAX_DURATION}s")
    require_loopback(args.url)
    result = asyncio.run(run(args))
    for key in (
        "requests",
        "requests_per_s",
        "p50_ms",
        "p99_ms",
        "submit_p50_ms",
        "submit_p99_ms",
        "poll_p50_ms",
        "poll_p99_ms",
        "errors",
        "jobs_submitted",
        "jobs_finished_in_window",
    ):
        sys.stdout.write(f"{key:>24}: {result[key]}\n")
    sys.stdout.write(json.dumps(result) + "\n")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

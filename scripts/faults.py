"""Loop the fault scenarios N times and publish: runs, faults injected, images expected, stored, duplicates.

Needs the test PostgreSQL server (for scratch databases). Starts its own API and worker
processes, a private append-only redis-server per run, and a private PostgreSQL cluster for
the PostgreSQL restart. Example: python scripts/faults.py --runs 3 --json faults.json

`--matrix`: the worker-liveness matrix instead: a worker SIGKILLed at each of five points
(tests.harness.liveness.KILL_POINTS), then a restarted worker or a surviving second one,
plus a Redis and a PostgreSQL restart; each row also gives the seconds from fault to completion.
"""

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness import faults as scenarios  # noqa: E402
from tests.harness import (
    liveness,  # noqa: E402
    outages,  # noqa: E402
)
from tests.harness.servers import private_redis_server  # noqa: E402
from tests.harness.services import scratch_database  # noqa: E402

logger = logging.getLogger("faults")

PG_DATABASE = f"imagebatch_faults_{os.getpid()}"  # per process, as in tests/faults
SCENARIOS = {
    "worker_sigkill": lambda setup, pg, redis: scenarios.worker_sigkill(setup, pg, redis),
    "redis_restart": lambda setup, pg, redis: outages.redis_restart(setup, pg),
    "redis_lost_acks": lambda setup, pg, redis: outages.redis_down_while_chunks_finish(setup, pg),
    "redis_lost_message": lambda setup, pg, redis: outages.redis_loses_a_message(setup, pg),
    "postgres_restart": lambda setup, pg, redis: outages.postgres_restart(setup, redis),
    "worker_hang": lambda setup, pg, redis: scenarios.worker_hang(setup, pg, redis),
}
MATRIX = [
    f"worker_sigkill_{point}_{after}" for point in liveness.KILL_POINTS for after in ("restarted", "survivor")
] + ["redis_restart", "postgres_restart"]
for _point in liveness.KILL_POINTS:
    for _after in ("restarted", "survivor"):
        SCENARIOS[f"worker_sigkill_{_point}_{_after}"] = (
            lambda setup, pg, redis, point=_point, survivor=_after == "survivor": liveness.worker_killed(
                setup, pg, redis, point=point, survivor=survivor
            )
        )


def run_once(name: str, setup: scenarios.Setup) -> dict:
    with scratch_database(PG_DATABASE) as pg, private_redis_server() as redis:
        try:
            return SCENARIOS[name](setup, pg, redis).as_dict()
        except Exception as exc:  # a failed run is a figure too, not a crash of the loop
            logger.exception("%s failed", name)
            return {
                "scenario": name,
                "faults": 1,
                "expected": 0,
                "stored": 0,
                "duplicates": 0,
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}",
            }


def summarize(runs: list[dict]) -> list[dict]:
    rows = []
    for name in dict.fromkeys(r["scenario"] for r in runs):
        mine = [r for r in runs if r["scenario"] == name]
        rows.append(
            {
                "scenario": name,
                "runs": len(mine),
                "faults_injected": sum(r["faults"] for r in mine),
                "images_expected": sum(r["expected"] for r in mine),
                "images_stored": sum(r["stored"] for r in mine),
                "duplicates": sum(r["duplicates"] for r in mine),
                "runs_ok": sum(bool(r["ok"]) for r in mine),
                "mean_seconds": round(sum(r.get("seconds", 0) for r in mine) / len(mine), 1),
                "recovery_seconds": "/".join(str(r.get("notes", {}).get("recovery_seconds", "-")) for r in mine),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each scenario")
    parser.add_argument("--scenario", action="append", choices=list(SCENARIOS), help="default: all")
    parser.add_argument("--json", type=Path, help="also write every run and the summary here")
    parser.add_argument("--matrix", action="store_true", help="the worker-liveness fault matrix (see above)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll otherwise
    names = args.scenario or (MATRIX if args.matrix else [n for n in SCENARIOS if n not in MATRIX[:-2]])
    runs = []
    with tempfile.TemporaryDirectory(prefix="imagebatch-faults-") as tmp:
        work = Path(tmp)
        setup = scenarios.prepare(work / "torch_home", work / "images", work / "runs")
        for i in range(args.runs):
            for name in names:
                began = time.monotonic()
                runs.append(run_once(name, setup))
                logger.info("run %d %s: %s (%.0fs)", i + 1, name, runs[-1], time.monotonic() - began)
    summary = summarize(runs)
    header = (
        "scenario",
        "runs",
        "faults_injected",
        "images_expected",
        "images_stored",
        "duplicates",
        "runs_ok",
        "recovery_seconds",
    )
    print(" | ".join(header))
    for row in summary:
        print(" | ".join(str(row[h]) for h in header))
    document = {"summary": summary, "runs": runs}
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps(document, indent=2, default=str))
    return 0 if all(r["runs_ok"] == r["runs"] for r in summary) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Start and stop a real imagebatch API process and real worker processes (end-to-end tests, fault loop)."""

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from imagebatch.cli.demo import free_port
from imagebatch.worker.timing import CHUNK_TIMING

BIN = Path(sys.executable).parent


@dataclass
class Stack:
    """An API process plus N worker processes sharing one environment."""

    env: dict[str, str]
    log_dir: Path
    port: int = field(default_factory=free_port)
    api: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)
    cwd: Path | None = None  # where the processes run (and would read a .env); None: here

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{name}.log", "ab") as log:  # the child keeps its own handle
            return subprocess.Popen(
                args, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def start_api(self) -> None:
        self.api = self._spawn("api", [str(BIN / "imagebatch"), "serve", "--port", str(self.port)])
        self.wait_ready()

    def start_worker(self, models: str = "resnet18,resnet50", queues: str | None = None) -> subprocess.Popen:
        name = f"worker{len(self.workers)}"
        args = [str(BIN / "imagebatch"), "worker", "--models", models] + (["--queues", queues] if queues else [])
        proc = self._spawn(name, args)
        self.workers.append(proc)
        return proc

    def processes(self) -> dict[str, subprocess.Popen | None]:
        """Every process by the name of its log: api, worker0, worker1, ..."""
        return {"api": self.api} | {f"worker{i}": p for i, p in enumerate(self.workers)}

    def dead(self) -> list[str]:
        """Names of the processes that have exited."""
        return [name for name, proc in self.processes().items() if proc is not None and proc.poll() is not None]

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if dead := self.dead():
                raise RuntimeError(f"{', '.join(dead)} exited early:\n{self.all_logs()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"API not ready after {timeout}s:\n{self.logs('api')}")

    def logs(self, name: str, tail: int | None = 5000) -> str:
        """The last `tail` characters of a process's log (None: all of it)."""
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return "(no log)"
        text = path.read_text(errors="replace")
        return text if tail is None else text[-tail:]

    def all_logs(self) -> str:
        """Each process's state and the end of its log, without the per-chunk timing records."""
        parts = []
        for name, proc in self.processes().items():
            state = "not started" if proc is None else "running" if proc.poll() is None else f"exited {proc.returncode}"
            lines = [line for line in self.logs(name, 20000).splitlines() if CHUNK_TIMING not in line]
            parts.append(f"--- {name} ({state}) ---\n" + "\n".join(lines)[-5000:])
        return "\n".join(parts)

    def stop_workers(self) -> None:
        _terminate(self.workers)

    def stop(self) -> None:
        _terminate([*self.workers, self.api])


def _terminate(procs: list[subprocess.Popen | None]) -> None:
    """SIGTERM (a warm shutdown for workers), then SIGKILL whatever is still running after 20 s."""
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.terminate()
    for proc in procs:
        if proc is None:
            continue
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 240) -> dict:
    """Poll until the job reaches a final state; returns the final job document."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.3)
    raise TimeoutError(f"job {job_id} still {job['state']} after {timeout}s: {job['counts']}")

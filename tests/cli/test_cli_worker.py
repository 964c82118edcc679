"""The CLI with a real worker: `weights random`, `submit --wait`, results and exports of finished jobs."""

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from imagebatch.core.catalog import MODELS
from imagebatch.worker.samples import write_sample_photos
from tests.conftest import REPO, clean_env
from tests.harness.stack import Stack

pytestmark = pytest.mark.e2e


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "imagebatch.cli", *args],
        env=env or clean_env(),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("torch_home")
    done = run_cli("weights", "random", "resnet18", "--torch-home", str(home), "--seed", "3")
    assert done.returncode == 0, done.stderr
    assert "RANDOM WEIGHTS" in done.stderr
    assert Path(done.stdout.strip()) == home / "hub" / "checkpoints" / MODELS["resnet18"].weights_file
    return home


def test_weights_random_refuses_to_overwrite(torch_home: Path):
    target = torch_home / "hub" / "checkpoints" / MODELS["resnet18"].weights_file
    before = target.read_bytes()
    done = run_cli("weights", "random", "resnet18", "--torch-home", str(torch_home), "--seed", "4")
    assert done.returncode == 2 and "--force" in done.stderr
    assert target.read_bytes() == before


@pytest.fixture(scope="module")
def stack_url(tmp_path_factory: pytest.TempPathFactory, torch_home: Path) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("cli-worker-stack")
    env = clean_env(IMAGEBATCH_DATA_DIR=str(data_dir), TORCH_HOME=str(torch_home))
    stack = Stack(env=env, log_dir=data_dir, cwd=data_dir)
    try:
        stack.start_api()
        worker = stack.start_worker("resnet18")
        yield stack.url
    finally:
        stack.stop()
    if worker.returncode not in (0, -15):
        pytest.fail(f"worker ended with {worker.returncode}:\n{stack.logs('worker0')}")


@pytest.fixture(scope="module")
def finished_job(stack_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, subprocess.CompletedProcess]:
    folder = tmp_path_factory.mktemp("wait") / "batch"
    write_sample_photos(folder, 4)
    (folder / "broken.jpg").write_text("this is text, not a JPEG")
    done = run_cli("--url", stack_url, "submit", str(folder), "--wait", "--top-k", "5")
    return done.stdout.strip(), done


def test_submit_wait_exits_0_and_reports_failures(finished_job):
    job_id, done = finished_job
    assert done.returncode == 0, done.stderr
    assert len(job_id) == 32 and "\n" not in job_id
    assert f"job {job_id} completed: 4 succeeded, 1 failed of 5" in done.stderr


def test_results_json_and_table_agree(stack_url: str, finished_job):
    job_id, _ = finished_job
    items = json.loads(run_cli("--url", stack_url, "results", job_id, "--json").stdout)
    assert len(items) == 5
    broken = next(i for i in items if i["source"].endswith("broken.jpg"))
    assert broken["status"] == "error" and broken["error"]["category"] == "unreadable"
    ok = [i for i in items if i["status"] == "ok"]
    assert len(ok) == 4
    for item in ok:
        probs = [p["probability"] for p in item["top_k"]]
        assert len(probs) == 5 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
    table = run_cli("--url", stack_url, "results", job_id).stdout
    first = ok[0]["top_k"][0]
    assert f"{first['label']} {first['probability']:.3f}" in table
    assert "unreadable" in table
    errors = json.loads(run_cli("--url", stack_url, "results", job_id, "--errors-only", "--json").stdout)
    assert [e["source"] for e in errors] == [broken["source"]]


def test_exports_hold_every_row(stack_url: str, finished_job, tmp_path: Path):
    job_id, _ = finished_job
    assert run_cli("--url", stack_url, "export", job_id, "--out", str(tmp_path / "r.csv")).returncode == 0
    assert (
        run_cli("--url", stack_url, "export", job_id, "--out", str(tmp_path / "r.pq"), "--format", "parquet").returncode
        == 0
    )
    csv = pd.read_csv(tmp_path / "r.csv")
    parquet = pd.read_parquet(tmp_path / "r.pq")
    assert len(csv) == len(parquet) == 5
    assert sorted(csv["status"]) == sorted(parquet["status"]) == ["error", "ok", "ok", "ok", "ok"]
    ok = parquet[parquet["status"] == "ok"].sort_values("index")
    assert list(ok["top1_label"]) == [row[0]["label"] for row in ok["top_k"]]
    assert {len(e) for e in ok["embedding"]} == {512} and parquet["embedding"].isna().sum() == 1

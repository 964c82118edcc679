"""The `imagebatch` command line against a real API process (typer's CliRunner drives the CLI)."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from imagebatch.cli import app
from imagebatch.client import Client
from tests.conftest import REPO, clean_env
from tests.harness.services import free_port

runner = CliRunner()


def cli(url: str, *args: str):
    return runner.invoke(app, ["--url", url, *args])


def test_submit_prints_only_the_job_id(api_url: str, photos: Path):
    result = cli(api_url, "submit", str(photos), "--top-k", "3", "--model", "resnet18")
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"[0-9a-f]{32}\n", result.stdout)
    with Client(api_url) as client:
        job = client.get_job(result.stdout.strip())
    assert job.counts["total"] == 3 and job.data["top_k"] == 3


def test_status_list_results_export_cancel_delete(api_url: str, photos: Path, tmp_path: Path):
    job_id = cli(api_url, "submit", str(photos)).stdout.strip()

    status = cli(api_url, "status", job_id, "--json")
    assert status.exit_code == 0 and json.loads(status.stdout)["id"] == job_id
    assert "queued" in cli(api_url, "status", job_id).stdout
    exact = cli(api_url, "submit", str(photos), "--precision", "fp32", "--decode", "exact").stdout.strip()
    shown = cli(api_url, "status", exact).stdout
    assert re.search(r"precision\s+fp32", shown) and re.search(r"decode\s+exact", shown), shown
    assert cli(api_url, "delete", exact).exit_code == 0

    listed = cli(api_url, "list", "--json", "--limit", "500")
    assert job_id in [j["id"] for j in json.loads(listed.stdout)]
    assert job_id in cli(api_url, "list", "--limit", "500").stdout  # full id, not truncated

    items = json.loads(cli(api_url, "results", job_id, "--json").stdout)
    assert [i["index"] for i in items] == [0, 1, 2]
    table = cli(api_url, "results", job_id, "--limit", "2").stdout
    assert "photos/astronaut.jpg" in table and "photos/more/astronaut.jpg" not in table

    out = tmp_path / "r.parquet"
    exported = cli(api_url, "export", job_id, "--out", str(out))
    assert exported.exit_code == 0 and f"wrote {out}" in exported.stderr.replace("\n", "")
    assert len(pd.read_parquet(out)) == 3

    cancelled = cli(api_url, "cancel", job_id)
    assert cancelled.exit_code == 0 and re.search(r"cancell(ing|ed)", cancelled.stdout)
    assert cli(api_url, "delete", job_id).exit_code == 0
    gone = cli(api_url, "status", job_id)
    assert gone.exit_code == 4
    assert gone.stderr.strip().count("\n") == 0 and "not found" in gone.stderr


def test_unknown_job_id_exits_4_with_one_line(api_url: str):
    result = cli(api_url, "results", "f" * 32)
    assert result.exit_code == 4
    assert result.stdout == "" and result.stderr.startswith("error: not found")
    assert result.stderr.strip().count("\n") == 0


def test_unreachable_api_exits_3_with_one_line():
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["status", "abc"], env={"IMAGEBATCH_API_URL": url})
    assert result.exit_code == 3
    assert url in result.stderr and result.stderr.strip().count("\n") == 0


def test_bad_input_exits_2(api_url: str, tmp_path: Path):
    missing = cli(api_url, "submit", str(tmp_path / "nothing-here"))
    assert missing.exit_code == 2 and "no such file or folder" in missing.stderr
    rejected = cli(api_url, "submit", str(tmp_path), "--top-k", "0")
    assert rejected.exit_code == 2  # typer's own range check, before any request


def test_api_validation_error_exits_5(api_url: str, photos: Path):
    result = cli(api_url, "submit", str(photos), "--top-k", "100000")
    assert result.exit_code == 5 and "top_k" in result.stderr


def test_submit_wait_exits_1_when_the_job_is_cancelled(api_url: str, photos: Path):
    """A real `imagebatch submit --wait` process; nobody runs the job, so we cancel it."""
    with Client(api_url) as client:
        before = {j.id for j in client.list_jobs(limit=500)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "imagebatch.cli", "--url", api_url, "submit", str(photos), "--wait"],
            env=clean_env(),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            new: set[str] = set()
            while not new and time.monotonic() < deadline:
                time.sleep(0.2)
                new = {j.id for j in client.list_jobs(limit=500)} - before
            assert len(new) == 1
            job_id = new.pop()
            client.cancel(job_id)
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 1
    assert stdout.strip() == job_id
    assert f"job {job_id} cancel" in stderr


def test_train_choices_match_the_training_options():
    from imagebatch.cli.training import BaseModel, Mode, TrainPrecision
    from imagebatch.core.training import MODES, TRAINING_PRECISIONS, TrainingOptions

    assert [m.value for m in Mode] == list(MODES)
    assert [p.value for p in TrainPrecision] == list(TRAINING_PRECISIONS)
    base_models = TrainingOptions.model_json_schema()["properties"]["base_model"]["enum"]
    assert [b.value for b in BaseModel] == base_models

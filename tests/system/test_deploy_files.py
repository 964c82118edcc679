"""docker-compose.yml, Dockerfile and scripts: parsed and checked, no Docker engine needed."""

import os
import subprocess

import pytest
import yaml

from tests.conftest import REPO


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_all_services_present(compose: dict):
    assert set(compose["services"]) == {"redis", "postgres", "migrate", "api", "worker", "flower"}


def test_healthchecks_and_start_order(compose: dict):
    services = compose["services"]
    assert "redis-cli" in services["redis"]["healthcheck"]["test"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    api_deps = services["api"]["depends_on"]
    assert api_deps["migrate"]["condition"] == "service_completed_successfully"
    assert api_deps["redis"]["condition"] == "service_healthy"
    assert services["api"]["environment"]["IMAGEBATCH_AUTO_MIGRATE"] == "false"
    assert "--appendonly" in services["redis"]["command"]


def test_worker_reserves_a_gpu_and_keeps_weights_on_a_volume(compose: dict):
    worker = compose["services"]["worker"]
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["count"] == 1 and "gpu" in device["capabilities"]
    torch_home = worker["environment"]["TORCH_HOME"]
    assert any(v.endswith(f":{torch_home}") for v in worker["volumes"])


def test_api_and_worker_share_the_upload_path(compose: dict):
    api, worker = compose["services"]["api"], compose["services"]["worker"]
    storage = api["environment"]["IMAGEBATCH_STORAGE_URL"]
    assert storage == worker["environment"]["IMAGEBATCH_STORAGE_URL"]
    mount = {v.split(":")[1]: v.split(":")[0] for v in api["volumes"]}
    assert mount[storage] == {v.split(":")[1]: v.split(":")[0] for v in worker["volumes"]}[storage]
    for service in (api, worker):
        env = service["environment"]
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["REDIS_URL"] == "redis://redis:6379/0"


def test_images_split_torch_from_the_api(compose: dict):
    services = compose["services"]
    assert services["api"]["build"]["target"] == "api" == services["migrate"]["build"]["target"]
    assert services["worker"]["build"]["target"] == "worker"
    text = (REPO / "Dockerfile").read_text()
    api_stage = text.split("AS api", 1)[1].split("FROM ", 1)[0]
    worker_stage = text.split("AS worker", 1)[1]
    assert "torch" not in api_stage and "[worker]" not in api_stage
    assert "torch==2.14.1" in worker_stage and ".[worker]" in worker_stage


def test_scripts_parse_and_ci_runs_the_test_script():
    for script in ("scripts/setup.sh", "scripts/demo.sh", "scripts/test.sh", ".ci/run"):
        path = REPO / script
        assert os.access(path, os.X_OK), f"{script} is not executable"
        subprocess.run(["bash", "-n", str(path)], check=True)
    ci = (REPO / ".ci/run").read_text()
    assert ci.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in ci and "scripts/test.sh" in ci

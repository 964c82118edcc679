"""Fuzz every operation of the running API from its own /openapi.json (schemathesis): never a 5xx."""

from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from tests.harness.services import scratch_database
from tests.harness.stack import Stack
from tests.system.security.conftest import PG_DB, make_key

# Bounded: 100 examples per operation, well under a minute on 2 cores.
EXAMPLES = 100


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fuzz_api(request, secure_env, tmp_path_factory) -> Iterator[Stack]:
    """Auth on, tenant limits off (so submissions get parsed rather than turned away), no worker."""
    data_dir = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    env = {k: v for k, v in secure_env.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        IMAGEBATCH_DATA_DIR=str(data_dir),
        IMAGEBATCH_MAX_ACTIVE_JOBS_PER_TENANT="0",
        IMAGEBATCH_MAX_IMAGES_IN_FLIGHT_PER_TENANT="0",
    )
    with ExitStack() as cleanup:
        if request.param == "postgres":
            env["DATABASE_URL"] = cleanup.enter_context(scratch_database(PG_DB + "_fuzz"))
        stack = Stack(env=env, log_dir=data_dir / "logs")
        cleanup.callback(stack.stop)
        stack.start_api()
        yield stack


@pytest.fixture(scope="module")
def fuzz_key(fuzz_api) -> str:
    url = fuzz_api.env.get("DATABASE_URL") or f"sqlite:///{fuzz_api.env['IMAGEBATCH_DATA_DIR']}/imagebatch.sqlite"
    return make_key(url, "fuzz")


def test_no_server_errors(fuzz_api, fuzz_key):
    schema = schemathesis.openapi.from_url(f"{fuzz_api.url}/openapi.json")
    headers = {"Authorization": f"Bearer {fuzz_key}"}
    seen: Counter[tuple[str, int]] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert any(op.path == "/v1/jobs" and op.method.upper() == "POST" for op in operations)
    for operation in operations:
        # Half the examples aim at a real job of this tenant, so routes get past their 404.
        job_id = httpx.post(
            f"{fuzz_api.url}/v1/jobs", headers=headers, timeout=30, json={"uris": ["https://images.example.com/a.jpg"]}
        ).json()["id"]

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def no_5xx(case) -> None:
            if case.path_parameters and "job_id" in case.path_parameters and seen.total() % 2:
                case.path_parameters["job_id"] = job_id
            response = case.call(headers=headers, timeout=30)
            seen[(f"{case.method} {operation.path}", response.status_code)] += 1
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}\n"
                f"{fuzz_api.logs('api')[-3000:]}"
            )

        no_5xx()
    # The fuzzer really exercised the API: accepted jobs as well as refusals, on every operation.
    assert {op for op, _ in seen} == {f"{op.method.upper()} {op.path}" for op in operations}
    assert sum(n for (_, code), n in seen.items() if code == 422) > 0
    print(sorted(seen.items()))

"""Worker liveness with real processes: a killed worker's chunks come back within seconds, a stopped one's at once."""

import pytest

from tests.harness import liveness

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

# Heartbeat 5 s, dead after 15 s, sweeps every 5 s (the defaults): back on the queue within ~25 s.
RECOVERY_BOUND = 30 + 30  # + the work left (32 photos on a shared 2-core machine) and start-up of a new worker


def _exactly_once(outcome) -> None:
    assert outcome.state == "completed", outcome.as_dict()
    assert outcome.stored == outcome.succeeded == outcome.expected, outcome.as_dict()
    assert outcome.duplicates == 0 and outcome.api_counts_match, outcome.as_dict()


def test_sigkilled_only_worker_restarted_finishes_the_job_without_waiting_for_the_deadline(
    fault_setup, pg_url, redis_url
):
    outcome = liveness.worker_killed(fault_setup, pg_url, redis_url, point="decoding")
    assert outcome.notes["running_at_kill"] > 0, outcome.as_dict()  # the kill left claimed rows behind
    _exactly_once(outcome)
    assert outcome.notes["recovery_seconds"] < RECOVERY_BOUND, outcome.as_dict()


def test_two_workers_one_sigkilled_the_survivor_finishes(fault_setup, pg_url, redis_url):
    outcome = liveness.worker_killed(fault_setup, pg_url, redis_url, point="writing", survivor=True)
    assert outcome.notes["running_at_kill"] > 0, outcome.as_dict()
    _exactly_once(outcome)
    assert outcome.notes["recovery_seconds"] < RECOVERY_BOUND, outcome.as_dict()


def test_a_cancel_while_a_dead_workers_chunk_waits_ends_cancelled(fault_setup, pg_url, redis_url):
    outcome = liveness.worker_killed(fault_setup, pg_url, redis_url, point="decoding", survivor=True, cancel=True)
    assert outcome.notes["running_at_kill"] > 0, outcome.as_dict()
    assert outcome.state == "cancelled" and outcome.duplicates == 0, outcome.as_dict()
    assert outcome.notes["recovery_seconds"] < RECOVERY_BOUND, outcome.as_dict()


def test_sigkilled_worker_on_the_embedded_default_recovers_too(fault_setup):
    outcome = liveness.worker_killed(fault_setup, "", "", point="decoding", name="liveness_embedded")
    _exactly_once(outcome)
    assert outcome.notes["recovery_seconds"] < RECOVERY_BOUND, outcome.as_dict()


def test_sigterm_hands_the_workers_chunks_back_at_once(fault_setup, pg_url, redis_url):
    outcome = liveness.worker_terminated(fault_setup, pg_url, redis_url)
    print(f"SIGTERM to exit: {outcome.notes['exit_seconds']} s; rows at exit: {outcome.notes['after_exit']}")
    after = outcome.notes["after_exit"]
    assert outcome.notes["exit_code"] == 0, outcome.as_dict()
    assert after.get("running", 0) == 0 and after.get("pending", 0) > 0, outcome.as_dict()
    assert outcome.notes["workers_after_exit"] == 0, outcome.as_dict()  # its heartbeat row is gone
    _exactly_once(outcome)

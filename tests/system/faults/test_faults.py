"""Faults injected into real API, worker, Redis and PostgreSQL processes mid-job: nothing lost or doubled."""

import pytest

from tests.harness import faults, outages

pytestmark = [pytest.mark.e2e, pytest.mark.faults]


def _assert_exactly_once(outcome: faults.Outcome) -> None:
    assert outcome.state == "completed", outcome.as_dict()
    assert outcome.stored == outcome.expected, outcome.as_dict()
    assert outcome.duplicates == 0, outcome.as_dict()
    assert outcome.api_counts_match, outcome.as_dict()
    # Polls may meet a 503 while a service restarts (shared machine), never a 500.
    assert not set(outcome.notes.get("poll_status", {})) - {"503"}, outcome.as_dict()


def test_worker_sigkilled_mid_chunk_is_redelivered_and_finished_by_another_worker(fault_setup, pg_url, redis_url):
    outcome = faults.worker_sigkill(fault_setup, pg_url, redis_url)
    assert outcome.notes["running_at_kill"] > 0  # the kill really interrupted a claimed chunk
    _assert_exactly_once(outcome)
    assert outcome.succeeded == outcome.expected


def test_redis_restarted_mid_job_with_append_only_persistence_loses_nothing(fault_setup, pg_url):
    outcome = outages.redis_restart(fault_setup, pg_url)
    _assert_exactly_once(outcome)
    assert outcome.succeeded == outcome.expected


def test_acknowledgements_lost_with_redis_make_the_worker_reconnect_and_take_the_rest(fault_setup, pg_url):
    outcome = outages.redis_down_while_chunks_finish(fault_setup, pg_url, images=48, chunk=16)
    # Both chunks in flight committed while Redis was away, so both acknowledgements were lost.
    assert outcome.notes["ok_at_stop"] == 0, outcome.as_dict()
    assert outcome.notes["ok_while_down"] == 32, outcome.as_dict()
    _assert_exactly_once(outcome)
    assert outcome.succeeded == outcome.expected


def test_a_chunk_message_lost_by_the_broker_is_resent_by_the_sweeper(fault_setup, pg_url):
    outcome = outages.redis_loses_a_message(fault_setup, pg_url, images=32, orphan_after=5)
    assert outcome.notes["dropped_chunk"] is not None  # a message really was taken away
    _assert_exactly_once(outcome)
    assert outcome.succeeded == outcome.expected
    assert outcome.notes["resends"] == 1, outcome.as_dict()  # the sweeper's resend brought it back


def test_postgres_restarted_mid_job_api_answers_503_quickly_and_the_job_completes(fault_setup, redis_url):
    outcome = outages.postgres_restart(fault_setup, redis_url)
    down = outcome.notes["while_down"]
    assert down["status_codes"] == [503], down
    assert down["slowest_seconds"] < 10, down
    assert "unavailable" in down["detail"], down
    _assert_exactly_once(outcome)
    assert outcome.succeeded == outcome.expected


def test_a_hung_worker_chunk_is_requeued_after_its_deadline(fault_setup, pg_url, redis_url):
    outcome = faults.worker_hang(fault_setup, pg_url, redis_url, attempts=3)
    assert outcome.notes["running_at_hang"] > 0
    _assert_exactly_once(outcome)
    assert outcome.succeeded == outcome.expected and outcome.notes["timed_out"] == 0


def test_a_chunk_out_of_attempts_is_failed_as_timed_out_and_the_job_still_ends(fault_setup, pg_url, redis_url):
    outcome = faults.worker_hang(fault_setup, pg_url, redis_url, attempts=1)
    _assert_exactly_once(outcome)
    assert outcome.notes["timed_out"] == outcome.notes["running_at_hang"] > 0
    assert outcome.failed == outcome.notes["timed_out"]
    assert outcome.succeeded == outcome.expected - outcome.failed

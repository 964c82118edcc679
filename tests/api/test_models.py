"""Model and evaluation routes over real HTTP (no worker): list, detail, model=<name>[:version], delete refused
while in use, evaluations checked against the model's classes; and tenants kept apart."""

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from imagebatch.db.keys import create_key
from imagebatch.db.session import make_engine
from tests.api.conftest import Api, start_api
from tests.api.helpers import image_rows
from tests.api.labelled_sets import folder_zip, register_model

URL = ["https://example.com/a.jpg"]


def test_models_lists_builtins_then_each_custom_version(api):
    register_model(api.engine, "listed", ["cat", "dog"])
    register_model(api.engine, "listed", ["cat", "dog", "eel"])
    items = api.client.get("/v1/models").json()["items"]
    assert [(i["ref"], i["builtin"]) for i in items[:2]] == [("resnet18", True), ("resnet50", True)]
    listed = [i for i in items if i["name"] == "listed"]
    assert [(i["ref"], i["latest"], i["num_classes"]) for i in listed] == [
        ("listed:2", True, 3),
        ("listed:1", False, 2),
    ]
    detail = api.client.get("/v1/models/listed").json()
    assert (detail["ref"], detail["classes"], [v["ref"] for v in detail["versions"]]) == (
        "listed:2",
        ["cat", "dog", "eel"],
        ["listed:2", "listed:1"],
    )
    assert detail["history"][0]["epoch"] == 1 and detail["latest_evaluation"] is None
    assert api.client.get("/v1/models/listed:1").json()["latest"] is False
    builtin = api.client.get("/v1/models/resnet50").json()
    assert (builtin["embedding_dim"], len(builtin["classes"]), builtin["classes"][0]) == (2048, 1000, "tench")
    for missing in ("nothing", "listed:7", "bad name"):
        assert api.client.get(f"/v1/models/{missing}").status_code == 404


def test_a_job_resolves_its_custom_model_at_submission_and_routes_to_the_base_queue(api):
    register_model(api.engine, "routed", ["cat", "dog"])
    register_model(api.engine, "routed", ["cat", "dog"])
    latest = api.client.post("/v1/jobs", json={"uris": URL, "model": "routed"}).json()
    pinned = api.client.post("/v1/jobs", json={"uris": URL, "model": "routed:1"}).json()
    assert (latest["model"], latest["model_version"], latest["base_model"], latest["kind"]) == (
        "routed",
        2,
        "resnet18",
        "classify",
    )
    assert pinned["model_version"] == 1
    queued = [args[0] for _task, args in api.messages("imagebatch.resnet18")]
    assert {latest["id"], pinned["id"]} <= set(queued)
    for ref, fragment in (("routed:3", "no version 3 of custom model 'routed'"), ("ghost", "no custom model 'ghost'")):
        response = api.client.post("/v1/jobs", json={"uris": URL, "model": ref})
        assert response.status_code == 422 and fragment in response.json()["detail"]


def test_deleting_a_model_is_refused_while_a_job_uses_it(api):
    register_model(api.engine, "busy", ["cat", "dog"])
    job = api.client.post("/v1/jobs", json={"uris": URL, "model": "busy"}).json()
    refused = api.client.delete("/v1/models/busy")
    assert refused.status_code == 409 and "busy:1 is used by a queued or running job" in refused.json()["detail"]
    api.client.post(f"/v1/jobs/{job['id']}/cancel")
    assert api.client.delete("/v1/models/busy:1").status_code == 204
    assert api.client.get("/v1/models/busy").status_code == 404
    assert api.client.delete("/v1/models/busy").status_code == 404
    assert api.client.delete("/v1/models/resnet18").status_code == 409
    assert register_model(api.engine, "busy", ["cat", "dog"]) == 2  # the number is not handed out again


def test_an_evaluation_is_a_labelled_job_checked_against_the_models_classes(api):
    register_model(api.engine, "judged", ["cat", "dog"])
    archive = folder_zip({"cat": 2, "dog": 1})
    response = api.client.post("/v1/evaluations", files={"archive": ("e.zip", archive)}, data={"model": "judged"})
    assert response.status_code == 202, response.text
    evaluation = response.json()
    assert (evaluation["kind"], evaluation["model"], evaluation["top_k"], evaluation["metrics"]) == (
        "evaluate",
        "judged",
        5,
        None,
    )
    assert [(r.source, r.true_label) for r in image_rows(api, evaluation["id"])] == [
        ("cat/000.png", "cat"),
        ("cat/001.png", "cat"),
        ("dog/000.png", "dog"),
    ]
    items = api.client.get(f"/v1/jobs/{evaluation['id']}/results").json()["items"]
    assert [i["true_label"] for i in items] == ["cat", "cat", "dog"]
    assert api.client.get(f"/v1/evaluations/{evaluation['id']}").json()["counts"]["total"] == 3
    classify = api.client.post("/v1/jobs", json={"uris": URL}).json()
    assert api.client.get(f"/v1/evaluations/{classify['id']}").status_code == 404


@pytest.mark.parametrize(
    "model, classes, fragment",
    [
        ("judged", {"cat": 1, "emu": 1, "yak": 1}, "class 'emu' is not a class of model judged:"),
        ("resnet18", {"tabby": 1, "sofa bed": 1}, "class 'sofa bed' is not a class of model resnet18"),
        (None, {"cat": 1}, "model: required"),
    ],
)
def test_evaluation_classes_must_be_the_models(api, model, classes, fragment):
    register_model(api.engine, "judged", ["cat", "dog"])
    data = {"model": model} if model else {}
    response = api.client.post("/v1/evaluations", files={"archive": ("e.zip", folder_zip(classes))}, data=data)
    assert response.status_code == 422 and fragment in response.json()["detail"], response.text


@pytest.fixture(scope="module")
def auth_api(tmp_path_factory) -> Iterator[tuple[Api, dict[str, str]]]:
    """The API with keys on (SQLite): two tenants' keys."""
    server = start_api(
        tmp_path_factory.mktemp("api-tenants"),
        database_url=None,
        redis_url=None,
        extra_env={"IMAGEBATCH_AUTH_ENABLED": "true"},
    )
    server.engine = make_engine(server.database_url)
    server.client.get("/readyz")  # the API has migrated by the time it answers
    with Session(server.engine) as session:
        keys = {tenant: create_key(session, tenant=tenant).secret for tenant in ("acme", "umbrella")}
        session.commit()
    yield server, keys
    server.stop()


def test_tenants_see_only_their_own_training_jobs_and_models(auth_api):
    api, keys = auth_api
    acme, umbrella = ({"Authorization": f"Bearer {keys[t]}"} for t in ("acme", "umbrella"))
    archive = folder_zip({"a": 1, "b": 1})
    trained = api.client.post(
        "/v1/training-jobs", files={"archive": ("s.zip", archive)}, data={"name": "secret"}, headers=acme
    ).json()
    register_model(api.engine, "secret", ["a", "b"], tenant="acme")
    for method, path in (
        ("GET", f"/v1/training-jobs/{trained['id']}"),
        ("POST", f"/v1/training-jobs/{trained['id']}/cancel"),
        ("DELETE", f"/v1/training-jobs/{trained['id']}"),
        ("GET", "/v1/models/secret"),
        ("DELETE", "/v1/models/secret"),
    ):
        assert api.client.request(method, path, headers=umbrella).status_code == 404, (method, path)
    assert api.client.get("/v1/training-jobs", headers=umbrella).json()["items"] == []
    assert "secret" not in {i["name"] for i in api.client.get("/v1/models", headers=umbrella).json()["items"]}
    refused = api.client.post("/v1/jobs", json={"uris": URL, "model": "secret"}, headers=umbrella)
    assert refused.status_code == 422
    assert api.client.get("/v1/models/secret", headers=acme).json()["ref"] == "secret:1"
    assert api.client.get("/v1/models").status_code == 401

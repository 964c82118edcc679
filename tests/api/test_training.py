"""Training-job routes over real HTTP (no worker): submission, the quick class check, list, cancel, delete."""

import json

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from imagebatch.db.models import TrainingJob
from tests.api.labelled_sets import folder_tar, folder_zip, png

OPTIONS = {"name": "colours", "mode": "scratch", "epochs": "2", "image_size": "32"}


def _train(api, archive: bytes, filename: str = "set.zip", **fields):
    return api.client.post("/v1/training-jobs", files={"archive": (filename, archive)}, data={**OPTIONS, **fields})


def _training_rows(api) -> int:
    with Session(api.engine) as session:
        return session.scalar(select(func.count()).select_from(TrainingJob))


def _training_blobs(api) -> set[str]:
    root = api.blobs / "training"
    return {p.name for p in root.iterdir()} if root.exists() else set()


def test_an_imagefolder_archive_becomes_a_queued_training_job(api):
    archive = folder_zip({"red": 3, "blue": 2}, extra={"README.txt": b"notes", "red/.DS_Store": b"x"})
    response = _train(api, archive, seed="7", augment="false")
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/training-jobs/{job['id']}"
    assert (job["state"], job["name"], job["mode"], job["base_model"]) == ("queued", "colours", "scratch", "resnet18")
    assert (job["classes"], job["image_count"], job["epochs"], job["model"]) == (["blue", "red"], 5, [], None)
    assert job["options"]["seed"] == 7 and job["options"]["augment"] is False and job["options"]["batch_size"] == 32
    assert {s["source"] for s in job["skipped"]} == {"README.txt", "red/.DS_Store"}
    assert api.messages("imagebatch.train")[-1:] == [("imagebatch.train_model", [job["id"]])]
    manifest = json.loads((api.blobs / "training" / job["id"] / "manifest.json").read_text())
    assert manifest["classes"] == ["blue", "red"]
    assert sorted(f["path"] for f in manifest["files"]) == ["blue/000.png", "blue/001.png"] + [
        f"red/{i:03d}.png" for i in range(3)
    ]
    assert api.client.get(f"/v1/training-jobs/{job['id']}").json()["timestamps"]["queued"]


def test_a_tar_with_a_wrapper_folder_and_uris_with_labels_are_accepted(api):
    assert _train(api, folder_tar({"a": 2, "b": 2}), "set.tar.gz").json()["classes"] == ["a", "b"]
    for i in range(4):
        (api.roots / f"{i}.png").write_bytes(png(i))
    uris = [str(api.roots / f"{i}.png") for i in range(4)]
    response = api.client.post("/v1/training-jobs", json={"uris": uris, "labels": ["x", "y", "x", "y"], "name": "xy"})
    assert response.status_code == 202, response.text
    manifest = json.loads((api.blobs / "training" / response.json()["id"] / "manifest.json").read_text())
    assert [f["path"] for f in manifest["files"]] == ["x/000000.png", "y/000001.png", "x/000002.png", "y/000003.png"]


@pytest.mark.parametrize(
    "archive, fields, fragment",
    [
        (folder_zip({"red": 3}), {}, "at least 2 classes (one folder per class) in the training set, found only 'red'"),
        (folder_zip({"red": 3, "blue": 2}, dirs=("green",)), {}, "without an image in the training set: 'green'"),
        (b"this is not an archive", {}, "is not a zip or tar archive"),
        (folder_zip({"red": 1, "blue": 1}), {"name": "resnet18"}, "name: 'resnet18' is a built-in model"),
        (folder_zip({"red": 1, "blue": 1}), {"epochs": "0"}, "epochs"),
        (folder_zip({"red": 1, "blue": 1}), {"mode": "magic"}, "mode"),
        (folder_zip({"red": 1, "blue": 1}), {"colour": "red"}, "unknown form field 'colour'"),
    ],
)
def test_bad_training_sets_are_refused_naming_the_problem_and_leave_nothing(api, archive, fields, fragment):
    rows, blobs = _training_rows(api), _training_blobs(api)
    response = _train(api, archive, **fields)
    assert response.status_code == 422 and fragment in response.json()["detail"], response.text
    assert (_training_rows(api), _training_blobs(api)) == (rows, blobs)


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"uris": ["/a.png"], "labels": ["x", "y"], "name": "n"}, "same length"),
        ({"uris": ["/a.png"], "labels": ["a/b"], "name": "n"}, "labels[0]: 'a/b' cannot be a folder name"),
        ({"uris": ["https://example.com/a.png"], "name": "n"}, '"uris" and "labels"'),
    ],
)
def test_bad_uri_sets_are_refused(api, body, fragment):
    response = api.client.post("/v1/training-jobs", json=body)
    assert response.status_code == 422 and fragment in response.json()["detail"], response.text


def test_list_cancel_and_delete(api):
    first = _train(api, folder_zip({"a": 1, "b": 1})).json()
    second = _train(api, folder_zip({"a": 1, "b": 1})).json()
    page = api.client.get("/v1/training-jobs", params={"limit": 1}).json()
    assert [item["id"] for item in page["items"]] == [second["id"]] and page["next_cursor"]
    rest = api.client.get("/v1/training-jobs", params={"limit": 1, "cursor": page["next_cursor"]}).json()
    assert rest["items"][0]["id"] == first["id"] and rest["items"][0]["dataset"] is None
    cancelled = api.client.post(f"/v1/training-jobs/{first['id']}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["state"] == "cancelled"
    assert api.client.post(f"/v1/training-jobs/{first['id']}/cancel").status_code == 409
    assert api.client.get("/v1/training-jobs", params={"state": "cancelled"}).json()["items"][0]["id"] == first["id"]
    assert api.client.delete(f"/v1/training-jobs/{second['id']}").status_code == 204
    assert api.client.get(f"/v1/training-jobs/{second['id']}").status_code == 404
    assert not (api.blobs / "training" / second["id"]).exists()
    assert api.client.get("/v1/training-jobs", params={"state": "sideways"}).status_code == 422


def test_an_archive_of_train_and_val_folders_brings_its_own_validation_set(api):
    classes = {"set/train/red": 3, "set/train/blue": 2, "set/val/red": 1, "set/val/blue": 2}
    response = _train(api, folder_zip(classes, extra={"set/train/loose.png": png()}), val_fraction="0.5")
    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["classes"], job["image_count"]) == (["blue", "red"], 8)
    assert [s["source"] for s in job["skipped"]] == ["set/train/loose.png"]
    manifest = json.loads((api.blobs / "training" / job["id"] / "manifest.json").read_text())
    assert (manifest["format"], manifest["classes"]) == (2, ["blue", "red"])
    assert sorted(f["path"] for f in manifest["files"]) == ["blue/000.png", "blue/001.png"] + [
        f"red/{i:03d}.png" for i in range(3)
    ]
    assert sorted(f["path"] for f in manifest["val_files"]) == ["blue/000.png", "blue/001.png", "red/000.png"]
    locations = [f["location"] for f in manifest["files"] + manifest["val_files"]]
    assert len(set(locations)) == 8
    plain = _train(api, folder_zip({"red": 2, "blue": 2})).json()
    assert "val_files" not in json.loads((api.blobs / "training" / plain["id"] / "manifest.json").read_text())


@pytest.mark.parametrize(
    "classes, dirs, fragment",
    [
        ({"train/red": 2, "train/blue": 2, "val/red": 1}, (), "class(es) missing from val/: 'blue'"),
        ({"train/red": 2, "train/blue": 2, "validation/red": 1}, (), "missing from validation/: 'blue'"),
        ({"train/red": 2, "train/blue": 2, "val/red": 1}, ("val/blue/",), "without an image in val/: 'blue'"),
        ({"train/red": 2, "train/blue": 2, "val/red": 1, "val/blue": 1, "val/green": 1}, (), "not in train/: 'green'"),
        ({"train/red": 2, "val/red": 1}, (), "at least 2 classes (one folder per class) in train/, found only 'red'"),
        ({"train/red": 2, "train/blue": 1, "val/red": 1, "val/blue": 1}, ("train/green/",), "in train/: 'green'"),
    ],
)
def test_a_given_validation_folder_must_have_the_training_classes(api, classes, dirs, fragment):
    rows, blobs = _training_rows(api), _training_blobs(api)
    response = _train(api, folder_zip(classes, dirs=dirs))
    assert response.status_code == 422 and fragment in response.json()["detail"], response.text
    assert (_training_rows(api), _training_blobs(api)) == (rows, blobs)


def test_a_labelled_form_is_read_by_the_jobs_multipart_reader_with_its_limits(api):
    archive = folder_zip({"red": 1, "blue": 1})
    twice = [("archive", ("a.zip", archive)), ("archive", ("b.zip", archive))]
    long_name = [("archive", ("x" * 1100 + ".zip", archive))]
    text = [("archive", (None, "not a file"))]
    cases = [(twice, 422, "archive: send one archive per request"), (text, 422, "archive: must be a file upload")]
    cases.append((long_name, 400, "longer than 1024 characters (IMAGEBATCH_MAX_FILENAME_LENGTH)"))
    for files, status, fragment in cases:
        response = api.client.post("/v1/training-jobs", files=files, data=OPTIONS)
        assert response.status_code == status and fragment in response.json()["detail"], response.text
    nameless = api.client.post(
        "/v1/evaluations",
        content=b"--B\r\nContent-Disposition: form-data\r\n\r\nx\r\n--B--\r\n",
        headers={"content-type": "multipart/form-data; boundary=B"},
    )
    assert nameless.status_code == 400 and "has no name" in nameless.json()["detail"], nameless.text

"""A worker quantizes a model once: the cache hands back the stored artefact for the same key."""

import hashlib
import json
from pathlib import Path

import pytest

from imagebatch.worker.modeltools.calibration import CalibrationSet, calibration_set
from imagebatch.worker.modeltools.int8 import DEFAULT_ENGINE, engine_class
from imagebatch.worker.modeltools.int8_cache import META, CacheKey, cached_quantize
from tests.harness.photosets import calibration_photos


@pytest.fixture(scope="module")
def calibration(resnet18, tmp_path_factory: pytest.TempPathFactory) -> CalibrationSet:
    """A small set in two batches: the cache's behaviour does not depend on its size, quantizing time does."""
    photos = calibration_photos(tmp_path_factory.mktemp("calibration"))[:16]
    return calibration_set(photos, resnet18.transform, batch_size=8)


@pytest.fixture
def quantize_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts real quantizations of the default engine (each call still runs the engine)."""
    calls: list[str] = []
    engine = engine_class(DEFAULT_ENGINE)
    original = engine.quantize.__func__

    def counting(cls, net, batches, recipe):
        calls.append(cls.engine)
        return original(cls, net, batches, recipe)

    monkeypatch.setattr(engine, "quantize", classmethod(counting))
    return calls


def digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def cached(resnet18, calibration: CalibrationSet, root: Path):
    return cached_quantize(
        resnet18.net, calibration, model_name="resnet18", weights_sha256=resnet18.weights_sha256, root=root
    )


def test_second_request_loads_the_stored_artefact(resnet18, calibration, quantize_calls, tmp_path: Path) -> None:
    first = cached(resnet18, calibration, tmp_path)
    stored = digest(first.path)
    second = cached(resnet18, calibration, tmp_path)
    assert (first.hit, second.hit) == (False, True)
    assert quantize_calls == [DEFAULT_ENGINE]
    assert second.path == first.path and digest(second.path) == stored
    assert first.path.parent == tmp_path / "resnet18"
    assert first.path.name.startswith(f"{resnet18.weights_sha256[:16]}-{DEFAULT_ENGINE}-{calibration.sha256[:16]}-")
    meta = json.loads((first.path / META).read_text())
    assert meta["key"]["weights_sha256"] == resnet18.weights_sha256
    assert meta["key"]["calibration_sha256"] == calibration.sha256
    assert len(meta["calibration_images"]) == calibration.size
    x = calibration.batches[0][:4]
    for a, b in zip(first.model(x), second.model(x), strict=True):
        assert (a - b).abs().max() <= 1e-4


def test_other_calibration_or_weights_make_a_new_entry(resnet18, calibration, quantize_calls, tmp_path: Path) -> None:
    first = cached(resnet18, calibration, tmp_path)
    fewer = CalibrationSet(calibration.batches[:1], "0" * 64, calibration.sources[:8])
    other_calibration = cached(resnet18, fewer, tmp_path)
    other_weights = cached_quantize(
        resnet18.net, calibration, model_name="resnet18", weights_sha256="f" * 64, root=tmp_path
    )
    paths = {first.path, other_calibration.path, other_weights.path}
    assert len(paths) == 3 and not other_calibration.hit and not other_weights.hit
    assert len(quantize_calls) == 3


def test_damaged_entry_is_quantized_again(resnet18, calibration, quantize_calls, tmp_path: Path) -> None:
    first = cached(resnet18, calibration, tmp_path)
    artefact = first.path / engine_class(DEFAULT_ENGINE).artefact
    artefact.write_bytes(b"truncated")
    again = cached(resnet18, calibration, tmp_path)
    assert not again.hit and len(quantize_calls) == 2
    assert artefact.stat().st_size > 1000
    assert cached(resnet18, calibration, tmp_path).hit


def test_the_recipe_is_part_of_the_key() -> None:
    """One cache volume may serve workers on CPUs with and without VNNI, which ONNX Runtime quantizes differently."""
    keys = [CacheKey.of("resnet18", "a" * 64, "onnxruntime", "b" * 64, {"reduce_range": r}) for r in (False, True)]
    assert keys[0].entry_name() != keys[1].entry_name()
    assert keys[1].as_json()["recipe"] == {"reduce_range": True}

"""Real labelled images offline: a ResNet-18 from scratch learns the UCI digits, and serves them back once saved."""

import time

import numpy as np
import pytest
import torch
from PIL import Image

from imagebatch.worker.devices import detect_capabilities
from imagebatch.worker.preprocess import NumpyNormalize
from imagebatch.worker.training import TrainingConfig, load_custom_model, prepare_dataset, train
from imagebatch.worker.training.digits import DigitsFolders, digit_image
from imagebatch.worker.training.trainer import training_precision

# Digits are not mirror-symmetric: crops only. Three epochs reach ~0.96 on the 360 held-out digits.
CONFIG = TrainingConfig(mode="scratch", epochs=3, batch_size=64, image_size=32, learning_rate=0.002, augment=False)


@pytest.fixture(scope="module")
def trained(digits: DigitsFolders, tmp_path_factory: pytest.TempPathFactory):
    epochs: list[dict] = []
    started = time.perf_counter()
    dataset = prepare_dataset(digits.train, CONFIG, val_source=digits.test)
    result = train(dataset, CONFIG, output_dir=tmp_path_factory.mktemp("digits_model"), on_epoch=epochs.append)
    return result, dataset, epochs, time.perf_counter() - started


def test_resnet18_from_scratch_learns_the_digits_in_a_few_epochs(trained) -> None:
    result, dataset, epochs, seconds = trained
    assert (len(dataset.train), len(dataset.val)) == (1437, 360)
    assert dataset.report.skipped == [] and dataset.report.warnings == []
    assert result.status == "completed"
    assert [set(e) for e in epochs] == [
        {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"}
    ] * 3
    assert epochs == result.history
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert result.meta["best"]["val_accuracy"] > 0.8  # chance is 0.1
    assert result.meta["evaluation"]["top1_accuracy"] == result.meta["best"]["val_accuracy"]
    assert result.meta["evaluation"]["top5_accuracy"] > 0.95
    assert seconds < 150


def test_the_saved_model_records_how_it_was_made(trained) -> None:
    result, dataset, _, _ = trained
    meta = result.meta
    assert meta["classes"] == [str(d) for d in range(10)]
    assert (meta["architecture"], meta["mode"], meta["base_weights"]) == ("resnet18", "scratch", None)
    assert meta["preprocessing"] == {
        "image_size": 32,
        "resize_size": 36,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "interpolation": "bilinear",
    }
    assert meta["hyperparameters"] == CONFIG.to_dict() and meta["seed"] == CONFIG.seed
    assert meta["dataset"]["sha256"] == dataset.sha256 and len(dataset.sha256) == 64
    assert meta["split"]["method"] == "given" and len(meta["split"]["val_files"]) == 360
    expected = training_precision("auto", "cpu", detect_capabilities(), 32)
    assert meta["precision"]["resolved"] == expected.resolved == result.precision.resolved
    assert {"torch", "torchvision", "pillow", "numpy", "python"} <= set(meta["versions"])
    confusion = meta["evaluation"]["confusion_matrix"]
    assert confusion["classes"] == meta["classes"] and sum(map(sum, confusion["rows"])) == 360


def test_the_saved_model_classifies_the_original_files_like_the_service_would(trained, digits: DigitsFolders) -> None:
    result = trained[0]
    net, transform, classes, meta = load_custom_model(result.model_dir)
    # The inference side's own preprocessing (worker/preprocess.py) takes this transform like weights.transforms().
    service = NumpyNormalize(transform)
    files = sorted(digits.test.rglob("*.png"))
    batch = []
    for path in files:
        with Image.open(path) as image:
            tensor = transform(image.convert("RGB"))
            torch.testing.assert_close(service(image.convert("RGB")), tensor, atol=1e-5, rtol=0)
            batch.append(tensor)
    with torch.inference_mode():
        logits, embedding = net(torch.stack(batch))
    predicted = [classes[i] for i in logits.argmax(1).tolist()]
    accuracy = sum(p == path.parent.name for p, path in zip(predicted, files, strict=True)) / len(files)
    # fp32 here against the run's autocast evaluation: a handful of borderline digits may flip.
    assert accuracy == pytest.approx(meta["evaluation"]["top1_accuracy"], abs=0.02)
    assert embedding.shape == (len(files), 512)


def test_digit_images_are_dark_ink_on_white_rgb() -> None:
    pixels = np.zeros((8, 8))
    pixels[2:6, 3:5] = 16
    image = digit_image(pixels, 32)
    assert image.mode == "RGB" and image.size == (32, 32)
    assert image.getpixel((0, 0)) == (255, 255, 255) and image.getpixel((16, 16)) == (0, 0, 0)

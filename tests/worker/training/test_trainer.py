"""The training loop on real tiny data: resume equals an uninterrupted run, cancel, modes, early stopping."""

import hashlib
from pathlib import Path

import pytest
import torch
import torchvision

from imagebatch.worker.models import ResNetWithEmbedding
from imagebatch.worker.training import (
    CheckpointMismatch,
    CustomModelError,
    TrainingConfig,
    load_custom_model,
    prepare_dataset,
    train,
)
from imagebatch.worker.training.digits import DigitsFolders
from imagebatch.worker.training.model import build_network, parameter_groups

TINY = TrainingConfig(mode="scratch", epochs=3, batch_size=16, image_size=32, learning_rate=0.002, seed=5)


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(model_dir / "model.pt", weights_only=True)


def _without_seconds(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in history]


@pytest.fixture(scope="module")
def tiny_set(tiny_digits: DigitsFolders):
    return prepare_dataset(tiny_digits.train, TINY, val_source=tiny_digits.test)


def test_resume_after_a_crash_gives_the_uninterrupted_result(tiny_set, tmp_path: Path) -> None:
    whole = train(tiny_set, TINY, output_dir=tmp_path / "whole", checkpoint_dir=tmp_path / "whole-ckpt")

    reported, calls = [], []

    def crash_in_epoch_3() -> bool:
        if len(reported) == 2:
            calls.append(1)
            if len(calls) == 2:  # mid-epoch: the first batch of epoch 3 has already changed the weights
                raise RuntimeError("worker killed")
        return False

    with pytest.raises(RuntimeError, match="worker killed"):
        train(
            tiny_set,
            TINY,
            output_dir=tmp_path / "out",
            checkpoint_dir=tmp_path / "ckpt",
            on_epoch=reported.append,
            should_cancel=crash_in_epoch_3,
        )
    assert [e["epoch"] for e in reported] == [1, 2] and not (tmp_path / "out" / "model.pt").exists()

    after: list[dict] = []
    resumed = train(
        tiny_set, TINY, output_dir=tmp_path / "out", checkpoint_dir=tmp_path / "ckpt", on_epoch=after.append
    )
    assert [e["epoch"] for e in after] == [3]
    assert resumed.meta["resumed_after_epochs"] == [2]
    assert _without_seconds(resumed.history) == _without_seconds(whole.history)
    assert resumed.best_epoch == whole.best_epoch
    assert resumed.meta["evaluation"] == whole.meta["evaluation"]
    expected, got = _weights(tmp_path / "whole"), _weights(tmp_path / "out")
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[key], got[key]) for key in expected)


def test_cancel_stops_at_the_next_batch_and_saves_no_model(tiny_set, tmp_path: Path) -> None:
    calls = []

    def cancel_on_third_check() -> bool:
        calls.append(1)
        return len(calls) >= 3

    result = train(
        tiny_set,
        TINY,
        output_dir=tmp_path / "out",
        checkpoint_dir=tmp_path / "ckpt",
        should_cancel=cancel_on_third_check,
    )
    assert result.status == "cancelled"
    assert len(calls) == 3
    assert result.history == [] and result.meta is None and result.model_dir is None
    assert not (tmp_path / "out").exists() and not (tmp_path / "ckpt" / "last.pt").exists()


def test_a_checkpoint_of_another_run_is_refused(tiny_set, tmp_path: Path) -> None:
    one_epoch = TrainingConfig(**{**TINY.to_dict(), "epochs": 1})
    train(tiny_set, one_epoch, output_dir=tmp_path / "a", checkpoint_dir=tmp_path / "ckpt")
    other = TrainingConfig(**{**one_epoch.to_dict(), "learning_rate": 0.01})
    with pytest.raises(CheckpointMismatch, match="other options, classes or images"):
        train(tiny_set, other, output_dir=tmp_path / "b", checkpoint_dir=tmp_path / "ckpt")


def _base_resnet18() -> ResNetWithEmbedding:
    return ResNetWithEmbedding(torchvision.models.resnet18(weights=torchvision.models.ResNet18_Weights.IMAGENET1K_V1))


def test_transfer_changes_only_the_head(tiny_digits: DigitsFolders, pretrained: Path, tmp_path: Path) -> None:
    config = TrainingConfig(mode="transfer", epochs=1, batch_size=16, image_size=32, learning_rate=0.01)
    dataset = prepare_dataset(tiny_digits.train, config, val_source=tiny_digits.test)
    result = train(dataset, config, output_dir=tmp_path / "out")
    trained, base = _weights(tmp_path / "out"), _base_resnet18().state_dict()
    backbone = [key for key in trained if key.startswith("features.")]
    # Weights and BatchNorm running statistics alike: a frozen backbone stays the base model's.
    assert backbone and all(torch.equal(trained[key], base[key]) for key in backbone)
    assert trained["fc.weight"].shape == (10, 512)
    assert result.meta["base_weights"]["file"] == pretrained.name
    assert result.meta["base_weights"]["sha256"] == hashlib.sha256(pretrained.read_bytes()).hexdigest()


def test_finetune_trains_the_backbone_at_a_lower_rate(
    tiny_digits: DigitsFolders, pretrained: Path, tmp_path: Path
) -> None:
    config = TrainingConfig(
        mode="finetune", epochs=1, batch_size=16, image_size=32, learning_rate=0.01, backbone_lr_factor=0.1
    )
    groups = parameter_groups(build_network(config, 10)[0], config)
    assert [(g["name"], g["lr"]) for g in groups] == [("backbone", pytest.approx(0.001)), ("head", 0.01)]
    dataset = prepare_dataset(tiny_digits.train, config, val_source=tiny_digits.test)
    train(dataset, config, output_dir=tmp_path / "out")
    trained, base = _weights(tmp_path / "out"), _base_resnet18().state_dict()
    assert not torch.equal(trained["features.0.weight"], base["features.0.weight"])


def test_early_stopping_ends_the_run_when_validation_accuracy_stalls(
    tiny_digits: DigitsFolders, pretrained: Path, tmp_path: Path
) -> None:
    # A learning rate this small leaves every prediction as it was: validation accuracy cannot improve.
    config = TrainingConfig(
        mode="transfer", epochs=6, batch_size=32, image_size=32, learning_rate=1e-9, early_stopping_patience=2
    )
    dataset = prepare_dataset(tiny_digits.train, config, val_source=tiny_digits.test)
    result = train(dataset, config, output_dir=tmp_path / "out")
    assert [e["epoch"] for e in result.history] == [1, 2, 3]
    assert result.stopped_early and result.best_epoch == 1
    assert result.meta["best"] == result.history[0]


def test_resnet50_from_scratch_saves_and_loads_with_its_2048_wide_embedding(tiny_digits, tmp_path: Path) -> None:
    config = TrainingConfig(base_model="resnet50", mode="scratch", epochs=1, batch_size=30, image_size=32)
    dataset = prepare_dataset(tiny_digits.train, config, val_source=tiny_digits.test)
    result = train(dataset, config, output_dir=tmp_path / "out")
    net, transform, classes, meta = load_custom_model(result.model_dir)
    assert classes == [str(d) for d in range(10)] and meta["base_weights"] is None
    assert (transform.resize_size, transform.crop_size) == ([int(32 * 232 / 224)], [32])
    logits, embedding = net(torch.zeros(2, 3, 32, 32))
    assert logits.shape == (2, 10) and embedding.shape == (2, 2048)


def test_a_tampered_or_incomplete_model_is_refused(tiny_set, tmp_path: Path) -> None:
    one_epoch = TrainingConfig(**{**TINY.to_dict(), "epochs": 1})
    model_dir = train(tiny_set, one_epoch, output_dir=tmp_path / "out").model_dir
    load_custom_model(model_dir / "model.pt")
    weights = bytearray((model_dir / "model.pt").read_bytes())
    weights[-100] ^= 0xFF
    (model_dir / "model.pt").write_bytes(bytes(weights))
    with pytest.raises(CustomModelError, match="SHA-256"):
        load_custom_model(model_dir)
    (model_dir / "model.json").unlink()
    with pytest.raises(CustomModelError, match="not a saved custom model"):
        load_custom_model(model_dir)

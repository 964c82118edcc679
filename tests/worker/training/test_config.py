"""Training options: defaults valid, every range checked with an actionable ValueError."""

import pytest

from imagebatch.worker.training import ConfigError, TrainingConfig


def test_defaults_are_valid_and_round_trip_through_a_dict() -> None:
    config = TrainingConfig()
    assert TrainingConfig.from_dict(config.to_dict()) == config
    assert config.pretrained and not TrainingConfig(mode="scratch").pretrained


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("base_model", "vgg16", "base_model must be one of resnet18, resnet50"),
        ("mode", "distill", "mode must be one of transfer, finetune, scratch"),
        ("epochs", 0, "epochs must be between 1 and 1000 (got 0)"),
        ("learning_rate", 0.0, "learning_rate must be above 0"),
        ("val_fraction", 1.0, "val_fraction must be above 0 and below 1 (got 1.0)"),
        ("image_size", 8, "image_size must be between 16 and 1024 pixels (got 8)"),
        ("precision", "int8", "precision must be auto, fp32, bf16 or fp16"),
    ],
)
def test_out_of_range_options_are_value_errors_saying_what_is_allowed(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        TrainingConfig(**{field: value})
    assert isinstance(caught.value, ValueError)


def test_unknown_or_mistyped_options_are_errors() -> None:
    with pytest.raises(ConfigError, match="unknown training option.*epoch, lr"):
        TrainingConfig.from_dict({"epoch": 3, "lr": 0.1})
    with pytest.raises(ConfigError):
        TrainingConfig.from_dict({"epochs": "ten"})


def test_auto_trains_small_images_in_fp32_where_bf16_would_be_slower():
    from imagebatch.worker.devices import Capabilities
    from imagebatch.worker.training.trainer import CPU_BF16_MIN_IMAGE_SIZE, training_precision

    bf16_cpu = Capabilities(cuda=False, cpu_bf16=True)
    small = training_precision("auto", "cpu", bf16_cpu, CPU_BF16_MIN_IMAGE_SIZE - 1)
    assert (small.resolved, "fp32 trains faster" in small.note) == ("fp32", True)
    assert training_precision("auto", "cpu", bf16_cpu, CPU_BF16_MIN_IMAGE_SIZE).resolved == "bf16"
    assert training_precision("bf16", "cpu", bf16_cpu, 32).resolved == "bf16"  # asked for: given
    assert training_precision("auto", "cpu", Capabilities(cuda=False), 224).resolved == "fp32"

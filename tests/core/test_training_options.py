"""Training options: one model in core whose fields are the engine's TrainingConfig, for every interface."""

import dataclasses
import inspect

import pytest
from pydantic import ValidationError

from imagebatch.client import Client
from imagebatch.core.catalog import MODELS, builtin_classes, parse_model_ref
from imagebatch.core.training import TrainingOptions
from imagebatch.worker.training import ConfigError, TrainingConfig


def test_the_options_are_the_engine_config_with_the_same_defaults():
    fields = {f.name: f.default for f in dataclasses.fields(TrainingConfig)}
    options = TrainingOptions(name="colours")
    assert options.hyperparameters() == fields
    assert TrainingConfig.from_dict(options.hyperparameters()) == TrainingConfig()


@pytest.mark.parametrize(
    "field, bad",
    [("epochs", 0), ("epochs", 1001), ("batch_size", 0), ("learning_rate", 0), ("image_size", 15), ("val_fraction", 1)],
)
def test_the_limits_are_the_engines(field, bad):
    with pytest.raises(ValidationError):
        TrainingOptions(name="x", **{field: bad})
    with pytest.raises(ConfigError):
        TrainingConfig(**{field: bad})


def test_form_values_are_coerced_and_names_checked():
    options = TrainingOptions.model_validate({"name": "my.model-2", "epochs": "3", "augment": "false"})
    assert (options.epochs, options.augment) == (3, False)
    for name in ("resnet18", "a/b", "", "x:1"):
        with pytest.raises(ValidationError):
            TrainingOptions(name=name)
    with pytest.raises(ValidationError, match="extra"):
        TrainingOptions.model_validate({"name": "a", "colour": "red"})


def test_the_python_client_takes_every_training_option():
    parameters = inspect.signature(Client.train).parameters
    assert set(TrainingOptions.model_fields) <= {n for n, p in parameters.items() if p.kind is p.KEYWORD_ONLY}


def test_model_references():
    assert (parse_model_ref("resnet50").builtin, str(parse_model_ref("colours:3"))) == (True, "colours:3")
    for bad in ("resnet18:1", "colours:0", "colours:x", "a b"):
        with pytest.raises(ValueError):
            parse_model_ref(bad)


def test_builtin_class_names_are_the_weights_own():
    import torchvision

    for spec in MODELS.values():
        weights = getattr(torchvision.models, spec.weights_enum)[spec.weights_member]
        assert list(builtin_classes(spec.name)) == weights.meta["categories"]

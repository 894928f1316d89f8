"""Building a local predictor: the CPU warning comes after a model loaded, never before; missing weights are said
before torch is even needed."""
from __future__ import annotations

import logging

import pytest

from avatarify.model.loader import CPU_WARNING, ModelOptions, create_predictor, predictor_factory
from avatarify.model.weights import WeightsNotFoundError

pytestmark = pytest.mark.slow


def test_missing_weights_say_so_without_a_cpu_warning(caplog) -> None:
    with caplog.at_level(logging.INFO), pytest.raises(WeightsNotFoundError):
        create_predictor(ModelOptions(device="cpu"))
    assert CPU_WARNING not in caplog.text


def test_the_cpu_warning_follows_a_loaded_model(caplog, small_checkpoint, small_config) -> None:
    with caplog.at_level(logging.INFO):
        predictor = create_predictor(ModelOptions(checkpoint=small_checkpoint, config=small_config, device="cpu", precision="fp32"))
    messages = [record.getMessage() for record in caplog.records]
    before = messages[: messages.index(CPU_WARNING)]
    assert messages.count(CPU_WARNING) == 1 and any(m.startswith("Model on cpu") for m in before)
    assert predictor.device_name == "cpu" and predictor.fast_path.startswith("fp32 decoder")


def test_a_factory_shares_one_model_among_predictors(small_checkpoint, small_config) -> None:
    make = predictor_factory(ModelOptions(checkpoint=small_checkpoint, config=small_config, device="cpu", precision="fp32"))
    first, second = make(), make()
    assert first is not second and first.model is second.model

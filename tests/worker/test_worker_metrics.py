"""The per-image statistics on distributions whose answers are known or computed by hand."""

import math

import numpy as np
import pytest
import torch

from imagebatch.worker.inference import entropy, margin, summarize, top_mean


def test_uniform_distribution_has_maximal_entropy_and_no_margin() -> None:
    probs = torch.full((1, 1000), 1 / 1000)
    assert entropy(probs).item() == pytest.approx(math.log(1000), abs=1e-4)
    assert margin(probs).item() == pytest.approx(0.0, abs=1e-9)
    assert top_mean(probs).item() == pytest.approx(1 / 1000, rel=1e-5)


def test_one_hot_distribution_has_zero_entropy() -> None:
    probs = torch.zeros(1, 1000)
    probs[0, 417] = 1.0
    assert entropy(probs).item() == 0.0  # 0·log 0 counts as 0, not NaN
    assert margin(probs).item() == 1.0
    assert top_mean(probs).item() == pytest.approx(0.2)


def test_hand_made_distribution_matches_independent_arithmetic() -> None:
    values = [0.05, 0.4, 0.0, 0.25, 0.1, 0.12, 0.08]
    probs = torch.tensor([values], dtype=torch.float32)
    expected_entropy = -sum(p * math.log(p) for p in values if p > 0)
    ordered = sorted(values, reverse=True)
    assert entropy(probs).item() == pytest.approx(expected_entropy, rel=1e-6)
    assert margin(probs).item() == pytest.approx(ordered[0] - ordered[1], rel=1e-6)
    assert top_mean(probs).item() == pytest.approx(sum(ordered[:5]) / 5, rel=1e-6)


def test_summarize_gives_ranked_labelled_topk_per_row() -> None:
    labels = [f"class-{i}" for i in range(6)]
    probs = torch.tensor([[0.1, 0.5, 0.05, 0.2, 0.12, 0.03], [0.7, 0.0, 0.1, 0.1, 0.05, 0.05]])
    embeddings = torch.arange(8, dtype=torch.float32).reshape(2, 4)
    first, second = summarize(probs, embeddings, labels, top_k=3, keep_probabilities=False)
    assert [t["index"] for t in first.topk] == [1, 3, 4]
    assert first.topk[0] == {"index": 1, "label": "class-1", "probability": pytest.approx(0.5)}
    assert first.confidence == pytest.approx(0.5)
    assert first.margin == pytest.approx(0.3)
    assert second.topk[0]["label"] == "class-0"
    assert second.entropy == pytest.approx(-sum(p * math.log(p) for p in [0.7, 0.1, 0.1, 0.05, 0.05]), rel=1e-5)
    assert first.probabilities is None
    np.testing.assert_array_equal(second.embedding, [4, 5, 6, 7])


def test_summarize_keeps_all_probabilities_when_asked() -> None:
    probs = torch.softmax(torch.randn(3, 1000, generator=torch.Generator().manual_seed(3)), dim=1)
    results = summarize(probs, torch.zeros(3, 2), [str(i) for i in range(1000)], top_k=5, keep_probabilities=True)
    for row, result in enumerate(results):
        assert result.probabilities.dtype == np.float32
        np.testing.assert_array_equal(result.probabilities, probs[row].numpy())
        assert result.topk[0]["index"] == int(probs[row].argmax())
        assert len(result.topk) == 5

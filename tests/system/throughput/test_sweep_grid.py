"""The tuning sweep's grid: parsed from KEY=V1,V2 words, typed like the benchmark's options."""

import pytest

from bench.sweep import combinations, parse_grid


def test_grid_is_typed_and_its_product_covers_every_combination() -> None:
    grid = parse_grid(["batch_size=16,32", "forward-slots=1,0", "decode=fast"])
    assert grid == {"batch_size": [16, 32], "forward_slots": [1, 0], "decode": ["fast"]}
    combos = combinations(grid)
    assert len(combos) == 4 and {"batch_size": 32, "forward_slots": 0, "decode": "fast"} in combos


@pytest.mark.parametrize("spec", ["batch_size", "model=resnet50", "concurrency=", "nonsense=1"])
def test_bad_grid_words_are_refused_with_the_allowed_keys(spec: str) -> None:
    with pytest.raises(ValueError, match="KEY=V1,V2 with KEY one of batch_size"):
        parse_grid([spec])

import pytest

from bench.timing import bracketed_ratios, percentile, summary


def test_percentile_interpolates() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 50) == 1.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0
    assert percentile([], 99) == 0.0


def test_bracketed_ratios_use_the_runs_around_each_measurement() -> None:
    assert bracketed_ratios([9.0, 6.0], [10.0, 8.0, 4.0]) == [1.0, 1.0]
    with pytest.raises(ValueError):
        bracketed_ratios([1.0], [1.0])
    assert summary([1.0, 3.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0}

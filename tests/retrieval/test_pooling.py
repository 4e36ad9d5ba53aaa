import math

import pytest
import torch

from retrieval.errors import ConfigError, UnknownNameError
from retrieval.pooling import POOLINGS, get_pooling, l2_normalize, pool_gem

# One map, C=2 channels, 2x2 cells: channel 0 = [[1, 2], [3, 4]], channel 1 = [[0, 0], [0, 8]].
X = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 8.0]]]])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sum", [10.0, 8.0]),
        ("avg", [2.5, 2.0]),
        ("max", [4.0, 8.0]),
        # GeM p=3: ((1 + 8 + 27 + 64) / 4) ** (1/3) = 25 ** (1/3); (512 / 4) ** (1/3) = 128 ** (1/3)
        ("gem", [25 ** (1 / 3), 128 ** (1 / 3)]),
    ],
)
def test_closed_form(name: str, expected: list[float]) -> None:
    out = get_pooling(name)(X)
    assert out.shape == (1, 2)
    assert out[0].tolist() == pytest.approx(expected, rel=1e-5)


def test_gem_limits() -> None:
    x = torch.rand(3, 5, 4, 6) + 0.1
    assert torch.allclose(pool_gem(x, p=1.0), x.mean(dim=(2, 3)), atol=1e-6)
    assert torch.allclose(pool_gem(x, p=200.0), x.amax(dim=(2, 3)), rtol=0.02)
    assert get_pooling("gem", {"p": 1.0})(x).allclose(x.mean(dim=(2, 3)), atol=1e-6)


def test_batch_rows_are_independent() -> None:
    x = torch.rand(4, 3, 5, 5)
    for fn in POOLINGS.values():
        whole = fn(x)
        for i in range(4):
            assert torch.allclose(whole[i], fn(x[i : i + 1])[0])


def test_l2_normalize() -> None:
    v = l2_normalize(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    assert torch.allclose(v, torch.tensor([[0.6, 0.8], [0.0, 0.0]]))
    assert math.isclose(float(v[0].norm()), 1.0)


def test_unknown_name_lists_choices() -> None:
    with pytest.raises(UnknownNameError) as err:
        get_pooling("median")
    assert "avg, gem, max, mop, sum" in str(err.value)


def test_bad_inputs() -> None:
    with pytest.raises(ConfigError):
        get_pooling("sum")(torch.rand(2, 3))
    with pytest.raises(ConfigError):
        get_pooling("max", {"p": 2})
    with pytest.raises(ConfigError):
        pool_gem(X, p=0)

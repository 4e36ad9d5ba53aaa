import math

import numpy as np
import pytest
import torch

from retrieval.errors import ConfigError, UnknownNameError
from retrieval.pooling import POOLINGS, Param, Pooling, make_pooling, pooling_class
from retrieval.pooling import functional as F

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
    out = make_pooling(name).encode(X)
    assert out.shape == (1, 2)
    assert out.dtype == np.float32
    assert out[0].tolist() == pytest.approx(expected, rel=1e-5)


def test_gem_limits() -> None:
    x = torch.rand(3, 5, 4, 6) + 0.1
    assert torch.allclose(F.gem(x, p=1.0), x.mean(dim=(2, 3)), atol=1e-6)
    assert torch.allclose(F.gem(x, p=200.0), x.amax(dim=(2, 3)), rtol=0.02)
    assert np.allclose(make_pooling("gem", {"p": 1.0}).encode(x), x.mean(dim=(2, 3)).numpy(),
                       atol=1e-6)


def test_batch_rows_are_independent() -> None:
    x = torch.rand(4, 3, 5, 5)
    for name, cls in POOLINGS.items():
        if cls.learns:
            continue
        pooling = make_pooling(name)
        whole = pooling.encode(x)
        for i in range(4):
            assert np.allclose(whole[i], pooling.encode(x[i : i + 1])[0]), name


def test_unknown_name_lists_choices() -> None:
    with pytest.raises(UnknownNameError) as err:
        pooling_class("median")
    for name in ("avg", "gem", "max", "mop", "sum"):
        assert name in str(err.value)


def test_bad_inputs() -> None:
    with pytest.raises(ConfigError, match="feature maps"):
        make_pooling("sum").encode(torch.rand(2, 3))
    with pytest.raises(ConfigError, match="has no parameter p"):
        make_pooling("max", {"p": 2})
    with pytest.raises(ConfigError, match="at least"):
        make_pooling("gem", {"p": 0})
    with pytest.raises(ConfigError, match="a number"):
        make_pooling("gem", {"p": "three"})
    with pytest.raises(ConfigError, match="regions"):
        make_pooling("mop", {"regions": "2,x"})
    with pytest.raises(ConfigError, match="an integer"):
        make_pooling("mop", {"k": 2.5})


def test_parameters_are_declared_typed_and_defaulted() -> None:
    assert make_pooling("gem").values == {"p": 3.0}
    assert make_pooling("gem", {"p": "4"}).values == {"p": 4.0}
    assert make_pooling("mop", {"k": "8"}).values == {"k": 8, "regions": "2,1", "pca_dim": 512,
                                                       "seed": 0}
    for cls in POOLINGS.values():
        for param in cls.params:
            assert isinstance(param, Param) and param.help
            assert param.parse(param.default, cls.name) == param.default


def test_a_pure_pooling_has_no_state() -> None:
    pooling = make_pooling("sum")
    assert pooling.is_fitted and not pooling.learns
    pooling.fit([torch.rand(3, 2, 2)])  # a no-op
    assert pooling.state_arrays() == {}
    assert pooling.output_dim(512) == 512
    with pytest.raises(Exception, match="no fitted state"):
        pooling.load_state({"x": np.zeros(1, dtype=np.float32)})


def test_mop_round_trips_its_state() -> None:
    torch.manual_seed(0)
    maps = [torch.rand(16, 4, 4) for _ in range(6)]
    mop = make_pooling("mop", {"k": 4, "pca_dim": 5})
    assert not mop.is_fitted
    mop.fit(maps)
    again = make_pooling("mop", {"k": 4, "pca_dim": 5})
    again.load_state(mop.state_arrays())
    batch = torch.stack(maps[:2])
    assert np.array_equal(mop.encode(batch), again.encode(batch))
    assert mop.output_dim(16) == mop.encode(batch).shape[1]


def test_l2_rows() -> None:
    from retrieval._arrays import l2_normalize_rows

    v = l2_normalize_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(v, [[0.6, 0.8], [0.0, 0.0]])
    assert math.isclose(float(np.linalg.norm(v[0])), 1.0, rel_tol=1e-6)
    assert v.dtype == np.float32


def test_pooling_is_abstract() -> None:
    with pytest.raises(TypeError):
        Pooling()  # type: ignore[abstract]

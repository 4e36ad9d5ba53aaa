"""Closed forms of every pooling in retrieval.pooling.functional on hand-written maps (expected
values worked out by hand in the comments), the R-MAC grid against hand-computed regions, and the
registered pooling objects against the functional forms."""

from __future__ import annotations

import math

import pytest
import torch

from retrieval.errors import ConfigError
from retrieval.pooling import functional as F
from retrieval.pooling import make_pooling

E = math.e


def close(a: torch.Tensor, b: list[float] | torch.Tensor, tol: float = 1e-5) -> None:
    b = torch.as_tensor(b, dtype=torch.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a.double(), b, rtol=tol, atol=tol), (a, b)


@pytest.fixture
def x() -> torch.Tensor:
    """One 2x2 map, three channels:
    c0 = [[1, 2], [3, 0]]   sum 6, mean 1.5, max 3, Σa² 14, 3 of 4 cells non-zero
    c1 = [[0, 0], [4, 0]]   sum 4, mean 1,   max 4, Σa² 16, 1 of 4 cells non-zero
    c2 = all zero
    """
    return torch.tensor(
        [[[[1.0, 2.0], [3.0, 0.0]], [[0.0, 0.0], [4.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]]]
    )


def test_shapes_and_batch_independence(x: torch.Tensor) -> None:
    batch = torch.cat([x, 2 * x, x.flip(-1)])
    for fn in (F.spoc_sum, F.mac, F.gem, F.rmac, F.crow, F.spoc, F.mixed, F.stochastic,
               F.softpool, F.lse):
        out = fn(batch)
        assert out.shape == (3, 3), fn.__name__
        close(out[0:1], fn(x))  # row 0 of the batch == alone


def test_sum_avg_max(x: torch.Tensor) -> None:
    close(F.spoc_sum(x), [[6, 4, 0]])
    close(F.avg(x), [[1.5, 1, 0]])
    close(F.mac(x), [[3, 4, 0]])


def test_gem(x: torch.Tensor) -> None:
    # p=3: c0 mean cube (1 + 8 + 27 + 0)/4 = 9, c1 64/4 = 16, c2 clamps to eps = 1e-6
    close(F.gem(x, p=3), [[9 ** (1 / 3), 16 ** (1 / 3), 1e-6]])
    close(F.gem(x, p=1), [[1.5, 1, 1e-6]])  # p=1 is avg (the zero cell clamps to 1e-6: +2.5e-7)
    # large p -> max: (3^50/4 + ...)^(1/50) = 3·4^(-1/50) up to (2/3)^50
    # (float64: 3^50 overflows fp32)
    close(F.gem(x.double(), p=50), [[3 * 4 ** (-1 / 50), 4 * 4 ** (-1 / 50), 1e-6]])


def test_mixed(x: torch.Tensor) -> None:
    close(F.mixed(x, 0.5), [[0.5 * 3 + 0.5 * 1.5, 0.5 * 4 + 0.5 * 1, 0]])  # [2.25, 2.5, 0]
    close(F.mixed(x, 0.25), [[1.875, 1.75, 0]])
    close(F.mixed(x, 1.0), F.mac(x))
    close(F.mixed(x, 0.0), F.avg(x))


def test_stochastic(x: torch.Tensor) -> None:
    # Σa²/Σa: c0 14/6, c1 16/4, c2 (empty) 0
    close(F.stochastic(x), [[14 / 6, 4, 0]])


def test_softpool(x: torch.Tensor) -> None:
    c0 = (1 * E + 2 * E**2 + 3 * E**3 + 0 * 1) / (E + E**2 + E**3 + 1)  # 2.49265...
    c1 = 4 * E**4 / (E**4 + 3)  # 3.79166...
    close(F.softpool(x), [[c0, c1, 0]])
    # stability: naive e^1000 overflows; softpool is shift-equivariant
    big = F.softpool(x + 1000.0)
    assert torch.isfinite(big).all()
    close(big - 1000.0, [[c0, c1, 0]], tol=1e-3)


def test_lse(x: torch.Tensor) -> None:
    # r=1: log(mean e^a); c2: log(mean 1) = 0
    c0 = math.log((E + E**2 + E**3 + 1) / 4)  # 2.05389...
    c1 = math.log((E**4 + 3) / 4)  # 2.66025...
    close(F.lse(x, 1.0), [[c0, c1, 0]])
    # r=2: 0.5·log(mean e^{2a})
    close(F.lse(x, 2.0)[0, :2], [0.5 * math.log((E**2 + E**4 + E**6 + 1) / 4),
                                 0.5 * math.log((E**8 + 3) / 4)])
    big = F.lse(x * 100.0, 10.0)  # e^{4000} overflows; must stay finite
    assert torch.isfinite(big).all()
    # (1/10)·log((e^{4000} + 3)/4) = 400 - log(4)/10 to double precision
    close(big[0, 1:2], [400 - math.log(4) / 10], tol=1e-4)
    close(F.lse(x, 1e-4), F.avg(x), tol=1e-3)  # r -> 0: avg
    with pytest.raises(ValueError):
        F.lse(x, 0.0)


def test_crow(x: torch.Tensor) -> None:
    # S' = Σ_c x = [[1, 2], [7, 0]]; a=2: ||S'|| = √54; b=2: S = sqrt(S'/√54)
    r = math.sqrt(54)
    s = [[math.sqrt(1 / r), math.sqrt(2 / r)], [math.sqrt(7 / r), 0.0]]
    # Q = [3/4, 1/4, 0], ΣQ = 1: Ω0 = log(4/3), Ω1 = log 4 (c2 sums to 0 whatever its weight)
    c0 = math.log(4 / 3) * (1 * s[0][0] + 2 * s[0][1] + 3 * s[1][0])
    c1 = math.log(4) * (4 * s[1][0])
    close(F.crow(x), [[c0, c1, 0]])
    # a=b=1: S = S'/ΣS' = S'/10 -> c0 (1·1 + 2·2 + 3·7)/10 = 2.6, c1 4·7/10 = 2.8
    close(F.crow(x, a=1, b=1), [[math.log(4 / 3) * 2.6, math.log(4) * 2.8, 0]])


def test_spoc_prior_and_spoc() -> None:
    # 3x3: σ = (3/2)/3 = 0.5, 2σ² = 0.5; centre d²=0, edge d²=1, corner d²=2
    p = F.spoc_prior(3, 3)
    ce, co = math.exp(-2), math.exp(-4)
    close(p, [[co, ce, co], [ce, 1, ce], [co, ce, co]])
    # 2x3: σ = 1/3, 2σ² = 2/9; row offsets ±0.5, column offsets -1, 0, 1
    m, s = math.exp(-0.25 * 4.5), math.exp(-1.25 * 4.5)
    close(F.spoc_prior(2, 3), [[s, m, s], [s, m, s]])
    x = torch.arange(1.0, 7.0).view(1, 1, 2, 3)  # [[1,2,3],[4,5,6]]
    close(F.spoc(x), [[(1 + 3 + 4 + 6) * s + (2 + 5) * m]])
    # 2x2: every cell at d² = 0.5 from the centre -> all weights exp(-0.5/(2/9)) = e^-2.25
    y = torch.tensor([[[[1.0, 2.0], [3.0, 0.0]]]])
    close(F.spoc(y), [[6 * math.exp(-2.25)]])


# ------------------------------------------------------------------------------- R-MAC grid
# Worked by hand with m = min(h, w), wl = floor(2m/(l+1)), wl2 = floor(wl/2 - 1),
# start_k = floor(wl2 + k·b) - wl2, b = (side - wl)/(n - 1).


def test_rmac_regions_square_5x5() -> None:
    # square: Wd = Hd = 0. l=1: wl=5 at 0. l=2: wl=3, wl2=0, b=2 -> {0, 2}.
    # l=3: wl=2, wl2=0, b=1.5 -> floor(0, 1.5, 3) = {0, 1, 3}
    exp = [(0, 0, 5, 5), (0, 0, 5, 5)]
    exp += [(i, j, 3, 3) for i in (0, 2) for j in (0, 2)]
    exp += [(i, j, 2, 2) for i in (0, 1, 3) for j in (0, 1, 3)]
    assert F.rmac_regions(5, 5) == exp


def test_rmac_regions_wide_3x5() -> None:
    # m=3, b_steps = 2/(1..6) = 2, 1, .67, .5, .4, .33; overlap 1 - b/3 = .33, .67, .78, ...
    # closest to 0.4 is the first (steps=2) -> Wd = 1 extra column.
    # l=1: wl=3, wl2=0; cols n=2, b=2 -> {0, 2}; rows n=1 -> {0}
    # l=2: wl=2, wl2=0; cols n=3, b=1.5 -> {0, 1, 3}; rows n=2, b=1 -> {0, 1}
    # l=3: wl=1, wl2=-1; cols n=4, b=4/3 -> floor(-1, .33, 1.67, 3)+1 = {0, 1, 2, 4};
    #      rows n=3, b=1 -> {0, 1, 2}
    exp = [(0, 0, 3, 5)]
    exp += [(0, j, 3, 3) for j in (0, 2)]
    exp += [(i, j, 2, 2) for i in (0, 1) for j in (0, 1, 3)]
    exp += [(i, j, 1, 1) for i in (0, 1, 2) for j in (0, 1, 2, 4)]
    assert F.rmac_regions(3, 5) == exp


def test_rmac_regions_tall_5x3() -> None:
    # the transpose of 3x5: Hd = 1 extra row, rows/columns swapped
    exp = [(0, 0, 5, 3)]
    exp += [(i, 0, 3, 3) for i in (0, 2)]
    exp += [(i, j, 2, 2) for i in (0, 1, 3) for j in (0, 1)]
    exp += [(i, j, 1, 1) for i in (0, 1, 2, 4) for j in (0, 1, 2)]
    assert F.rmac_regions(5, 3) == exp


def test_rmac_regions_512px_map_23x31() -> None:
    # SqueezeNet map of a 512x384 image. m=23, b_steps = 8/(1..6); overlap 1 - b/23 is
    # .65, .83, ... -> steps=2, Wd = 1.
    # l=1: wl=23, cols b=8 -> {0, 8}.  l=2: wl=15, wl2=6, cols b=8 -> {0, 8, 16}, rows b=8 -> {0, 8}
    # l=3: wl=11, wl2=4, cols b=20/3 -> floor(4, 10.67, 17.33, 24) - 4 = {0, 6, 13, 20};
    #      rows b=6 -> {0, 6, 12}
    exp = [(0, 0, 23, 31)]
    exp += [(0, j, 23, 23) for j in (0, 8)]
    exp += [(i, j, 15, 15) for i in (0, 8) for j in (0, 8, 16)]
    exp += [(i, j, 11, 11) for i in (0, 6, 12) for j in (0, 6, 13, 20)]
    assert F.rmac_regions(23, 31) == exp
    # tall = transposed wide (same regions; row-major order differs)
    assert sorted(F.rmac_regions(31, 23)) == sorted(
        (j, i, ww, hh) for i, j, hh, ww in F.rmac_regions(23, 31))


def test_rmac_regions_smaller_than_3x3() -> None:
    # 1x1: l=1 wl=1 at 0; l=2,3 have wl = floor(2/3) = floor(2/4) = 0 -> nothing
    assert F.rmac_regions(1, 1) == [(0, 0, 1, 1), (0, 0, 1, 1)]
    # 2x2: l=1 wl=2; l=2 wl=1, wl2=-1, b=1 -> {0, 1};
    # l=3 wl=1, b=0.5 -> floor(-1, -.5, 0)+1 = {0, 0, 1} (duplicates kept, as cirtorch)
    exp = [(0, 0, 2, 2), (0, 0, 2, 2)]
    exp += [(i, j, 1, 1) for i in (0, 1) for j in (0, 1)]
    exp += [(i, j, 1, 1) for i in (0, 0, 1) for j in (0, 0, 1)]
    assert F.rmac_regions(2, 2) == exp
    # 1x3: m=1, b_steps = 2/(1..6); |1 - b - 0.4| = 1.4, .4, .067, .1, .2, .27 -> steps=4, Wd=3.
    # l=1: wl=1, wl2=-1, cols n=4, b=2/3 -> floor(-1, -.33, .33, 1)+1 = {0, 0, 1, 2}; l=2,3: wl=0
    assert F.rmac_regions(1, 3) == [(0, 0, 1, 3)] + [(0, j, 1, 1) for j in (0, 0, 1, 2)]


def test_rmac_value_2x2() -> None:
    # regions of 2x2 (above): whole map x2, cell (0,0) x5, (0,1) x3, (1,0) x3, (1,1) x2.
    # c0 = [[3,0],[0,4]], c1 = [[4,0],[0,3]]: whole MAC (4,4) -> (1,1)/√2;
    # cell (0,0) (3,4)/5; cell (1,1) (4,3)/5; the zero cells give 0/(0+eps) = 0.
    x = torch.tensor([[[[3.0, 0.0], [0.0, 4.0]], [[4.0, 0.0], [0.0, 3.0]]]])
    r2 = 1 / math.sqrt(2)
    exp = [2 * r2 + 5 * 0.6 + 2 * 0.8, 2 * r2 + 5 * 0.8 + 2 * 0.6]  # [6.0142, 6.6142]
    close(F.rmac(x), [exp])


def test_rmac_equals_sum_over_regions() -> None:
    g = torch.Generator().manual_seed(0)
    for h, w in [(3, 5), (5, 3), (7, 7), (4, 9), (23, 31)]:
        x = torch.rand(2, 4, h, w, generator=g)
        ref = sum(F.l2n(x[:, :, i:i + a, j:j + b].amax(dim=(2, 3)))
                  for i, j, a, b in F.rmac_regions(h, w))
        close(F.rmac(x), ref)


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("rmac", {"levels": 1}, lambda x: F.rmac(x, L=1)),
        ("crow", {}, F.crow),
        ("spoc", {}, F.spoc),
        ("mixed", {"lam": 0.25}, lambda x: F.mixed(x, 0.25)),
        ("stochastic", {}, F.stochastic),
        ("softpool", {}, F.softpool),
        ("lse", {"r": 0.5}, lambda x: F.lse(x, 0.5)),
    ],
)
def test_registered_poolings_are_the_closed_forms(name: str, params: dict[str, float],
                                                  expected: object, x: torch.Tensor) -> None:
    out = make_pooling(name, params).encode(x)
    assert callable(expected)
    close(torch.from_numpy(out), expected(x))


def test_declared_bounds() -> None:
    with pytest.raises(ConfigError, match="at most 1"):
        make_pooling("mixed", {"lam": 1.5})
    with pytest.raises(ConfigError, match="at least"):
        make_pooling("lse", {"r": 0})
    with pytest.raises(ConfigError, match="integer"):
        make_pooling("rmac", {"levels": 2.5})

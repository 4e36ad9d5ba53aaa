"""Pure poolings: feature maps x (N, C, h, w) -> vectors (N, C), the closed forms the pooling
objects (:mod:`retrieval.pooling`) wrap. They do not check shapes:
:class:`~retrieval.pooling.MapPooling` does, once.

None of the outputs is L2-normalised unless the docstring says so (only the *regions* inside
R-MAC are). Activations are expected to be non-negative (post-ReLU), as all these papers assume;
``gem`` clamps at ``eps`` and ``stochastic`` treats an all-zero channel as 0.

Papers
    sum / avg / max(MAC) — Babenko & Lempitsky ICCV 2015; Tolias, Sicre & Jégou ICLR 2016.
    rmac    — Tolias, Sicre & Jégou, "Particular object retrieval with integral max-pooling of CNN
              activations", ICLR 2016 (grid exactly as cnnimageretrieval-pytorch ``rmac``).
    crow    — Kalantidis, Mellina & Osindero, "Cross-dimensional weighting for aggregated deep
              convolutional features", ECCV Workshops 2016.
    spoc    — Babenko & Lempitsky, "Aggregating local deep features for image retrieval", ICCV 2015
              (sum pooling with the centring prior).
    gem     — Radenović, Tolias & Chum, "Fine-tuning CNN image retrieval with no human
              annotation", TPAMI 2018.
    mixed   — Lee, Gallagher & Tu, "Generalizing pooling functions in CNNs: mixed, gated, and
              tree", AISTATS 2016.
    stochastic — Zeiler & Fergus, "Stochastic pooling for regularization of deep convolutional
              neural networks", ICLR 2013 (its test-time / expectation form).
    softpool — Stergiou, Poppe & Kalliatakis, "Refining activation downsampling with SoftPool",
              ICCV 2021.
    lse     — Pinheiro & Collobert, "From image-level to pixel-level labeling with convolutional
              networks", CVPR 2015 (log-sum-exp pooling).
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "avg",
    "crow",
    "crow_weights",
    "gem",
    "l2n",
    "lse",
    "mac",
    "mixed",
    "rmac",
    "rmac_regions",
    "softpool",
    "spoc",
    "spoc_prior",
    "spoc_sum",
    "stochastic",
]

Region = tuple[int, int, int, int]  # (row start i, column start j, height hh, width ww)



def l2n(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Rows of (N, C) scaled to unit L2 norm, cirtorch style: x / (||x|| + eps)."""
    norm: torch.Tensor = x.norm(p=2, dim=-1, keepdim=True)
    return x / (norm + eps)


def spoc_sum(x: torch.Tensor) -> torch.Tensor:
    """SUM pooling: Σ_ij x_cij (Babenko & Lempitsky ICCV 2015, without the centring prior)."""
    return x.sum(dim=(2, 3))


def avg(x: torch.Tensor) -> torch.Tensor:
    """Average pooling: mean_ij x_cij."""
    return x.mean(dim=(2, 3))


def mac(x: torch.Tensor) -> torch.Tensor:
    """MAC, maximum activation of convolutions: max_ij x_cij (Tolias et al., ICLR 2016)."""
    return x.amax(dim=(2, 3))


def gem(x: torch.Tensor, p: float = 3.0, eps: float = 1e-6) -> torch.Tensor:
    """Generalized mean (Radenović et al., TPAMI 2018): (mean_ij max(x, eps)^p)^(1/p)."""
    return x.clamp(min=eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


# ---------------------------------------------------------------------------------------- R-MAC


def rmac_regions(h: int, w: int, L: int = 3) -> list[Region]:
    """The R-MAC regions of an h x w map, in the order :func:`rmac` sums them.

    The first entry is the whole map (0, 0, h, w) — cirtorch starts its sum with the global MAC.
    Then, for each level l = 1..L, square regions of side ``wl = floor(2·min(h, w)/(l+1))`` on a
    grid of ``l + Hd`` rows by ``l + Wd`` columns, row-major. ``Wd``/``Hd`` add regions along the
    long side: of the step counts 2..7, the one whose overlap ``(m² - m·b)/m²`` (m the short side,
    ``b = (long - m)/(steps - 1)``) is closest to 0.4 gives ``steps - 1`` extra columns (wide map)
    or rows (tall map); a square map has none. Starts are ``floor(wl2 + k·b) - wl2`` with
    ``wl2 = floor(wl/2 - 1)`` and ``b = (side - wl)/(n - 1)`` (``b = 0`` for a single position).
    Levels whose ``wl`` is 0 contribute nothing; repeated regions (tiny maps) are kept, as in
    cirtorch. Arithmetic is float32 like the reference, so floors land identically.
    """
    ovr = 0.4
    steps = torch.tensor([2, 3, 4, 5, 6, 7], dtype=torch.float32)
    m = min(w, h)
    b_steps = (max(h, w) - m) / (steps - 1)
    idx = int(torch.argmin(torch.abs(((m**2 - m * b_steps) / m**2) - ovr)).item())
    wd = idx + 1 if h < w else 0
    hd = idx + 1 if h > w else 0

    regions: list[Region] = [(0, 0, h, w)]
    for level in range(1, L + 1):
        wl = math.floor(2 * m / (level + 1))
        if wl == 0:
            continue
        wl2 = math.floor(wl / 2 - 1)
        starts = []
        for extra, side in ((hd, h), (wd, w)):
            n = level + extra
            b = 0.0 if n == 1 else (side - wl) / (n - 1)
            c = torch.floor(wl2 + torch.arange(n, dtype=torch.float32) * b) - wl2
            starts.append([int(v) for v in c.tolist()])
        regions.extend((i, j, wl, wl) for i in starts[0] for j in starts[1])
    return regions


def rmac(x: torch.Tensor, L: int = 3, eps: float = 1e-6) -> torch.Tensor:
    """Regional MAC (Tolias et al., ICLR 2016), exactly as cnnimageretrieval-pytorch ``rmac``.

    Σ over :func:`rmac_regions` (global map first, then L levels) of the region's MAC vector,
    each L2-normalised as ``v / (||v|| + eps)``. The sum itself is not normalised.
    """
    h, w = x.shape[-2:]
    out = torch.zeros(x.shape[:2], dtype=x.dtype, device=x.device)
    for i, j, hh, ww in rmac_regions(h, w, L):
        out = out + l2n(x[:, :, i : i + hh, j : j + ww].amax(dim=(2, 3)), eps)
    return out


# ------------------------------------------------------------------------------------ weighted sums


def crow(x: torch.Tensor, a: float = 2.0, b: float = 2.0, eps: float = 1e-12) -> torch.Tensor:
    """CroW cross-dimensional weighting (Kalantidis et al., ECCVW 2016).

    Spatial weights: ``S' = Σ_c x_c``, ``S = (S' / (Σ_ij S'^a)^(1/a))^(1/b)`` (a = 2 L2-normalises
    the aggregated map, b = 2 takes its square root). Channel weights (idf-like sparsity
    weighting): ``Q_c`` = fraction of non-zero cells of channel c,
    ``Ω_c = log((Σ_k Q_k + eps) / (Q_c + eps))``. Output ``Ω_c · Σ_ij S_ij x_cij``.
    (The reference code sets Ω_c = 0 for an all-zero channel; with eps the weight is large but
    multiplies an all-zero sum, so the result is the same.)
    """
    omega, s = crow_weights(x, a, b, eps)
    return omega * (x * s[:, None]).sum(dim=(2, 3))


def crow_weights(x: torch.Tensor, a: float = 2.0, b: float = 2.0,
                 eps: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """CroW's channel weights Ω (N, C) and spatial weights S (N, h, w) (see :func:`crow`)."""
    s = x.sum(dim=1)  # (N, h, w)
    z = s.pow(a).sum(dim=(1, 2), keepdim=True).pow(1.0 / a)
    s = (s / z.clamp(min=eps)).pow(1.0 / b)
    q = (x != 0).to(x.dtype).mean(dim=(2, 3))  # (N, C)
    omega = torch.log((q.sum(dim=1, keepdim=True) + eps) / (q + eps))
    return omega, s


def spoc_prior(h: int, w: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """SPoC centring prior (h, w): exp(-d²/(2σ²)), d from cell centre to map centre,
    σ = (min(h, w)/2)/3 — a third of the distance from the centre to the closest border.

    Cell (i, j) has centre (i + 0.5, j + 0.5); the map centre is (h/2, w/2).
    """
    sigma = min(h, w) / 2.0 / 3.0
    yi = torch.arange(h, dtype=torch.float64) + 0.5 - h / 2.0
    xj = torch.arange(w, dtype=torch.float64) + 0.5 - w / 2.0
    d2 = yi[:, None] ** 2 + xj[None, :] ** 2
    return torch.exp(-d2 / (2 * sigma**2)).to(dtype)


def spoc(x: torch.Tensor) -> torch.Tensor:
    """SPoC (Babenko & Lempitsky, ICCV 2015): Σ_ij α_ij x_cij with the Gaussian centring prior
    α of :func:`spoc_prior`."""
    prior = spoc_prior(x.shape[2], x.shape[3], x.dtype).to(x.device)
    return (x * prior).sum(dim=(2, 3))


def mixed(x: torch.Tensor, lam: float = 0.5) -> torch.Tensor:
    """Mixed pooling (Lee et al., AISTATS 2016): λ·max_ij x + (1 - λ)·mean_ij x."""
    return lam * x.amax(dim=(2, 3)) + (1.0 - lam) * x.mean(dim=(2, 3))


def stochastic(x: torch.Tensor) -> torch.Tensor:
    """Expectation of stochastic pooling (Zeiler & Fergus, ICLR 2013):
    Σ_ij a_ij · (a_ij / Σ a) = Σ a² / Σ a per channel; 0 where Σ a = 0."""
    s1 = x.sum(dim=(2, 3))
    s2 = x.pow(2).sum(dim=(2, 3))
    safe = torch.where(s1 > 0, s1, torch.ones_like(s1))
    return torch.where(s1 > 0, s2 / safe, torch.zeros_like(s1))


def softpool(x: torch.Tensor) -> torch.Tensor:
    """SoftPool (Stergiou et al., ICCV 2021): Σ e^a·a / Σ e^a per channel, i.e. the softmax-
    weighted mean; computed stably (softmax subtracts the channel max)."""
    flat = x.flatten(2)
    return (torch.softmax(flat, dim=2) * flat).sum(dim=2)


def lse(x: torch.Tensor, r: float = 1.0) -> torch.Tensor:
    """Log-sum-exp pooling (Pinheiro & Collobert, CVPR 2015): (1/r)·log(mean_ij exp(r·a)),
    computed stably as (logsumexp(r·a) - log(h·w))/r. r → 0 gives avg, r → ∞ gives max."""
    if r <= 0:
        raise ValueError(f"lse needs r > 0, got {r}")
    flat = x.flatten(2)
    return (torch.logsumexp(r * flat, dim=2) - math.log(flat.shape[2])) / r

"""Images -> L2-normalised float32 descriptors (n, d), the same way for database and queries.

``Embedder`` holds the loaded backbone, the configured :class:`~retrieval.pooling.Pooling` and
the optional :class:`Whitening`. The descriptor of a feature map F is::

    v = pooling.encode(F)            # any registered pooling
    v = v / ||v||
    v = Σ_s v_s / ||Σ_s v_s||        # only with several scales: F_s at each image side
    v = W (v - m); v = v / ||v||     # only with whitening

It owns the one pipeline every caller goes through, so that a query is embedded exactly as the
database was: :meth:`Embedder.extract` (decode threads + batched forward at every scale) yields
batches, :meth:`Embedder.describe_batch` turns a batch into vectors and near-duplicate layouts,
and :meth:`Embedder.embed_images` (queries: decoded images) runs the same forward and
description. Nothing outside :mod:`retrieval.features` touches the backbone.

The embedder never looks at a pooling's name: what is fitted, saved and loaded is whatever the
pooling and the whitening say (``<name>.npz`` in the index directory; :meth:`Embedder.state_blobs`
hands the same bytes over in memory).
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Generator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image

from retrieval._arrays import l2_normalize_rows
from retrieval.errors import ArtifactError
from retrieval.features._backbone import Backbone, load_backbone
from retrieval.features._config import EmbedderConfig
from retrieval.features._extraction import (
    Batch,
    Failure,
    Source,
    extract_batches,
    forward_images,
)
from retrieval.features._int8 import Int8Engine, prepare_int8
from retrieval.features._layout import layout_descriptors
from retrieval.features._whitening import Whitening
from retrieval.images import DEFAULT_MAX_PIXELS
from retrieval.pooling import Pooling, make_pooling
from retrieval.rerank import combine_scales

__all__ = ["STATE_SUFFIX", "Embedder"]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
F16 = npt.NDArray[np.float16]
K = TypeVar("K")

#: The file name suffix of a fitted step's state (``<step>.npz``).
STATE_SUFFIX = ".npz"


class Embedder:
    """A backbone plus the (fitted) pooling and post-processing of one configuration."""

    def __init__(self, config: EmbedderConfig, backbone: Backbone) -> None:
        self.config = config
        #: the network; :mod:`retrieval.features`' own business: everything else goes through
        #: :meth:`extract`, :meth:`describe_batch`, :meth:`embed_images` and the int8 methods
        self.backbone = backbone
        self.pooling: Pooling = make_pooling(config.pooling, config.pooling_params)
        self.whitening: Whitening | None = Whitening(config.whiten_dim) if config.whiten else None

    @classmethod
    def create(
        cls, config: EmbedderConfig, *, device: str = "cpu", weights_file: str | None = None,
        allow_download: bool = True, precision: str = "fp32", channels_last: bool = False,
    ) -> Embedder:
        """Load the backbone; ``weights_file`` overrides where ``config.weights`` is read from.

        ``precision`` and ``channels_last`` are runtime options of :class:`Backbone`.
        """
        backbone = load_backbone(config.backbone, weights_file or config.weights, device=device,
                                 seed=config.seed, allow_download=allow_download,
                                 precision=precision, channels_last=channels_last)
        return cls(config, backbone)

    @property
    def is_fitted(self) -> bool:
        return self.pooling.is_fitted and (self.whitening is None or self.whitening.is_fitted)

    @property
    def pooled_dim(self) -> int:
        """Dimension of the pooled vectors, before whitening."""
        return self.pooling.output_dim(self.backbone.channels)

    @property
    def dim(self) -> int:
        return self.whitening.dim if self.whitening is not None else self.pooled_dim

    @property
    def backbone_name(self) -> str:
        return self.backbone.name

    @property
    def weights_id(self) -> str:
        """What the backbone's weights are (``imagenet:<sha>``, ``random:seed=N``, a file hash)."""
        return self.backbone.weights_id

    @property
    def precision(self) -> str:
        return self.backbone.precision

    # -- images -> vectors: extract, then describe_batch ------------------------------------

    def extract(
        self, sources: Iterable[tuple[K, Source]], *, batch_size: int | None = None,
        workers: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
        overlap: bool | None = None,
    ) -> Generator[Batch[K] | Failure[K], None, None]:
        """Feature maps of every source at every configured scale, in batches; failures as they
        occur (decode threads + batched forward: :func:`~retrieval.features.extract_batches`)."""
        return extract_batches(self.backbone, sources, max_side=self.config.image_side,
                               batch_size=batch_size, workers=workers, max_pixels=max_pixels,
                               overlap=overlap, scales=self.config.scales)

    def describe_batch(self, batch: Batch[Any]) -> tuple[F32, F16]:
        """A batch's descriptors (n, d) and near-duplicate layouts (from the first scale's maps:
        no extra forward pass), in ``batch.items`` order. The one maps -> vectors function."""
        return self._vectors(batch), layout_descriptors(batch.fmaps)

    def embed_images(self, images: Sequence[Image.Image]) -> F32:
        """Decoded RGB images -> descriptors (n, d): the query path, one image per forward pass,
        through the same forward and :meth:`describe_batch` as :meth:`extract`'s batches."""
        rows = [self._vectors(b)
                for b in forward_images(self.backbone, images, self.config.image_sides)]
        return np.concatenate(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)

    def embed_with_maps(self, image: Image.Image) -> tuple[F32, list[F32]]:
        """One decoded image's descriptor (d,) and its feature maps (C, h_s, w_s) at every
        scale, first scale first: :meth:`embed_images`'s forward, the maps kept (explanations)."""
        batch = next(forward_images(self.backbone, [image], self.config.image_sides))
        maps = [np.ascontiguousarray(m.float().numpy()) for m in batch.per_image()[0]]
        return self._vectors(batch)[0], maps

    def _vectors(self, batch: Batch[Any]) -> F32:
        if not batch.extra:
            return self._finish(self.pooled(batch.fmaps))
        return np.concatenate([self._finish(self.pooled_scales([f[None] for f in maps]))
                               for maps in batch.per_image()])

    def _finish(self, v: F32) -> F32:
        """Pooled vectors -> final descriptors (whitened when configured)."""
        if self.whitening is not None:
            v = self.whitening.apply(v)
        return np.ascontiguousarray(v, dtype=np.float32)

    def pooled(self, fmaps: torch.Tensor) -> F32:
        """Feature maps (N, C, h, w) -> L2-normalised pooled vectors, before whitening."""
        return l2_normalize_rows(self.pooling.encode(fmaps))

    def pooled_scales(self, per_scale: Sequence[torch.Tensor]) -> F32:
        """Maps of the same images at each scale [(N, C, h_s, w_s)] -> l2n(Σ_s l2n(encode))."""
        return combine_scales([self.pooled(f) for f in per_scale])

    # -- fitting and fitted state -----------------------------------------------------------

    def fit(self, fmaps: Sequence[torch.Tensor],
            scaled: Sequence[Sequence[torch.Tensor]] | None = None) -> None:
        """Learn what the pooling and the whitening learn, from training maps (C, h, w).

        ``scaled`` (optional) holds each image's maps at every configured scale: the pooling
        learns from ``fmaps`` (the first scale), the whitening from the combined vectors.
        """
        self.pooling.fit(fmaps)
        if self.whitening is not None:
            per_image = scaled if scaled is not None else [[f] for f in fmaps]
            self.whitening.fit(np.concatenate([self.pooled_scales([f[None] for f in maps])
                                               for maps in per_image]))
        log.info("fitted on %d training images; descriptor dimension %d", len(fmaps), self.dim)

    def _fitted_steps(self) -> list[tuple[str, Pooling | Whitening]]:
        steps: list[tuple[str, Pooling | Whitening]] = []
        if self.pooling.learns:
            steps.append((self.pooling.name, self.pooling))
        if self.whitening is not None:
            steps.append((self.whitening.name, self.whitening))
        return steps

    def state_blobs(self) -> dict[str, bytes]:
        """The fitted state as ``{"<step>.npz": npz bytes}`` (what an index directory holds)."""
        return {f"{name}{STATE_SUFFIX}": _npz_bytes(step.state_arrays())
                for name, step in self._fitted_steps()}

    def load_state_blobs(self, blobs: Mapping[str, bytes], *, origin: str = "the index") -> None:
        """Load the fitted state :meth:`state_blobs` gave (``origin`` names it in errors)."""
        for name, step in self._fitted_steps():
            blob = blobs.get(f"{name}{STATE_SUFFIX}")
            if blob is None:
                raise ArtifactError(f"{origin}: {name}{STATE_SUFFIX} is missing")
            step.load_state(_npz_arrays(blob, f"{origin}: {name}{STATE_SUFFIX}"))

    # -- the int8 engine (a runtime option of the backbone) ----------------------------------

    @property
    def int8_engine(self) -> Int8Engine | None:
        """The quantised engine an ``int8`` embedder runs, once attached."""
        engine = self.backbone.engine
        return engine if isinstance(engine, Int8Engine) else None

    def prepare_int8(self, sources: Sequence[Source], *, cache_dir: Path | None) -> str:
        """Calibrate (or load from ``cache_dir``) the int8 engine at this configuration's side;
        see :func:`~retrieval.features.prepare_int8`."""
        return prepare_int8(self.backbone, sources, max_side=self.config.image_side,
                            cache_dir=cache_dir)

    def load_int8_engine(self, path: Path) -> None:
        """Attach the stored int8 engine at ``path`` (``<key>.xml``)."""
        self.backbone.engine = Int8Engine.load(path, threads=torch.get_num_threads())


def _npz_bytes(arrays: Mapping[str, F32]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def _npz_arrays(blob: bytes, label: str) -> dict[str, F32]:
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            return {k: data[k].astype(np.float32) for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"{label} is unreadable: {exc}") from exc

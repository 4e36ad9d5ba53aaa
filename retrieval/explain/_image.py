"""An image's explanation from the embedder: its maps from the one pipeline, then the math."""

from __future__ import annotations

import numpy.typing as npt
from PIL import Image

from retrieval.explain._match import Explanation, explain_match
from retrieval.features import Embedder

__all__ = ["explain_image"]


def explain_image(embedder: Embedder, image: Image.Image, partner: npt.ArrayLike) -> Explanation:
    """The cells of ``image`` behind its similarity to ``partner`` (a descriptor of the same
    space, e.g. a stored vector), with its maps and descriptor made exactly as a query's."""
    _, maps = embedder.embed_with_maps(image)
    pca = embedder.whitening.pca if embedder.whitening is not None else None
    return explain_match(embedder.pooling, maps, partner,
                         whitening=None if pca is None else (pca.mean, pca.components))

"""Image -> feature map -> vector: backbones, batched extraction, the embedder and whitening."""

from retrieval.features._backbone import (
    BACKBONES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PRECISIONS,
    Backbone,
    load_backbone,
    resized_shape,
)
from retrieval.features._config import EmbedderConfig, check_scales
from retrieval.features._embedder import Embedder
from retrieval.features._extraction import (
    Batch,
    Failure,
    Source,
    default_batch_size,
    default_workers,
    extract_batches,
)
from retrieval.features._layout import LAYOUT_GRID, layout_descriptors
from retrieval.features._whitening import Whitening

__all__ = [
    "BACKBONES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LAYOUT_GRID",
    "PRECISIONS",
    "Backbone",
    "Batch",
    "Embedder",
    "EmbedderConfig",
    "Failure",
    "Source",
    "Whitening",
    "check_scales",
    "default_batch_size",
    "default_workers",
    "extract_batches",
    "layout_descriptors",
    "load_backbone",
    "resized_shape",
]

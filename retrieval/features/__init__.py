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
from retrieval.features._embedder import STATE_SUFFIX, Embedder
from retrieval.features._extraction import (
    Batch,
    Decoded,
    Failure,
    Source,
    default_batch_size,
    default_workers,
    extract_batches,
)
from retrieval.features._int8 import CALIBRATION_IMAGES, prepare_int8
from retrieval.features._layout import LAYOUT_GRID, layout_descriptors
from retrieval.features._precision import (
    INT8_MIN_IMAGES,
    MEASURED_MAP_LOSS,
    NEGLIGIBLE_MAP_LOSS,
    PRECISION_CHOICES,
    CpuFeatures,
    Precision,
    PrecisionChoice,
    Probe,
    check_query_precision,
    cpu_features,
    resolve_precision,
)
from retrieval.features._whitening import Whitening

__all__ = [
    "BACKBONES",
    "CALIBRATION_IMAGES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INT8_MIN_IMAGES",
    "LAYOUT_GRID",
    "MEASURED_MAP_LOSS",
    "NEGLIGIBLE_MAP_LOSS",
    "PRECISIONS",
    "PRECISION_CHOICES",
    "STATE_SUFFIX",
    "Backbone",
    "Batch",
    "CpuFeatures",
    "Decoded",
    "Embedder",
    "EmbedderConfig",
    "Failure",
    "Precision",
    "PrecisionChoice",
    "Probe",
    "Source",
    "Whitening",
    "check_query_precision",
    "check_scales",
    "cpu_features",
    "default_batch_size",
    "default_workers",
    "extract_batches",
    "layout_descriptors",
    "load_backbone",
    "prepare_int8",
    "resized_shape",
    "resolve_precision",
]

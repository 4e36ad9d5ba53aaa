"""The front door's one list of names: type checkers read it, and ``retrieval/__init__.py`` reads
it at run time to load each name lazily from the module named here (PEP 562)."""

from retrieval._atomic import fsync_directory as fsync_directory
from retrieval._atomic import write_atomic as write_atomic
from retrieval._collection import Collection as Collection
from retrieval._collection import config_from_manifest as config_from_manifest
from retrieval._collection import create_collection as create_collection
from retrieval._collection import fit_embedder as fit_embedder
from retrieval._collection import manifest_for as manifest_for
from retrieval._collection import open_collection as open_collection
from retrieval._engines import calibration_sample as calibration_sample
from retrieval._ingest import IngestReport as IngestReport
from retrieval._ingest import ingest as ingest
from retrieval.errors import ArtifactError as ArtifactError
from retrieval.errors import ConfigError as ConfigError
from retrieval.errors import DatasetError as DatasetError
from retrieval.errors import ImageDecodeError as ImageDecodeError
from retrieval.errors import ImageTooLargeError as ImageTooLargeError
from retrieval.errors import ManifestMismatchError as ManifestMismatchError
from retrieval.errors import NotFoundError as NotFoundError
from retrieval.errors import RetrievalError as RetrievalError
from retrieval.errors import UnknownNameError as UnknownNameError
from retrieval.errors import UnsupportedImageError as UnsupportedImageError
from retrieval.errors import WeightsError as WeightsError
from retrieval.features import Embedder as Embedder
from retrieval.features import EmbedderConfig as EmbedderConfig
from retrieval.images import ALLOWED_FORMATS as ALLOWED_FORMATS
from retrieval.images import MEDIA_TYPES as MEDIA_TYPES
from retrieval.images import format_suffix as format_suffix
from retrieval.images import list_images as list_images
from retrieval.images import load_image as load_image
from retrieval.images import load_image_with_suffix as load_image_with_suffix
from retrieval.images import sha256_hex as sha256_hex
from retrieval.index import Hit as Hit
from retrieval.index import ImageIndex as ImageIndex
from retrieval.index import ImageRecord as ImageRecord
from retrieval.index import Manifest as Manifest

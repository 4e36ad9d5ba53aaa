"""The public surface: what ``retrieval`` and its subpackages export, and that edges use only it."""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import retrieval

REPO = Path(__file__).resolve().parents[2]
FRONT_DOORS = {"retrieval", "retrieval.features", "retrieval.pooling", "retrieval.index",
               "retrieval.evaluation", "retrieval.rerank", "retrieval.explain"}

PINNED = {
    "retrieval": [
        "ALLOWED_FORMATS", "ArtifactError", "Box", "ClusterError", "Collection", "ConfigError",
        "DatasetError", "Embedder", "EmbedderConfig", "Hit", "ImageDecodeError", "ImageIndex",
        "ImageRecord", "ImageTooLargeError", "IngestReport", "MEDIA_TYPES", "Manifest",
        "ManifestMismatchError", "NotFoundError", "PathPlan", "RetrievalError", "StorageFullError",
        "StoreError", "StoreTimeoutError", "StoreUnavailableError",
        "UniqueAdd", "UnknownNameError", "UnsupportedImageError", "WeightsError",
        "calibration_sample", "check_index_plan", "config_from_manifest", "create_collection",
        "crop_box", "parse_box",
        "fit_embedder", "format_suffix", "fsync_directory", "ingest", "list_images",
        "load_image", "load_image_with_suffix", "manifest_for", "open_collection",
        "plan_by_path", "sha256_hex", "write_atomic",
        "FileStamp", "StoredFiles", "SyncPlan", "SyncReport", "load_stamps", "plan_sync",
        "save_stamps", "scan_folder", "sync_folder", "sync_paths",
        "MigrationReport", "migrate_index", "stored_pages",
    ],
    "retrieval.pooling": [
        "POOLINGS", "MapPooling", "Param", "ParamValue", "Pooling", "make_pooling",
        "pooling_class", "pooling_names", "register_pooling",
    ],
}


@pytest.mark.parametrize("package", sorted(PINNED))
def test_all_is_pinned(package: str) -> None:
    assert sorted(importlib.import_module(package).__all__) == sorted(PINNED[package])


@pytest.mark.parametrize("package", sorted(FRONT_DOORS))
def test_every_exported_name_is_defined_in_the_library(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        home = getattr(value, "__module__", None)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert home is not None and home.split(".")[0] == "retrieval", (name, home)


def _stub_table() -> dict[str, tuple[str, str]]:
    """``__init__.pyi``'s exports: name -> (module, name there), parsed here independently."""
    tree = ast.parse((REPO / "retrieval" / "__init__.pyi").read_text(encoding="utf-8"))
    table = {}
    for node in tree.body:
        assert isinstance(node, ast.ImportFrom | ast.Expr), ast.dump(node)
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                assert alias.asname == alias.name, f"{alias.name} must be re-exported as itself"
                table[alias.name] = (str(node.module), alias.name)
    return table


def test_the_lazy_front_door_loads_exactly_what_its_stub_declares() -> None:
    table = _stub_table()
    assert sorted(table) == retrieval.__all__
    for name, (module, attr) in table.items():
        assert getattr(retrieval, name) is getattr(importlib.import_module(module), attr), name


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute"):
        _ = retrieval.not_a_name  # type: ignore[attr-defined]


def test_the_front_door_is_lazy() -> None:
    code = ("import sys, retrieval; from retrieval import ConfigError, Manifest; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def _retrieval_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "retrieval":
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "retrieval"]
    return found


@pytest.mark.parametrize("edge", ["indexer", "service", "bench"])
def test_edges_import_only_front_doors(edge: str) -> None:
    bad = {f"{path.relative_to(REPO)}: {module}"
           for path in (REPO / edge).rglob("*.py")
           for module in _retrieval_imports(path) if module not in FRONT_DOORS}
    assert not bad, sorted(bad)

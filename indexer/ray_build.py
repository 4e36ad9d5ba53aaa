"""``cbir index build --engine ray``: embed on a Ray Data actor pool, write on the driver.

The driver creates (or resumes) the collection exactly as the local build does — learned state
(MOP/VLAD, whitening) is fitted there once — filters out the paths already stored (Ray has no
notion of progress, so ``--resume`` embeds nothing twice only because the list is filtered
*before* the dataset exists), and hands the rest to Ray Data as a list of paths. Each actor builds
the embedder the manifest describes, loads the fitted state shipped from the driver in memory
(:meth:`Embedder.state_blobs`, ``ray.put`` once; the actor resolves the reference itself: Ray
Data passes it unresolved), and runs the embedder's one pipeline, as the local build does
(:meth:`Embedder.extract`, :meth:`Embedder.describe_batch`), so vectors are identical.
Rows come back in input order (``preserve_order``: reproducible ids) and the driver, the only
writer, adds them batch by batch: Ctrl-C leaves every committed batch, unreadable files come back
as rows with an error and are skipped and listed.

Work is handed out only once every actor of the pool is up (``wait_for_min_actors_s``), one call
per actor at a time (``max_tasks_in_flight_per_actor=1``): otherwise the first actor ready (the
near node's, while the far node's still imports torch) takes every queued batch, and a cluster
build runs on one node.

CPU budget: an actor claims ``ACTOR_CPUS`` (half a CPU) per torch thread, so on a small machine
the actors never hold every CPU and Ray's own tasks still run (whole-CPU actors on 2 cores hang).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import retrieval
from indexer.progress import progress_bar
from retrieval import (
    MEDIA_TYPES,
    ClusterError,
    Collection,
    ConfigError,
    Embedder,
    ImageDecodeError,
    IngestReport,
    Manifest,
    config_from_manifest,
)
from retrieval.features import Failure
from retrieval.index import NewImage

__all__ = ["EmbedActor", "ingest_on_ray", "is_uri", "list_uri_images", "ray_runtime_env"]

log = logging.getLogger("cbir")

ACTOR_CPUS = 0.5        # Ray CPUs an actor claims per torch thread (fractional: see docstring)
ACTOR_BATCH = 8         # paths per actor call
BLOCK_ROWS = 4          # paths per Ray block (small blocks keep every actor busy)
POOL_WAIT_S = 300       # seconds the pool may take to start every actor before work is handed out


def ray_runtime_env() -> dict[str, Any]:
    """Workers import this very checkout (not another install) and use one thread per op."""
    root = str(Path(retrieval.__file__).resolve().parents[1])
    return {"env_vars": {"PYTHONPATH": root, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}}


class EmbedActor:
    """One embedder per actor; ``__call__`` turns a batch of paths into vectors or errors."""

    def __init__(self, manifest: dict[str, Any], state: Any, weights_file: str | None,
                 device: str = "cpu", threads: int = 1) -> None:
        import ray
        import torch

        torch.set_num_threads(threads)
        blobs = ray.get(state) if isinstance(state, ray.ObjectRef) else state
        m = Manifest.from_dict(manifest)
        self.embedder = Embedder.create(config_from_manifest(m), device=device,
                                        weights_file=weights_file, allow_download=False)
        self.embedder.load_state_blobs({name: bytes(data) for name, data in blobs.items()},
                                       origin="the driver's fitted state")
        self.dim = m.dim
        self.node = (str(ray.get_runtime_context().get_node_id()) if ray.is_initialized()
                     else "no-ray")

    def __call__(self, batch: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        began = time.time()
        paths = [str(p) for p in batch["path"]]
        rows: dict[str, dict[str, Any]] = {}
        for item in self.embedder.extract([(p, _source(p)) for p in paths], workers=1):
            if isinstance(item, Failure):
                rows[item.key] = {"error": item.error.reason}
                continue
            xb, layouts = self.embedder.describe_batch(item)
            for d, vector, layout in zip(item.items, xb, layouts, strict=True):
                rows[d.key] = {"vector": vector, "layout": layout, "sha256": d.sha256,
                               "width": d.width, "height": d.height, "error": ""}
        return {**_columns(paths, rows, self.dim),
                "node": np.array([self.node] * len(paths), dtype=object),
                "began": np.full(len(paths), began), "ended": np.full(len(paths), time.time())}


def is_uri(text: str) -> bool:
    """An object-store or filesystem URI (``s3://…``, ``gs://…``, ``file://…``), not a path."""
    return "://" in text


def list_uri_images(uri: str) -> list[str]:
    """Image files under ``uri`` (recursive), as URIs, through pyarrow's filesystems."""
    import pyarrow.fs as pafs

    fs, root = pafs.FileSystem.from_uri(uri)
    scheme = uri.split("://", 1)[0]
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    return sorted(f"{scheme}://{i.path}" for i in infos
                  if i.type == pafs.FileType.File and not i.base_name.startswith(".")
                  and Path(i.base_name).suffix.lower() in MEDIA_TYPES)


def _source(path: str) -> Path | bytes:
    """A local path as it is; a URI's bytes read through its pyarrow filesystem."""
    if not is_uri(path):
        return Path(path)
    import pyarrow.fs as pafs

    fs, inner = pafs.FileSystem.from_uri(path)
    with fs.open_input_stream(inner) as stream:
        data: bytes = stream.read()
    return data


def _columns(paths: list[str], rows: dict[str, dict[str, Any]], dim: int
             ) -> dict[str, npt.NDArray[Any]]:
    """Rows in input order as numpy columns (failed rows: zero vector, their error)."""
    zero = np.zeros(dim, np.float32)
    got = [rows.get(p, {"error": "not returned by the decoder"}) for p in paths]
    width = max((len(r["layout"]) for r in got if "layout" in r), default=1)
    no_layout = np.zeros(width, np.float16)
    return {
        "path": np.array(paths, dtype=object),
        "vector": np.stack([r.get("vector", zero) for r in got]).astype(np.float32),
        "layout": np.stack([r.get("layout", no_layout) for r in got]).astype(np.float16),
        "sha256": np.array([r.get("sha256", "") for r in got], dtype=object),
        "width": np.array([r.get("width", 0) for r in got], dtype=np.int64),
        "height": np.array([r.get("height", 0) for r in got], dtype=np.int64),
        "error": np.array([r["error"] for r in got], dtype=object),
    }


def _init_ray(address: str | None) -> None:
    import ray

    kwargs: dict[str, Any] = {"runtime_env": ray_runtime_env(), "log_to_driver": False}
    if address is None:
        kwargs.update(include_dashboard=False, object_store_memory=512 * 2**20)
    else:
        kwargs["address"] = address
    ray.init(**kwargs)


def _pool_size(requested: int | None) -> tuple[int, float, float]:
    """(actors, CPUs per actor, GPUs per actor) from the cluster's resources."""
    import ray

    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    gpus = int(resources.get("GPU", 0))
    cpus = int(resources.get("CPU", 1))
    if requested is None:
        requested = gpus or max(1, cpus)
    if requested * ACTOR_CPUS > cpus or (gpus and requested > gpus):
        have = f"{cpus} CPUs" + (f" and {gpus} GPUs" if gpus else "")
        raise ConfigError(f"--ray-actors {requested}: the Ray cluster has {have}, room for "
                          f"{min(int(cpus / ACTOR_CPUS), gpus or cpus * 2)} actors")
    return requested, ACTOR_CPUS, 1.0 if gpus else 0.0


def _store(collection: Collection, batch: dict[str, npt.NDArray[Any]],
           report: IngestReport) -> None:
    ok = np.array([not e for e in batch["error"]], dtype=bool)
    for path, error in zip(batch["path"][~ok], batch["error"][~ok], strict=True):
        log.warning("skipped %s: %s", path, error)
        report.failures.append(Failure(str(path), ImageDecodeError(str(path), str(error))))
    if not ok.any():
        return
    news = [NewImage(path=str(p), sha256=str(s), width=int(w), height=int(h))
            for p, s, w, h in zip(batch["path"][ok], batch["sha256"][ok], batch["width"][ok],
                                  batch["height"][ok], strict=True)]
    report.added.extend(collection.index.add(news, batch["vector"][ok], batch["layout"][ok]))
    report.added_keys.extend(n.path for n in news)


def ingest_on_ray(collection: Collection, paths: Sequence[Path | str], *, address: str | None,
                  actors: int | None, weights_file: str | None, progress: bool
                  ) -> tuple[IngestReport, float]:
    """Embed ``paths`` on Ray and add them to ``collection``; returns the report and seconds.

    ``address``: ``--ray-address`` (None: a local Ray for this run); ``actors``: ``--ray-actors``
    (None: from the cluster's resources); ``weights_file``: ``--weights-file`` (None: the
    manifest's); ``progress``: show a progress bar.
    """
    report = IngestReport()
    start = time.perf_counter()
    if not paths:
        return report, 0.0
    import ray

    _init_ray(address)
    try:
        actors, cpus, gpus = _pool_size(actors)
        log.info("embedding %d images on Ray: %d actors × %.2g CPU%s", len(paths), actors, cpus,
                 f" + {gpus:g} GPU" if gpus else "")
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.execution_options.preserve_order = True
        ctx.wait_for_min_actors_s = POOL_WAIT_S
        weights = weights_file or collection.manifest.weights_file
        items = ray.data.from_items([{"path": str(p)} for p in paths],
                                    override_num_blocks=max(1, -(-len(paths) // BLOCK_ROWS)))
        ds = items.map_batches(
            EmbedActor, batch_size=ACTOR_BATCH, batch_format="numpy",
            fn_constructor_kwargs={"manifest": collection.manifest.to_dict(),
                                   "state": ray.put(collection.embedder.state_blobs()),
                                   "weights_file": weights,
                                   "device": "cuda" if gpus else "cpu"},
            compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=1),
            num_cpus=cpus, num_gpus=gpus)
        pace = _Pace(time.time())
        _drain(ds, len(paths), collection, report, pace, progress)
        pace.report()
    finally:
        ray.shutdown()
    return report, time.perf_counter() - start


def _drain(ds: Any, total: int, collection: Collection, report: IngestReport, pace: _Pace,
           progress: bool) -> None:
    """Store the pool's batches as they come; a pool that never fills is a clear error."""
    import ray

    with progress_bar(total, enabled=progress) as bar:
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy",
                                         prefetch_batches=1):
                _store(collection, batch, report)
                pace.batch(batch)
                bar.update(len(batch["path"]))
        except ray.exceptions.GetTimeoutError as exc:
            raise ConfigError(f"the Ray cluster did not start every actor within {POOL_WAIT_S} s "
                              "(not enough CPUs/GPUs for them): lower --ray-actors") from exc
        except ray.exceptions.RayError as exc:
            raise ClusterError(f"the Ray build stopped after {len(report.added)} of {total} "
                               f"images: {type(exc).__name__}: {_first_line(exc)} (the images "
                               "stored so far are kept; continue with --resume)") from exc


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of a Ray error (its tracebacks and actor ids follow it)."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), "no message")


class _Pace:
    """Start-up (until the first actor call began) apart from the steady state (images over the
    span of the actors' calls, the pool warm), and which Ray nodes the actors ran on."""

    def __init__(self, start: float) -> None:
        self.start, self.began, self.ended, self.images = start, float("inf"), 0.0, 0
        self.nodes: dict[str, int] = {}

    def batch(self, batch: dict[str, npt.NDArray[Any]]) -> None:
        self.began = min(self.began, float(batch["began"].min()))
        self.ended = max(self.ended, float(batch["ended"].max()))
        self.images += len(batch["node"])
        for node in batch["node"]:
            self.nodes[str(node)] = self.nodes.get(str(node), 0) + 1

    def report(self) -> None:
        span = self.ended - self.began
        log.info("Ray: pool warm after %.1f s (start-up), then %.2f images/s (steady "
                 "state, %d images in %.1f s of actor calls); actors ran on %d node(s): %s",
                 self.began - self.start, self.images / span if span > 0 else 0.0, self.images,
                 max(span, 0.0), len(self.nodes),
                 ", ".join(f"{n[:12]}: {c} images" for n, c in sorted(self.nodes.items())))

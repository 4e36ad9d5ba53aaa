"""How big each benchmark part runs: ``quick``, ``default`` (what ``make bench`` runs) or ``full``.

``default`` is sized to finish in well under ten minutes on a 2-core machine; ``full`` adds the
HNSW graph at 10^6 vectors (several minutes to build on 2 cores) and longer load tests.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MODES", "Plan"]


@dataclass(frozen=True)
class Plan:
    """Sizes of every part for one mode."""

    mode: str
    index_images: int  # paris250 images indexed per run (part 1)
    index_pairs: int  # bare/CLI pairs measured side by side (part 1)
    index_side: int = 224  # max side fed to VGG16 (parts 1 to 3)
    batched: int = 8  # the batch size also timed bare, to show why the CPU default is 1
    latency_seconds: tuple[float, float] = (12.0, 15.0)  # 1 client, 8 clients
    latency_index_images: int = 24
    scale_sizes: tuple[int, ...] = (100_000,)
    scale_hnsw_max: int = 100_000  # largest size at which HNSW is built
    scale_queries: int = 200
    peer_images: int = 250
    peer_side: int = 512
    peer_chunks: int = 5  # plain/ours alternations
    gpu_images: int = 1000
    ray_images: int = 48  # paris250 images built locally and on Ray (part "ray")
    milvus_sizes: tuple[int, ...] = (10_000, 100_000)  # vectors per engine (part "milvus")
    milvus_queries: int = 100
    graph_images: int = 100_000  # images in the DBA + kept-graph index (part "graph")
    diffusion_sizes: tuple[int, ...] = (250, 100_000)  # part "diffusion"
    diffusion_queries: int = 200


MODES: dict[str, Plan] = {
    "quick": Plan("quick", index_images=16, index_pairs=2, latency_seconds=(6.0, 8.0),
                  latency_index_images=16, scale_queries=100, peer_images=80, gpu_images=250,
                  ray_images=24, milvus_sizes=(10_000,), milvus_queries=50,
                  graph_images=20_000,
                  diffusion_sizes=(250, 10_000), diffusion_queries=50),
    "default": Plan("default", index_images=32, index_pairs=3,
                    scale_sizes=(100_000, 1_000_000)),
    "full": Plan("full", index_images=64, index_pairs=4, latency_seconds=(30.0, 30.0),
                 scale_sizes=(100_000, 1_000_000), scale_hnsw_max=1_000_000,
                 scale_queries=500, gpu_images=4000),
}

"""``make bench``: cbir's throughput and latency benchmarks (``python -m bench --help``).

Every figure is a ratio measured side by side in the same run, because the machines these run on
are shared and absolute times drift. Parts (one module each; results in ``bench/results/``):

1. :mod:`bench.indexing` — ``cbir index build`` images/s ÷ the bare backbone's forward images/s;
2. :mod:`bench.gpu` — the same on CUDA with autocast and channels_last (skipped without CUDA);
3. :mod:`bench.latency` — ``POST /search`` over HTTP, 1 and 8 clients, ÷ one forward + one search;
4. :mod:`bench.scale` — FAISS index types at 10^5 and 10^6 synthetic vectors: time, memory, recall;
5. :mod:`bench.peer` — a plain per-image extraction loop ÷ ours on paris250;
6. :mod:`bench.watching` — ``cbir index watch`` + a keyless server: file saved -> searchable.
7. :mod:`bench.features` — what each search feature (regions, filters, tags, pages, batch,
   explanations) costs per request, and filters at 10^5 records on both engines.
8. :mod:`bench.graph` — the kept neighbour graph with DBA at 10^5: open, one add, build time.
9. :mod:`bench.diffusion` — diffusion re-ranking's per-query cost at 250 and 10^5 synthetic
   vectors (first hits + the kernel, beyond the forward pass).
"""

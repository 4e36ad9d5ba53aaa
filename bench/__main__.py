"""``python -m bench [--quick | --full] [--parts NAME,...]``: run the benchmarks, write
``bench/results/<part>.json`` and print a summary. See :mod:`bench` for the parts."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence

from bench import (
    diffusion,
    features,
    gpu,
    graph,
    indexing,
    latency,
    peer,
    precision,
    scale,
    scaleout,
    watching,
)
from bench.machine import describe, load_average
from bench.plan import MODES, Plan
from bench.report import PartResult, summary_lines, write_result

PARTS: dict[str, Callable[[Plan], PartResult]] = {
    "indexing": indexing.run,
    "precision": precision.run,
    "gpu": gpu.run,
    "latency": latency.run,
    "scale": scale.run,
    "peer": peer.run,
    "ray": scaleout.run_ray,
    "milvus": scaleout.run_milvus,
    "watch": watching.run,
    "features": features.run,
    "graph": graph.run,
    "diffusion": diffusion.run,
}
#: Parts run only when named in ``--parts`` (not by ``make bench``).
OPT_IN: dict[str, Callable[[Plan], PartResult]] = {
    "graph-preset": graph.run_preset,
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="smaller sizes (about 3 minutes on 2 cores)")
    size.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="larger sizes, HNSW at 10^6 (tens of minutes on 2 cores)")
    p.set_defaults(mode="default")
    p.add_argument("--parts", default=",".join(PARTS),
                   help=f"comma-separated parts to run (default: all of {', '.join(PARTS)}; "
                        f"also: {', '.join(OPT_IN)})")
    return p.parse_args(argv)


def run_part(name: str, plan: Plan) -> PartResult:
    """One part, timed; an unexpected error becomes a failed result instead of a crash."""
    start = time.perf_counter()
    try:
        result = {**PARTS, **OPT_IN}[name](plan)
    except Exception as exc:  # report it and go on with the other parts
        logging.getLogger("bench").exception("part %s failed", name)
        result = PartResult(name, name, status="failed", reason=f"{type(exc).__name__}: {exc}")
    result.seconds = time.perf_counter() - start
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="bench: %(message)s")
    names = [n.strip() for n in args.parts.split(",") if n.strip()]
    unknown = [n for n in names if n not in PARTS and n not in OPT_IN]
    if unknown:
        known = ", ".join([*PARTS, *OPT_IN])
        print(f"bench: unknown part(s) {', '.join(unknown)}; choose from {known}",
              file=sys.stderr)
        return 2
    plan = MODES[args.mode]
    start = time.perf_counter()
    lines: list[str] = []
    failed = False
    for name in names:
        print(f"bench: running {name} ({args.mode})...", file=sys.stderr, flush=True)
        machine = describe()
        result = run_part(name, plan)
        machine["load_average_at_end"] = load_average()
        path = write_result(result, machine, plan.mode)
        failed = failed or result.status == "failed"
        lines += [*summary_lines(result), f"    -> {path.relative_to(path.parents[2])}"]
        print("\n".join(summary_lines(result)), file=sys.stderr, flush=True)
    print(f"\ncbir benchmarks ({args.mode}, {time.perf_counter() - start:.0f} s)")
    print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: render time of a generated 24-node stack against the 3-node pi-k3s stack.

    python bench/scale_bench.py [--runs 5] [--nodes 24]

Both are run in one process after a warm-up run, alternating; prints medians and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools import mockrun, stacks


def _time(**kwargs: object) -> float:
    start = time.perf_counter()
    mockrun.run("pi-k3s", **kwargs)  # type: ignore[arg-type]
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=24)
    args = parser.parse_args()
    big = stacks.scaled_config(args.nodes)
    _time()
    _time(config=big)
    small_times, big_times = [], []
    for _ in range(args.runs):
        small_times.append(_time())
        big_times.append(_time(config=big))
    small, large = statistics.median(small_times), statistics.median(big_times)
    print(f"3 nodes : median {small:.3f}s ({', '.join(f'{t:.3f}' for t in small_times)})")
    print(f"{args.nodes} nodes: median {large:.3f}s ({', '.join(f'{t:.3f}' for t in big_times)})")
    print(f"ratio: {large / small:.2f} (goal <= 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: cost of deriving Homepage's configuration and AutoKuma's monitor files from routes.

    python bench/derive_bench.py [--runs 5]

Derivation runs on every preview, so it must stay negligible next to the SDK imports as the
number of routes grows. Prints the median per route count and the generated sizes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components import homepage, status  # noqa: E402
from components.routes import Dashboard, Route  # noqa: E402
from config.settings import parse  # noqa: E402
from tools import mockrun  # noqa: E402


def routes(n: int) -> list[Route]:
    return [
        Route(
            name=f"app-{i}",
            host_prefix=f"app-{i}",
            namespace="apps",
            service=f"app-{i}",
            port=8000 + i % 1000,
            dashboard=Dashboard(group=f"Group {i % 5}", icon="mdi-apps", widget="prometheus"),
        )
        for i in range(n)
    ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    values, _ = mockrun.stack_config("pi-k3s")
    settings = parse({k.split(":", 1)[1]: v for k, v in values.items()})
    print(f"{'routes':>7} {'median ms':>10} {'homepage KiB':>13} {'autokuma KiB':>13}")
    for n in (10, 100, 1000):
        batch = routes(n)
        samples = []
        for _ in range(args.runs):
            start = time.perf_counter()
            files, _pairs = homepage.config_files(settings, batch)
            monitors = status.monitor_files(batch, settings)
            samples.append(time.perf_counter() - start)
        size_hp = sum(len(v) for v in files.values()) / 1024
        size_ak = sum(len(v) for v in monitors.values()) / 1024
        print(f"{n:7d} {statistics.median(samples) * 1000:10.1f} {size_hp:13.1f} {size_ak:13.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: what rendering the whole stack costs against importing the SDKs it uses.

    python bench/render_bench.py [--runs 5] [--stack pi-k3s]

Each sample is a fresh process, alternating the commands; prints medians and the ratios.

The bound is on the issue's own baseline, a plain ``python -c 'import ...'``. The render runs as a
batch with the garbage-collector settings of tools/batch.py, so the bench also times the same
imports under those settings: that like-for-like ratio is what the program itself adds.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMPORTS = "import pulumi, pulumi_kubernetes, pulumi_command, pulumi_cloudflare"
IMPORTS_AS_BATCH = (
    f"from tools import batch; batch.collect_rarely(); {IMPORTS}; batch.skip_collections_at_exit()"
)


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stack", default="pi-k3s")
    args = parser.parse_args()
    imports, batch_imports, renders = [], [], []
    with tempfile.TemporaryDirectory() as out:
        render_cmd = [sys.executable, "-m", "tools.render", "--stack", args.stack, "--out", out]
        _time(render_cmd)  # warm the file cache once
        for _ in range(args.runs):
            imports.append(_time([sys.executable, "-c", IMPORTS]))
            batch_imports.append(_time([sys.executable, "-c", IMPORTS_AS_BATCH]))
            renders.append(_time(render_cmd))
    mi, mb, mr = (statistics.median(s) for s in (imports, batch_imports, renders))
    for label, samples, median in (
        ("import SDKs", imports, mi),
        ("import SDKs, batch GC", batch_imports, mb),
        (f"render {args.stack}", renders, mr),
    ):
        print(f"{label:22}: median {median:.2f}s  ({', '.join(f'{t:.2f}' for t in samples)})")
    print(f"ratio render/import: {mr / mi:.2f} (bound <= 1.5)")
    print(f"ratio render/import with the same GC settings: {mr / mb:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

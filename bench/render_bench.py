"""Benchmark: what rendering the whole stack costs against importing the SDKs it uses.

    python bench/render_bench.py [--runs 5] [--stack pi-k3s]

Each sample is a fresh process, alternating the two commands; prints medians and the ratio.
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


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stack", default="pi-k3s")
    args = parser.parse_args()
    imports, renders = [], []
    with tempfile.TemporaryDirectory() as out:
        render_cmd = [sys.executable, "-m", "tools.render", "--stack", args.stack, "--out", out]
        _time(render_cmd)  # warm the file cache once
        for _ in range(args.runs):
            imports.append(_time([sys.executable, "-c", IMPORTS]))
            renders.append(_time(render_cmd))
    mi, mr = statistics.median(imports), statistics.median(renders)
    print(f"import SDKs : median {mi:.2f}s  ({', '.join(f'{t:.2f}' for t in imports)})")
    print(f"render {args.stack}: median {mr:.2f}s  ({', '.join(f'{t:.2f}' for t in renders)})")
    print(f"ratio render/import: {mr / mi:.2f} (goal <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

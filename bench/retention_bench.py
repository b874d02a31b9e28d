"""Benchmark: how long retention.sh takes on a NAS-sized backup root, and that it keeps exactly
the newest N dated folders and every other entry.

    python bench/retention_bench.py [--folders 520] [--others 50] [--keep 4] [--runs 5]

520 weekly folders is ten years of backups. Each run builds a fresh tree in a temp dir and
runs the script under every available shell (bash, busybox sh); prints the median per shell.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "components" / "scripts" / "retention.sh"


def build(root: Path, folders: int, others: int) -> list[str]:
    start = dt.date(2016, 1, 3)
    days = [(start + dt.timedelta(weeks=i)).isoformat() for i in range(folders)]
    for day in days:
        (root / day / "jellyfin_jellyfin-config").mkdir(parents=True)
    for i in range(others):
        (root / f"other-{i}").mkdir()
    return days


def run_once(shell: list[str], folders: int, others: int, keep: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "volumes"
        days = build(root, folders, others)
        env = {**os.environ, "BACKUP_ROOT": str(root), "KEEP": str(keep)}
        start = time.perf_counter()
        subprocess.run([*shell, str(SCRIPT)], env=env, check=True, stdout=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
        left = sorted(p.name for p in root.iterdir())
        expected = sorted(days[-keep:] + [f"other-{i}" for i in range(others)])
        if left != expected:
            raise SystemExit(f"{shell}: retention kept the wrong set ({len(left)} entries)")
        return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folders", type=int, default=520)
    parser.add_argument("--others", type=int, default=50)
    parser.add_argument("--keep", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    shells = [["bash"]] + ([["busybox", "sh"]] if shutil.which("busybox") else [])
    print(f"retention.sh: {args.folders} dated folders + {args.others} others, keep {args.keep}")
    for shell in shells:
        samples = [run_once(shell, args.folders, args.others, args.keep) for _ in range(args.runs)]
        median_ms = statistics.median(samples) * 1000
        print(f"  {' '.join(shell):<11} median {median_ms:7.1f} ms over {args.runs} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

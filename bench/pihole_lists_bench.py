"""Benchmark: what one run of the list reconciler costs, in API calls and wall time.

    python bench/pihole_lists_bench.py [--runs 5]

Runs components/scripts/pihole-lists.sh against the fake Pi-hole v6 API (127.0.0.1) for the
shipped lists: a first run (empty Pi-hole), an idle run (nothing to change) and a run after one
URL was removed. Prints the median wall time and the API calls of each. Gravity is instant in the
fake; on a Pi it dominates (minutes) and only runs when something changed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.lists import adlist_problems, allowlist_problems  # noqa: E402
from tests.fake_pihole import FakePihole  # noqa: E402

SCRIPT = ROOT / "components" / "scripts" / "pihole-lists.sh"


def _run(url: str, password: str, adlists: list[str], allow: list[str], tmp: Path) -> float:
    (tmp / "adlists.txt").write_text("\n".join(adlists) + "\n")
    (tmp / "allowlist.txt").write_text("\n".join(allow) + "\n")
    env = {
        "PATH": os.environ["PATH"],
        "PIHOLE_URL": url,
        "PIHOLE_PASSWORD": password,
        "ADLISTS_FILE": str(tmp / "adlists.txt"),
        "ALLOWLIST_FILE": str(tmp / "allowlist.txt"),
        "RETRY_DELAY": "0",
    }
    start = time.perf_counter()
    subprocess.run(["bash", str(SCRIPT)], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    adlists = adlist_problems("config/adlists.txt")[0]
    allow = allowlist_problems("config/allowlist.txt")[0]
    samples: dict[str, list[float]] = {"first": [], "idle": [], "remove-one": []}
    calls: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for _ in range(args.runs):
            fake = FakePihole()
            url = fake.start()
            try:
                for name, lists in (("first", adlists), ("idle", adlists), ("remove-one", adlists[1:])):
                    before = len(fake.calls)
                    samples[name].append(_run(url, fake.password, lists, allow, tmp))
                    calls[name] = len(fake.calls) - before
            finally:
                fake.stop()
    print(f"{len(adlists)} block lists, {len(allow)} allowlisted domains, {args.runs} runs each")
    for name, times in samples.items():
        print(f"  {name:<11} median {statistics.median(times) * 1000:7.0f} ms   {calls[name]:3d} API calls")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

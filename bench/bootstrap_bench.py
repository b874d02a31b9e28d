"""Benchmark: what a rerun of the node scripts costs on a host that is already right, against
the first run that changes it (fake host from tests/fakehost.py: stub commands, fake root).

    python bench/bootstrap_bench.py [--runs 5]

The point is that `pulumi up` on a converged cluster is cheap and changes nothing: prints, per
script, the median seconds of the first and the second run and how many changing calls each made.
The stubs are Python processes, so absolute times overstate a real host's; the ratio is the figure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_bootstrap_scripts import (  # noqa: E402
    AGENT_ENV,
    DNS_ENV,
    FRESH_CMDLINE,
    LABEL_ENV,
    Host,
    changes,
)


def _host(tmp: Path) -> Host:
    host = Host(
        tmp,
        {
            "units": {"dphys-swapfile.service": {"enabled": "enabled", "active": True}},
            "nm": {
                "Wired connection 1": {
                    "ipv4.dns": "",
                    "ipv4.ignore-auto-dns": "no",
                    "GENERAL.DEVICES": "eth0",
                }
            },
            "nodes": {
                "pi3-worker-1": {
                    "labels": {"kubernetes.io/hostname": "pi3-worker-1"},
                    "annotations": {},
                    "taints": [],
                }
            },
        },
    )
    host.file("boot/firmware/cmdline.txt", FRESH_CMDLINE + "\n")
    host.file("proc/cmdline", FRESH_CMDLINE + " cgroup_memory=1 cgroup_enable=memory\n")
    host.file("proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n/var/swap\tfile\t102396\t0\t-2\n")
    return host


STEPS = [
    ("node-prepare.sh", {}),
    ("node-dns.sh", DNS_ENV),
    ("k3s-install.sh", AGENT_ENV),
    ("node-labels.sh", LABEL_ENV),
]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    first: dict[str, list[float]] = {s: [] for s, _ in STEPS}
    second: dict[str, list[float]] = {s: [] for s, _ in STEPS}
    counts: dict[str, tuple[int, int]] = {}
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            host = _host(Path(tmp) / str(i))
            for script, env in STEPS:
                t0 = time.perf_counter()
                calls1, _ = host.run(script, env)
                t1 = time.perf_counter()
                calls2, _ = host.run(script, env)
                t2 = time.perf_counter()
                first[script].append(t1 - t0)
                second[script].append(t2 - t1)
                counts[script] = (len(changes(calls1)), len(changes(calls2)))
    print(f"{'script':<18} {'first s':>8} {'rerun s':>8} {'changes':>8} {'rerun changes':>14}")
    total1 = total2 = 0.0
    for script, _ in STEPS:
        a, b = statistics.median(first[script]), statistics.median(second[script])
        total1, total2 = total1 + a, total2 + b
        print(f"{script:<18} {a:8.3f} {b:8.3f} {counts[script][0]:8d} {counts[script][1]:14d}")
    print(f"{'total':<18} {total1:8.3f} {total2:8.3f}   rerun/first = {total2 / total1:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: what the guardrails cost at preview time.

    python bench/guardrails_bench.py [--runs 7] [--workloads 300]

Times, in-process, the capacity plan (placement, checks and the N-1 agent-loss pass) and the
NetworkPolicy/quota derivation for the seed's workloads and for a synthetic stack of
``--workloads`` workloads spread over 30 namespaces, each behind a route; prints medians.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components import capacity, guardrails  # noqa: E402
from components import k8s as kb  # noqa: E402
from components.capacity import WorkloadRegistry, from_values  # noqa: E402
from components.routes import Route  # noqa: E402
from config.settings import parse  # noqa: E402
from tools import mockrun  # noqa: E402

INGRESS = guardrails.Peer("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})


def _res(mem: str) -> dict[str, dict[str, str]]:
    return {"requests": {"cpu": "10m", "memory": mem}, "limits": {"memory": mem}}


def _median(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--workloads", type=int, default=300)
    args = parser.parse_args()
    values, _ = mockrun.stack_config("pi-k3s")
    raw = {k.split(":", 1)[1]: copy.deepcopy(v) for k, v in values.items()}
    raw["nodes"][0]["hardware"]["memory"] = "64Gi"  # room for the synthetic stack
    settings = parse(raw)
    seed = [
        from_values("pihole", "pihole", _res("128Mi"), node="pi-k3s"),
        from_values("unbound", "pihole", _res("64Mi"), node="pi3-worker-1"),
        from_values("pihole-exporter", "pihole", _res("32Mi")),
    ]
    reg = WorkloadRegistry()
    routes = []
    for i in range(args.workloads):
        ns = f"ns{i % 30}"
        reg.add(from_values(f"app{i}", ns, _res("16Mi")))
        reg.service(f"app{i}", ns, kb.selector(f"app{i}"), {80: 8080}, labels=kb.labels(f"app{i}"))
        routes.append(Route(f"app{i}", f"app{i}", ns, f"app{i}", 80))

    def derive() -> None:
        result = capacity.plan(settings, reg.workloads())
        namespaces = guardrails.app_namespaces(reg, routes, [], [])
        guardrails.network_policies(settings, reg, routes, [], [], INGRESS)
        guardrails.quotas(settings, result, namespaces)

    seed_s = _median(lambda: capacity.plan(settings, seed), args.runs)
    big_s = _median(derive, args.runs)
    print(f"capacity plan, seed (3 workloads):            {seed_s * 1000:8.2f} ms")
    print(f"plan + policies + quotas, {args.workloads} workloads/routes: {big_s * 1000:8.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Generated stack configurations for scale tests and benchmarks."""

from __future__ import annotations

import copy
from typing import Any

from tools import mockrun


def scaled_config(nodes: int, base: str = "pi-k3s") -> dict[str, Any]:
    """The ``base`` stack's plain config with ``nodes`` nodes: its own, then Pi 3 agents."""
    values, _ = mockrun.stack_config(base)
    config = copy.deepcopy(values)
    existing = config["pi-cluster:nodes"]
    extra = nodes - len(existing)
    if extra < 0:
        raise ValueError(f"{base} already has {len(existing)} nodes")
    for i in range(extra):
        existing.append(
            {
                "name": f"pi3-extra-{i + 1}",
                "address": f"192.168.1.{100 + i}",
                "role": "agent",
                "hardware": {"model": "pi3", "cores": 4, "memory": "1Gi"},
                "skipHostKeyCheck": "generated node of a scale test, no real host",
                "labels": {"pi-cluster/class": "pi3"},
            }
        )
    return config

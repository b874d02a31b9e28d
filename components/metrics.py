"""Scrape targets are declared by the component that runs the exporter; the monitoring
component derives one ServiceMonitor per target (depending on the release that installs the
Prometheus operator's CRDs), so no app component needs to know how Prometheus is installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ScrapeTarget:
    """A Service whose named port serves Prometheus metrics."""

    name: str
    namespace: str
    selector: Mapping[str, str]  # labels of the Service to scrape
    port: str  # the Service port's name
    path: str = "/metrics"
    interval: str = "30s"
    labels: Mapping[str, str] = field(default_factory=dict)  # extra labels on every series


class MetricsRegistry:
    """Collects scrape targets; names are unique per namespace."""

    def __init__(self) -> None:
        self._targets: dict[tuple[str, str], ScrapeTarget] = {}
        self._frozen = False

    def add(self, target: ScrapeTarget) -> ScrapeTarget:
        if self._frozen:
            raise ValueError(
                f"scrape target {target.namespace}/{target.name} declared after the ServiceMonitors "
                "were derived; declare every target first"
            )
        key = (target.namespace, target.name)
        if key in self._targets:
            raise ValueError(f"scrape target {target.namespace}/{target.name} declared twice")
        self._targets[key] = target
        return target

    def targets(self) -> tuple[ScrapeTarget, ...]:
        return tuple(self._targets.values())

    def freeze(self) -> tuple[ScrapeTarget, ...]:
        """Close the registry and return every target in declaration order."""
        self._frozen = True
        return self.targets()

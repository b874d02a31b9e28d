"""The only workloads allowed onto the host's network, ports or filesystem, each with its reason."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase


@dataclass(frozen=True)
class HostAccess:
    namespace: str  # fnmatch pattern
    name: str  # fnmatch pattern on the workload's metadata.name
    reason: str
    host_network: bool = False
    host_ports: tuple[int, ...] = ()
    host_paths: tuple[str, ...] = ()  # allowed path prefixes

    def matches(self, namespace: str, name: str) -> bool:
        return fnmatchcase(namespace, self.namespace) and fnmatchcase(name, self.name)


HOST_ACCESS: tuple[HostAccess, ...] = (
    HostAccess(
        "pihole",
        "pihole",
        "LAN clients use the node address for DNS: Pi-hole must answer :53 and serve its admin "
        "UI on :80 of that address",
        host_network=True,
        host_ports=(53, 80),
    ),
    HostAccess(
        "pihole",
        "pihole-[2-9]",
        "further Pi-hole instances (dns.instances, issue 10): the same reason, on their own node",
        host_network=True,
        host_ports=(53, 80),
    ),
    HostAccess(
        "ingress-nginx",
        "ingress-nginx-controller*",
        "HTTPS for every web route on :443 of the node (:80 belongs to Pi-hole)",
        host_ports=(443,),
    ),
    HostAccess(
        "*",
        "pvc-backup*",
        "reads the node's local-path volumes to copy them off the node",
        host_paths=("/var/lib/rancher/k3s/storage",),
    ),
)


def entry(namespace: str, name: str) -> HostAccess | None:
    return next((a for a in HOST_ACCESS if a.matches(namespace, name)), None)

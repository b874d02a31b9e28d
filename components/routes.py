"""One declaration per web app: the route registry.

An app declares a :class:`Route` once; the ingress component derives its Ingress and TLS from
it, the status component its monitor, Homepage its tile, the guardrails their NetworkPolicy, and
the stack output ``urls`` its address. Consumers read the registry only after every app has
declared its routes (:meth:`RouteRegistry.freeze`), so nothing is derived from a partial list.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from config.types import DNS_LABEL


class RouteError(ValueError):
    """A route declaration that cannot work; the message names the route."""


@dataclass(frozen=True)
class Dashboard:
    """How Homepage shows the route."""

    group: str
    icon: str
    description: str = ""
    # Homepage widget type (e.g. "pihole") and its fields; credentials as HOMEPAGE_VAR_* names.
    widget: str | None = None
    widget_fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    """A web app reachable at ``https://<host_prefix>.<domain>``."""

    name: str
    host_prefix: str
    namespace: str
    service: str
    port: int
    protocol: Literal["http", "https"] = "http"
    health_path: str = "/"
    # Request body limit ("0" means unlimited) and proxy timeouts in seconds; None = default.
    body_size: str | None = None
    read_timeout: int | None = None
    send_timeout: int | None = None
    dashboard: Dashboard | None = None
    # Resources the derived objects wait for (e.g. the backend Service), so one `pulumi up`
    # on an empty cluster creates them in order. Not part of the route's identity.
    depends_on: tuple[Any, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if not DNS_LABEL.match(self.host_prefix):
            raise RouteError(
                f"route {self.name!r}: host prefix {self.host_prefix!r} is not a DNS label "
                "(lowercase letters, digits and '-', at most 63)"
            )
        if not DNS_LABEL.match(self.name):
            raise RouteError(f"route {self.name!r}: name is not a DNS label")
        if self.protocol not in ("http", "https"):
            raise RouteError(f"route {self.name!r}: protocol {self.protocol!r} is not http or https")
        if not 0 < self.port < 65536:
            raise RouteError(f"route {self.name!r}: port {self.port} is not a TCP port")
        if not self.health_path.startswith("/"):
            raise RouteError(f"route {self.name!r}: health path {self.health_path!r} must start with '/'")

    def host(self, domain: str) -> str:
        return f"{self.host_prefix}.{domain}"

    def url(self, domain: str) -> str:
        return f"https://{self.host(domain)}"

    @property
    def tls_secret(self) -> str:
        return f"{self.name}-tls"


class RouteRegistry:
    """Collects routes, refuses duplicates, and is frozen before consumers read it."""

    def __init__(self, domain: str) -> None:
        self.domain = domain
        self._routes: dict[str, Route] = {}
        self._frozen = False

    def add(self, route: Route) -> Route:
        if self._frozen:
            raise RouteError(
                f"route {route.name!r} declared after the routes were read; declare every "
                "route before the ingress, status and dashboard components derive from them"
            )
        if route.name in self._routes:
            raise RouteError(f"route {route.name!r} is declared twice")
        for other in self._routes.values():
            if other.host_prefix == route.host_prefix:
                raise RouteError(
                    f"routes {other.name!r} and {route.name!r} both use host {route.host(self.domain)}"
                )
        self._routes[route.name] = route
        return route

    def freeze(self) -> tuple[Route, ...]:
        """Close the registry and return every route in declaration order."""
        self._frozen = True
        return tuple(self._routes.values())

    @property
    def frozen(self) -> bool:
        return self._frozen

    def __iter__(self) -> Iterator[Route]:
        return iter(self.freeze())

    def __len__(self) -> int:
        return len(self._routes)

    def urls(self) -> dict[str, str]:
        return {r.name: r.url(self.domain) for r in self.freeze()}

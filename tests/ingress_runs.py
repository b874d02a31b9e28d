"""Extra whole-program runs for the secrets and ingress tests (each run costs seconds: share them).

``with_app`` runs the real ``__main__.py`` with one more web app declared just before the status
and dashboard routes close the registry (its namespace, an http backend with body size and timeouts
and one templated ExternalSecret), exactly as an app component would declare them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.conftest import ROOT
from tools import mockrun

PUBLISH = "ingress.publish(routes)"
LAST_ROUTES = "routes.add(status_route(settings))"
APP = """
from components import k8s as _kb
from components.routes import Route as _Route

_kb.namespace(
    "photos",
    resource_name="photos-namespace",
    opts=pulumi.ResourceOptions(provider=provider),
    workloads=workloads,
)
routes.add(
    _Route(
        name="photos",
        host_prefix="photos",
        namespace="photos",
        service="photos-server",
        port=2283,
        body_size="50000m",
        read_timeout=600,
        send_timeout=600,
    )
)
platform_secrets.external_secret(
    "photos-db",
    "photos",
    {"password": "immich/db-password", "user": "immich/db-user"},
    template={"url": "postgres://{{ .user }}:{{ .password }}@db:5432/photos"},
    parent=platform_secrets,
)
"""


def stack_values() -> dict[str, Any]:
    return mockrun.stack_config("pi-k3s")[0]


def with_ingress(**changes: Any) -> dict[str, Any]:
    """An override of the ``ingress`` section with some keys changed."""
    return {"pi-cluster:ingress": {**stack_values()["pi-cluster:ingress"], **changes}}


def with_app(tmp: Path, overrides: dict[str, Any] | None = None) -> mockrun.Result:
    main = (ROOT / "__main__.py").read_text()
    assert main.count(PUBLISH) == 1, "__main__.py must publish the routes exactly once"
    assert main.count(LAST_ROUTES) == 1, "__main__.py must declare the status route once"
    (tmp / "__main__.py").write_text(main.replace(LAST_ROUTES, APP + LAST_ROUTES))
    shutil.copy(ROOT / "Pulumi.pi-k3s.yaml", tmp / "Pulumi.pi-k3s.yaml")
    return mockrun.run("pi-k3s", overrides=overrides, root=tmp)

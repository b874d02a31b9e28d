"""LAN devices as routes: a selector-less Service backed by an EndpointSlice per device.

The Endpoints API is deprecated since Kubernetes 1.33, so each device's address lives in an
EndpointSlice labelled ``kubernetes.io/service-name``; the ingress then treats the device like
any in-cluster backend. Devices, ports and protocols come from ``lanDevices[].route``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import k8s as kb
from components.capacity import WorkloadRegistry
from components.routes import Dashboard, Route, RouteRegistry
from config.settings import LanDevice, Settings

NAMESPACE = "external-services"


@dataclass(frozen=True)
class ExternalServicesArgs:
    settings: Settings
    provider: k8s.Provider
    routes: RouteRegistry
    workloads: WorkloadRegistry


def service_name(device: LanDevice) -> str:
    return f"{device.name}-external"


class ExternalServices(pulumi.ComponentResource):
    """One Service + EndpointSlice + route per LAN device that has a ``route``."""

    services: dict[str, k8s.core.v1.Service]

    def __init__(
        self, name: str, args: ExternalServicesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pi-cluster:external_services:ExternalServices", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        devices = [d for d in args.settings.lan_devices if d.route]
        self.services = {}
        if devices:
            ns = kb.namespace(
                NAMESPACE, resource_name=f"{name}-namespace", opts=child, workloads=args.workloads
            )
            for device in devices:
                self.services[device.name] = self._device(name, device, ns, args)
        self.register_outputs({"devices": sorted(self.services)})

    def _device(
        self, name: str, device: LanDevice, ns: k8s.core.v1.Namespace, args: ExternalServicesArgs
    ) -> k8s.core.v1.Service:
        route = device.route
        assert route is not None
        svc_name = service_name(device)
        opts = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[ns])
        # Port named after the protocol: controllers (Traefik) read "https" as an https backend.
        port = {"name": route.protocol, "port": route.port, "targetPort": route.port, "protocol": "TCP"}
        svc = kb.service(
            svc_name,
            NAMESPACE,
            [port],
            opts=opts,
            resource_name=f"{name}-{device.name}-service",
            app=device.name,
            select=False,
            workloads=args.workloads,
        )
        k8s.discovery.v1.EndpointSlice(
            f"{name}-{device.name}-endpoints",
            metadata=kb.metadata(
                svc_name,
                NAMESPACE,
                device.name,
                extra_labels={
                    "kubernetes.io/service-name": svc_name,
                    # Tells the EndpointSlice controller this slice is not its own to reconcile.
                    "endpointslice.kubernetes.io/managed-by": "pulumi",
                },
            ),
            address_type="IPv4",
            endpoints=[{"addresses": [device.address], "conditions": {"ready": True}}],
            ports=[{"name": route.protocol, "port": route.port, "protocol": "TCP"}],
            opts=opts,
        )
        args.routes.add(
            Route(
                name=device.name,
                host_prefix=route.host_prefix,
                namespace=NAMESPACE,
                service=svc_name,
                port=route.port,
                protocol=route.protocol,
                health_path=route.health_path,
                dashboard=Dashboard(
                    group=route.group, icon=route.icon, description=f"LAN device {device.address}"
                ),
                depends_on=(svc,),
            )
        )
        return svc

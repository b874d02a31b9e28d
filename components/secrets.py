"""Secrets: External Secrets Operator with 1Password, and one call to declare an ExternalSecret.

The 1Password service-account token is the stack's only bootstrap secret: it goes from the
stack's secret config straight into the Secret ``onepassword-service-account``. Everything else
comes from 1Password through :meth:`Secrets.external_secret`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import capacity
from components import k8s as kb
from components.capacity import WorkloadRegistry
from components.guardrails import Flow, FlowRegistry, Peer
from components.metrics import ScrapeTarget
from config.settings import Settings

NAMESPACE = "external-secrets"
STORE = "onepassword"
TOKEN_SECRET = "onepassword-service-account"


@dataclass(frozen=True)
class SecretsArgs:
    settings: Settings
    provider: k8s.Provider
    onepassword_token: pulumi.Output[str]
    workloads: WorkloadRegistry
    flows: FlowRegistry


class Secrets(pulumi.ComponentResource):
    """ESO chart, the 1Password token Secret, and the ClusterSecretStore ``onepassword``."""

    release: k8s.helm.v3.Release
    store: k8s.apiextensions.CustomResource

    def __init__(self, name: str, args: SecretsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pi-cluster:secrets:Secrets", name, None, opts)
        s = args.settings
        self._settings = s
        self._provider = args.provider
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)

        ns = kb.namespace(NAMESPACE, resource_name=f"{name}-namespace", opts=child, workloads=args.workloads)
        chart = s.secrets.chart
        self.release = kb.helm_release(
            "external-secrets",
            NAMESPACE,
            s.chart_source(chart),
            eso_values(s),
            resource_name=f"{name}-eso",
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[ns]),
        )
        declare_workloads(s, args.workloads)
        args.flows.add(
            Flow(
                "apiserver-to-webhook",
                Peer(nodes=True),
                NAMESPACE,
                {"app.kubernetes.io/name": "external-secrets-webhook"},
                ("webhook",),
            )
        )
        token = k8s.core.v1.Secret(
            f"{name}-onepassword-token",
            metadata=kb.metadata(TOKEN_SECRET, NAMESPACE, "external-secrets"),
            type="Opaque",
            string_data={"token": args.onepassword_token},
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[ns]),
        )
        self.store = k8s.apiextensions.CustomResource(
            f"{name}-store",
            api_version="external-secrets.io/v1",
            kind="ClusterSecretStore",
            metadata=kb.metadata(STORE, None, "external-secrets"),
            spec={
                "provider": {
                    "onepasswordSDK": {
                        "vault": s.onepassword.vault,
                        "auth": {
                            "serviceAccountSecretRef": {
                                "name": TOKEN_SECRET,
                                "key": "token",
                                "namespace": NAMESPACE,
                            }
                        },
                    }
                }
            },
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=[self.release, token]
            ),
        )
        self.register_outputs({"store": STORE})

    def item(self, reference: str) -> str:
        """A 1Password ``item/field`` reference with the stack's optional item prefix."""
        if reference.count("/") != 1 or not all(reference.split("/")):
            raise ValueError(f"1Password reference {reference!r} is not 'item/field'")
        return f"{self._settings.onepassword.item_prefix}{reference}"

    def external_secret(
        self,
        name: str,
        namespace: str,
        data: Mapping[str, str],
        *,
        target: str | None = None,
        template: Mapping[str, str] | None = None,
        refresh: str | None = None,
        parent: pulumi.Resource,
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> k8s.apiextensions.CustomResource:
        """Declare an ExternalSecret that fills Secret ``target`` (default ``name``).

        ``data`` maps a key of the target Secret to a 1Password ``item/field`` reference;
        ``template`` optionally renders the Secret's keys from those values (ESO templating).
        Refreshes every 24h by default: 1Password rate-limits frequent reads.
        """
        target_spec: dict[str, Any] = {"name": target or name, "creationPolicy": "Owner"}
        if template:
            target_spec["template"] = {"engineVersion": "v2", "data": dict(template)}
        return k8s.apiextensions.CustomResource(
            f"{namespace}-{name}-externalsecret",
            api_version="external-secrets.io/v1",
            kind="ExternalSecret",
            metadata=kb.metadata(name, namespace, name),
            spec={
                "refreshInterval": refresh or self._settings.secrets.refresh_interval,
                "secretStoreRef": {"kind": "ClusterSecretStore", "name": STORE},
                "target": target_spec,
                "data": [
                    {"secretKey": key, "remoteRef": {"key": self.item(ref)}}
                    for key, ref in sorted(data.items())
                ],
            },
            opts=pulumi.ResourceOptions(
                parent=parent,
                provider=self._provider,
                # The release installs the ExternalSecret CRD; the store is what it reads from.
                depends_on=[self.release, self.store, *depends_on],
            ),
        )


def declare_workloads(s: Settings, workloads: WorkloadRegistry) -> None:
    """The chart's three Deployments (one replica each, resources from eso_values) and its
    Services (selectors and target ports as templated by external-secrets chart 1.2.0)."""
    values = eso_values(s)
    for name, block in (
        ("external-secrets", values["resources"]),
        ("external-secrets-webhook", values["webhook"]["resources"]),
        ("external-secrets-cert-controller", values["certController"]["resources"]),
    ):
        workloads.add(capacity.from_values(name, NAMESPACE, block, 1))
    instance = {"app.kubernetes.io/instance": "external-secrets"}
    workloads.service(
        "external-secrets-webhook",
        NAMESPACE,
        {"app.kubernetes.io/name": "external-secrets-webhook", **instance},
        {443: "webhook"},
        labels={"app.kubernetes.io/name": "external-secrets-webhook", **instance},
        port_names={"webhook": 443},
    )
    workloads.service(
        "external-secrets-metrics",
        NAMESPACE,
        {"app.kubernetes.io/name": "external-secrets", **instance},
        {8080: "metrics"},
        labels={"app.kubernetes.io/name": "external-secrets", **instance},
        port_names={"metrics": 8080},
    )


def eso_values(s: Settings) -> dict[str, Any]:
    """Chart values (keys as external-secrets chart 1.2.x reads them)."""
    r = s.secrets.resources
    # The chart renders a pod-level context only from keys beside "enabled" (external-secrets
    # chart 1.2.0 templates/deployment.yaml, webhook-deployment.yaml and
    # cert-controller-deployment.yaml: `if and (.enabled) (gt (keys . | len) 1)`).
    pod_context = {"enabled": True, "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    return {
        "installCRDs": True,
        "resources": r.spec(),
        "webhook": {"resources": r.spec(), "podSecurityContext": pod_context},
        "certController": {"resources": r.spec(), "podSecurityContext": pod_context},
        "metrics": {"service": {"enabled": True}},
        "podSecurityContext": pod_context,
        "securityContext": {"enabled": True},
    }


# The ESO controller's metrics Service (chart 1.2.0 templates/service.yaml: "<fullname>-metrics",
# selector labels name/instance, port "metrics"); monitoring derives its ServiceMonitor.
METRICS_TARGET = ScrapeTarget(
    name="external-secrets",
    namespace=NAMESPACE,
    selector={"app.kubernetes.io/name": "external-secrets", "app.kubernetes.io/instance": "external-secrets"},
    port="metrics",
)

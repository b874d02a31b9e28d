"""What K3s and the charts' controllers would do in the cluster that no process here does,
played by the harness (no container runs, so neither does any controller a chart installs):

- **local-path** (K3s ships the StorageClass and rancher/local-path-provisioner): the
  StorageClass as K3s creates it, and a stand-in for the provisioner that gives a
  WaitForFirstConsumer claim, once the scheduler picked its node, a PersistentVolume on that
  node, and deletes a Released one (reclaimPolicy Delete). The controller manager's own
  PV controller then binds the claim, as in K3s.
- **ingress-nginx's status sync**: the controller writes its address into the
  ``status.loadBalancer`` of every Ingress of its class (Pulumi's Ingress await waits for it).

Each is modelled on the source named beside it; everything else (scheduling, binding,
garbage collection, Pod Security) is the real kube-apiserver, controller manager and scheduler.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from components.ingress import CONTROLLERS
from e2e.kube import Api, ApiError

PROVISIONER = "rancher.io/local-path"
# K3s manifests/local-storage.yaml: the default class, WaitForFirstConsumer, reclaim Delete,
# volumes of type `local` (defaultVolumeType). Read at k3s-io/k3s commit 0362e38 (which runs
# rancher/local-path-provisioner:v0.0.29) and, for comparison, d804db3 (v0.0.19, before
# defaultVolumeType): the tag v1.33.6+k3s1 could not be read (the k3s repository is too big
# to fetch here; the search index stores only those two revisions of the file).
STORAGE_CLASS: dict[str, Any] = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {
        "name": "local-path",
        "annotations": {
            "defaultVolumeType": "local",
            "storageclass.kubernetes.io/is-default-class": "true",
        },
    },
    "provisioner": PROVISIONER,
    "volumeBindingMode": "WaitForFirstConsumer",
    "reclaimPolicy": "Delete",
}
# K3s' --default-local-storage-path default, the one path of its local-path config's nodePathMap
# (%{DEFAULT_LOCAL_STORAGE_PATH}% in manifests/local-storage.yaml): k3s-io/k3s
# pkg/cli/server/server.go (read at commit 005499a, the revision the search index stores)
# joins datadir.LocalHome(--data-dir) with "/storage" when the flag is unset, and
# pkg/datadir/datadir.go (commit d15f412) defaults the data dir to /var/lib/rancher/k3s as root.
STORAGE_ROOT = "/var/lib/rancher/k3s/storage"
SELECTED_NODE = "volume.kubernetes.io/selected-node"  # set by the scheduler's VolumeBinding
STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"  # set by the PV controller
# The controller components/ingress.py installs; ingress-nginx chart 4.15.1 passes it
# --publish-service=$(POD_NAMESPACE)/<fullname>-controller.
NGINX = CONTROLLERS["ingress-nginx"]
NGINX_SERVICE = "ingress-nginx-controller"


def local_path_volume(pvc: dict[str, Any], node: str, reclaim: str = "Delete") -> dict[str, Any]:
    """The PersistentVolume local-path-provisioner makes for ``pvc`` on ``node``
    (rancher/local-path-provisioner provisioner.go provisionFor, the same at v0.0.31 and
    v0.0.32: name pvc-<uid>, folder <name>_<namespace>_<claim> under the node's path, volume
    type `local`, required node affinity matchExpressions kubernetes.io/hostname In [the
    node's hostname label, which the harness's Nodes set to their name]; claimRef, class and
    provisioned-by as the sig-storage-lib-external-provisioner controller adds them).

    Which provisioner K3s v1.33.6+k3s1 ships could not be read at its tag (see STORAGE_CLASS).
    v0.0.29, the one the readable K3s revision runs, differs only in that affinity
    (matchFields metadata.name In [node]); v0.0.31 (2025-01) and v0.0.32 (2025-07) both
    predate K3s v1.33.6 and agree, so the model follows them."""
    meta = pvc["metadata"]
    name = f"pvc-{meta['uid']}"
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "annotations": {
                "local.path.provisioner/selected-node": node,
                "pv.kubernetes.io/provisioned-by": PROVISIONER,
            },
        },
        "spec": {
            "persistentVolumeReclaimPolicy": reclaim,
            "accessModes": pvc["spec"]["accessModes"],
            "volumeMode": "Filesystem",
            "capacity": {"storage": pvc["spec"]["resources"]["requests"]["storage"]},
            "local": {"path": f"{STORAGE_ROOT}/{name}_{meta['namespace']}_{meta['name']}"},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
                            ]
                        }
                    ]
                }
            },
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
                "resourceVersion": meta["resourceVersion"],
            },
            "storageClassName": pvc["spec"]["storageClassName"],
        },
    }


def provision_problem(pvc: dict[str, Any]) -> str | None:
    """Why local-path-provisioner refuses the claim (provisionFor, node-local paths; the same
    checks at v0.0.29, v0.0.31 and v0.0.32)."""
    if pvc["spec"].get("selector"):
        return "claim.Spec.Selector is not supported"
    modes = set(pvc["spec"].get("accessModes") or [])
    if not modes <= {"ReadWriteOnce", "ReadWriteOncePod"}:
        return "NodePath only supports ReadWriteOnce and ReadWriteOncePod (1.22+) access modes"
    return None


@dataclass
class StandIns:
    """The stand-ins of one cluster, polled on a thread until stopped."""

    api: Api
    interval: float = 0.5
    provisioned: list[str] = field(default_factory=list)  # "<ns>/<claim> -> <pv> on <node>"
    reclaimed: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # "<ns>/<claim>" -> reason
    published: list[str] = field(default_factory=list)  # Ingresses given a status
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def install(self) -> None:
        """What K3s puts into every cluster before anything else: the local-path StorageClass."""
        self.api.create("/apis/storage.k8s.io/v1/storageclasses", STORAGE_CLASS)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="e2e-stand-ins", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        steps: list[Callable[[], None]] = [self.provision, self.reclaim, self.publish_ingresses]
        while not self._stop.is_set():
            for step in steps:
                try:
                    step()
                except (ApiError, OSError, KeyError, ValueError) as err:
                    message = f"{step.__name__}: {err}"
                    if message not in self.errors[-5:]:
                        self.errors.append(message)
            self._stop.wait(self.interval)

    # -- local-path ---------------------------------------------------------------------------
    def provision(self) -> None:
        for pvc in self.api.items("/api/v1/persistentvolumeclaims"):
            meta, spec = pvc["metadata"], pvc["spec"]
            notes = meta.get("annotations") or {}
            if (
                (pvc.get("status") or {}).get("phase") != "Pending"
                or spec.get("volumeName")
                or notes.get(STORAGE_PROVISIONER) != PROVISIONER
                or SELECTED_NODE not in notes
            ):
                continue
            key = f"{meta['namespace']}/{meta['name']}"
            problem = provision_problem(pvc)
            if problem:
                self.refused[key] = problem
                continue
            pv = local_path_volume(pvc, notes[SELECTED_NODE])
            try:
                self.api.create("/api/v1/persistentvolumes", pv)
            except ApiError as err:
                if err.status != 409:  # made on an earlier poll, not bound yet
                    raise
                continue
            self.provisioned.append(f"{key} -> {pv['metadata']['name']} on {notes[SELECTED_NODE]}")

    def reclaim(self) -> None:
        for pv in self.api.items("/api/v1/persistentvolumes"):
            notes = pv["metadata"].get("annotations") or {}
            if (
                notes.get("pv.kubernetes.io/provisioned-by") == PROVISIONER
                and (pv.get("status") or {}).get("phase") == "Released"
                and pv["spec"].get("persistentVolumeReclaimPolicy") == "Delete"
                and not pv["metadata"].get("deletionTimestamp")
            ):
                self.api.delete(f"/api/v1/persistentvolumes/{pv['metadata']['name']}")
                self.reclaimed.append(pv["metadata"]["name"])

    # -- ingress-nginx status ------------------------------------------------------------------
    def publish_ingresses(self) -> None:
        """ingress-nginx controller-v1.15.1 internal/ingress/status/status.go: with
        --publish-service, every Ingress of the class gets the addresses of that Service
        (service_status_address), while a controller pod runs."""
        ns = NGINX.namespace
        try:
            service = self.api.get(f"/api/v1/namespaces/{ns}/services/{NGINX_SERVICE}")
        except ApiError as err:
            if err.status == 404:
                return
            raise
        pods = self.api.items(
            f"/api/v1/namespaces/{ns}/pods?labelSelector=app.kubernetes.io/component%3Dcontroller"
        )
        if not any(_ready(p) for p in pods):
            return
        address = service_status_address(service)
        for ing in self.api.items("/apis/networking.k8s.io/v1/ingresses"):
            if ing["spec"].get("ingressClassName") != NGINX.class_name:
                continue
            if ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress") == address:
                continue
            meta = ing["metadata"]
            self.api.merge_patch(
                f"/apis/networking.k8s.io/v1/namespaces/{meta['namespace']}/ingresses/{meta['name']}/status",
                {"status": {"loadBalancer": {"ingress": address}}},
            )
            self.published.append(f"{meta['namespace']}/{meta['name']}")


def service_status_address(service: dict[str, Any]) -> list[dict[str, str]]:
    """The addresses ingress-nginx publishes for its --publish-service: controller-v1.15.1
    internal/ingress/status/status.go statusAddressFromService switches on spec.type
    (ExternalName: its name; ClusterIP: the cluster IP; NodePort: the external IPs, else the
    cluster IP; LoadBalancer: the load balancer's addresses, then any external IP not among
    them; any other type is an error), and updateStatus sorts them by hostname, then IP."""
    spec, kind = service["spec"], service["spec"].get("type", "ClusterIP")
    external = spec.get("externalIPs") or []
    if kind == "ExternalName":
        addrs = [{"hostname": spec["externalName"]}]
    elif kind == "ClusterIP" or (kind == "NodePort" and not external):
        addrs = [{"ip": spec["clusterIP"]}]
    elif kind == "NodePort":
        addrs = [{"ip": ip} for ip in external]
    elif kind == "LoadBalancer":
        lb = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        addrs = [{k: v for k in ("hostname", "ip") if (v := point.get(k))} for point in lb]
        seen = {v for a in addrs for v in a.values()}
        addrs += [{"ip": ip} for ip in external if ip not in seen]
    else:
        name = f"{service['metadata']['namespace']}/{service['metadata']['name']}"
        raise ValueError(f"unable to extract IP address/es from service {name} (type {kind!r})")
    return sorted(addrs, key=lambda a: (a.get("hostname", ""), a.get("ip", "")))


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def wait(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not after {timeout:.0f}s: {what}")
        time.sleep(interval)

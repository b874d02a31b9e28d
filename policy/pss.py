"""Pod Security Standards (Kubernetes 1.33) as pure checks over a pod spec.

The rules of https://kubernetes.io/docs/concepts/security/pod-security-standards/ for the
``baseline`` and ``restricted`` levels (``privileged`` allows everything). Used by the tests on
every pod template the stack renders, and by the policy pack's advisory checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LEVELS = ("privileged", "baseline", "restricted")

BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
RESTRICTED_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
_VOLUME_META = frozenset({"name"})


def containers(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [
        *(spec.get("initContainers") or ()),
        *(spec.get("containers") or ()),
        *(spec.get("ephemeralContainers") or ()),
    ]


def baseline_violations(spec: Mapping[str, Any], annotations: Mapping[str, str] | None = None) -> list[str]:
    out: list[str] = []
    psc = spec.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            out.append(f"{key}=true")
    if (psc.get("windowsOptions") or {}).get("hostProcess"):
        out.append("hostProcess=true")
    for v in spec.get("volumes") or ():
        if "hostPath" in v:
            out.append(f"hostPath volume {v.get('name')!r}")
    for key, value in (annotations or {}).items():
        if (
            key.startswith("container.apparmor.security.beta.kubernetes.io/")
            and value not in ("runtime/default",)
            and not str(value).startswith("localhost/")
        ):
            out.append(f"AppArmor {value!r}")
    contexts = [("pod", psc)]
    for c in containers(spec):
        sc = c.get("securityContext") or {}
        contexts.append((f"container {c.get('name')!r}", sc))
        if sc.get("privileged"):
            out.append(f"container {c.get('name')!r} privileged")
        added = set((sc.get("capabilities") or {}).get("add") or ())
        if added - BASELINE_CAPABILITIES:
            out.append(f"container {c.get('name')!r} adds {sorted(added - BASELINE_CAPABILITIES)}")
        for p in c.get("ports") or ():
            if p.get("hostPort"):
                out.append(f"container {c.get('name')!r} hostPort {p['hostPort']}")
        if sc.get("procMount") not in (None, "Default"):
            out.append(f"container {c.get('name')!r} procMount {sc['procMount']}")
    for where, sc in contexts:
        if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
            out.append(f"{where} seccomp Unconfined")
        if (sc.get("appArmorProfile") or {}).get("type") == "Unconfined":
            out.append(f"{where} AppArmor Unconfined")
        se = sc.get("seLinuxOptions") or {}
        if se.get("type", "") not in SELINUX_TYPES or se.get("user") or se.get("role"):
            out.append(f"{where} seLinuxOptions {se}")
    for s in psc.get("sysctls") or ():
        if s.get("name") not in SAFE_SYSCTLS:
            out.append(f"sysctl {s.get('name')}")
    return out


def restricted_violations(spec: Mapping[str, Any], annotations: Mapping[str, str] | None = None) -> list[str]:
    out = baseline_violations(spec, annotations)
    psc = spec.get("securityContext") or {}
    for v in spec.get("volumes") or ():
        kinds = set(v) - _VOLUME_META
        if not kinds <= RESTRICTED_VOLUMES:
            out.append(f"volume {v.get('name')!r} of type {sorted(kinds - RESTRICTED_VOLUMES)}")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    if psc.get("runAsUser") == 0:
        out.append("pod runAsUser 0")
    for c in containers(spec):
        name = c.get("name")
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"container {name!r} allowPrivilegeEscalation not false")
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if non_root is not True:
            out.append(f"container {name!r} runAsNonRoot not true")
        if sc.get("runAsUser") == 0:
            out.append(f"container {name!r} runAsUser 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"container {name!r} seccomp profile {seccomp!r}")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or ()):
            out.append(f"container {name!r} does not drop ALL capabilities")
        extra = set(caps.get("add") or ()) - {"NET_BIND_SERVICE"}
        if extra:
            out.append(f"container {name!r} adds {sorted(extra)}")
    return out


def violations(
    spec: Mapping[str, Any], level: str, annotations: Mapping[str, str] | None = None
) -> list[str]:
    """What in ``spec`` breaks Pod Security level ``level``."""
    if level == "privileged":
        return []
    if level == "baseline":
        return baseline_violations(spec, annotations)
    if level == "restricted":
        return restricted_violations(spec, annotations)
    raise ValueError(f"unknown Pod Security level {level!r}")


def pod_template(obj: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, str]] | None:
    """(pod spec, pod annotations) of a workload object, or None for other kinds."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return spec, (obj.get("metadata") or {}).get("annotations") or {}
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
        kind = "Job"
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        template = spec.get("template") or {}
        return template.get("spec") or {}, (template.get("metadata") or {}).get("annotations") or {}
    return None

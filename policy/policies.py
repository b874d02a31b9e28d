"""The policies of the pi-cluster CrossGuard pack, as objects tests call ``validate`` on.

Each policy reads the Kubernetes object Pulumi is about to send (``args.props``, camelCase as
the API) and, for PVCs, the resource options (``args.opts.protect``). Helm releases are opaque
here: their charts' values are checked by the chart owners' tests and checkov on the render.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from policy import allowlist, pss

FLOATING_TAGS = frozenset({"latest", "stable", "main", "master", "edge", "nightly", "dev"})
EPHEMERAL_ANNOTATION = "pi-cluster/ephemeral"
SECRET_KEY = re.compile(
    r"(?i)(pass(word|wd|phrase)?|secret|token|api[_-]?key|private[_-]?key|credentials?|client[_-]?secret)$"
)
SECRET_VALUE = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|\bgh[pousr]_[A-Za-z0-9]{36}\b"
    r"|\bxox[abpr]-[A-Za-z0-9-]{10,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
    r"|\bops_[A-Za-z0-9_-]{20,}"
    r"|[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@"
)
# key: value / key=value / "key": "value" inside a config file held in a ConfigMap
_FILE_ASSIGNMENT = re.compile(
    r"""^[ \t-]*["']?([A-Za-z0-9_.-]+)["']?[ \t]*[:=][ \t]*["']?([^"'\s#]+)""", re.M
)
_REFERENCE = re.compile(r"^(\$\(|\$\{|\{\{|%\(|/|file:|env:|<|\[secret\]|true$|false$|null$|none$)", re.I)


def kind_of(args: ResourceValidationArgs) -> str:
    """``kubernetes:apps/v1:Deployment`` -> ``Deployment`` (``""`` for non-Kubernetes types)."""
    if not args.resource_type.startswith("kubernetes:") or args.resource_type.startswith("kubernetes:helm"):
        return ""
    return args.resource_type.rsplit(":", 1)[-1]


def _meta(args: ResourceValidationArgs) -> Mapping[str, Any]:
    return args.props.get("metadata") or {}


def _where(args: ResourceValidationArgs) -> str:
    meta = _meta(args)
    return f"{kind_of(args)} {meta.get('namespace') or '-'}/{meta.get('name') or args.name}"


def _pod(args: ResourceValidationArgs) -> tuple[Mapping[str, Any], Mapping[str, str]] | None:
    kind = kind_of(args)
    if not kind:
        return None
    return pss.pod_template({"kind": kind, "spec": args.props.get("spec") or {}, "metadata": _meta(args)})


def _containers(args: ResourceValidationArgs) -> Iterator[Mapping[str, Any]]:
    pod = _pod(args)
    if pod:
        yield from pss.containers(pod[0])


def looks_secret(key: str, value: Any) -> bool:
    """A literal credential: a secret-named key with a literal value, or a credential pattern."""
    if not isinstance(value, str):
        return False
    if SECRET_VALUE.search(value):
        return True
    literal = value.strip()
    return bool(
        SECRET_KEY.search(key)
        and len(literal) >= 8
        and not any(c.isspace() for c in literal)
        and not _REFERENCE.match(literal)
    )


def _in_file(text: str) -> list[str]:
    if SECRET_VALUE.search(text):
        return ["a credential pattern"]
    return [k for k, v in _FILE_ASSIGNMENT.findall(text) if looks_secret(k, v)]


# ---------------------------------------------------------------------------------------------
# Mandatory


def _images(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for c in _containers(args):
        image = str(c.get("image") or "")
        if "@sha256:" in image:
            continue
        name, _, tag = image.rpartition(":")
        if not name or "/" in tag:
            report(f"{_where(args)}: container {c.get('name')!r} image {image!r} has no tag", None)
        elif tag.lower() in FLOATING_TAGS:
            report(f"{_where(args)}: container {c.get('name')!r} image {image!r} uses floating tag", None)


def _resources(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for c in _containers(args):
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        missing = [f"requests.{k}" for k in ("cpu", "memory") if k not in req]
        missing += ["limits.memory"] if "memory" not in lim else []
        if missing:
            report(f"{_where(args)}: container {c.get('name')!r} lacks {', '.join(missing)}", None)


def _privileged(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for c in _containers(args):
        if (c.get("securityContext") or {}).get("privileged"):
            report(f"{_where(args)}: container {c.get('name')!r} is privileged", None)


def _host_access(args: ResourceValidationArgs, report: ReportViolation) -> None:
    pod = _pod(args)
    if not pod:
        return
    spec = pod[0]
    meta = _meta(args)
    entry = allowlist.entry(str(meta.get("namespace") or ""), str(meta.get("name") or ""))
    where = _where(args)
    for key in ("hostPID", "hostIPC"):
        if spec.get(key):
            report(f"{where}: {key} is never allowed", None)
    if spec.get("hostNetwork") and not (entry and entry.host_network):
        report(f"{where}: hostNetwork is not on the allowlist (policy/allowlist.py)", None)
    for c in pss.containers(spec):
        for p in c.get("ports") or ():
            port = p.get("hostPort")
            if port and not (entry and int(port) in entry.host_ports):
                report(f"{where}: container {c.get('name')!r} hostPort {port} is not on the allowlist", None)
    for v in spec.get("volumes") or ():
        path = str((v.get("hostPath") or {}).get("path", "")) if "hostPath" in v else None
        if path is None:
            continue
        if not (entry and any(path == p or path.startswith(p.rstrip("/") + "/") for p in entry.host_paths)):
            report(f"{where}: hostPath {path!r} (volume {v.get('name')!r}) is not on the allowlist", None)


def _secret_literals(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if kind_of(args) == "ConfigMap":
        for key, value in sorted((args.props.get("data") or {}).items()):
            found = [key] if looks_secret(key, value) else _in_file(str(value)) if "\n" in str(value) else []
            if found:
                report(f"{_where(args)}: key {key!r} holds a secret-looking literal ({found[0]})", None)
    for c in _containers(args):
        for e in c.get("env") or ():
            if "value" in e and looks_secret(str(e.get("name")), e["value"]):
                report(
                    f"{_where(args)}: container {c.get('name')!r} env {e.get('name')!r} holds a "
                    "secret-looking literal; use a secretKeyRef",
                    None,
                )


def _ingress_tls(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if kind_of(args) != "Ingress":
        return
    spec = args.props.get("spec") or {}
    tls_hosts = {h for t in spec.get("tls") or () for h in t.get("hosts") or ()}
    if not spec.get("tls"):
        report(f"{_where(args)}: no TLS", None)
        return
    for rule in spec.get("rules") or ():
        host = rule.get("host")
        if host and host not in tls_hosts:
            report(f"{_where(args)}: host {host!r} is not covered by its TLS hosts", None)


def _pvc_protected(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if kind_of(args) != "PersistentVolumeClaim":
        return
    reason = str((_meta(args).get("annotations") or {}).get(EPHEMERAL_ANNOTATION, "")).strip()
    if not reason and not args.opts.protect:
        report(
            f"{_where(args)}: a stateful PVC must be protected (volumes.stateful_pvc), or say why its "
            f"data may be lost in annotation {EPHEMERAL_ANNOTATION}",
            None,
        )


# ---------------------------------------------------------------------------------------------
# Advisory


def _probes(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if kind_of(args) in ("Job", "CronJob"):
        return
    pod = _pod(args)
    for c in (pod[0].get("containers") or ()) if pod else ():
        missing = [p for p in ("readinessProbe", "livenessProbe") if not c.get(p)]
        if missing:
            report(f"{_where(args)}: container {c.get('name')!r} has no {' or '.join(missing)}", None)


def _non_root(args: ResourceValidationArgs, report: ReportViolation) -> None:
    pod = _pod(args)
    if not pod:
        return
    pod_value = (pod[0].get("securityContext") or {}).get("runAsNonRoot")
    for c in pss.containers(pod[0]):
        if (c.get("securityContext") or {}).get("runAsNonRoot", pod_value) is not True:
            report(f"{_where(args)}: container {c.get('name')!r} may run as root", None)


def _read_only_root(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for c in _containers(args):
        if (c.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True:
            report(f"{_where(args)}: container {c.get('name')!r} has a writable root filesystem", None)


def _policy(
    name: str, description: str, check: Callable[[ResourceValidationArgs, ReportViolation], None], level: Any
) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(
        name=name, description=description, validate=check, enforcement_level=level
    )


MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY

MANDATORY_POLICIES: list[ResourceValidationPolicy] = [
    _policy(
        "no-floating-image", "Every image is pinned to a tag or digest, never latest.", _images, MANDATORY
    ),
    _policy(
        "container-resources",
        "Every container has CPU and memory requests and a memory limit.",
        _resources,
        MANDATORY,
    ),
    _policy("no-privileged", "No privileged container.", _privileged, MANDATORY),
    _policy(
        "host-access-allowlist",
        "hostNetwork, hostPort and hostPath only for the allowlisted workloads (policy/allowlist.py).",
        _host_access,
        MANDATORY,
    ),
    _policy(
        "no-secret-literals",
        "No secret-looking literal in a ConfigMap or a container env value.",
        _secret_literals,
        MANDATORY,
    ),
    _policy("ingress-tls", "Every Ingress serves TLS for each of its hosts.", _ingress_tls, MANDATORY),
    _policy(
        "stateful-pvc-protected",
        "Every PVC holding state is protected against deletion.",
        _pvc_protected,
        MANDATORY,
    ),
]
ADVISORY_POLICIES: list[ResourceValidationPolicy] = [
    _policy("probes", "Long-running containers have readiness and liveness probes.", _probes, ADVISORY),
    _policy("run-as-non-root", "Containers set runAsNonRoot.", _non_root, ADVISORY),
    _policy(
        "read-only-root-filesystem",
        "Containers have a read-only root filesystem.",
        _read_only_root,
        ADVISORY,
    ),
]
POLICIES = MANDATORY_POLICIES + ADVISORY_POLICIES

"""What `up` must have left in the cluster, read from the API server: every pod scheduled and
admitted, every workload available, every pinned pod where the capacity proof put it, every
Helm release deployed, every resource of the program in the state.

Each function takes what the API returned (plain JSON) and returns findings (empty = pass), so
the rules are tested on objects shaped as the API server sends them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from components.capacity import Plan
from tools.charts import RELEASE_TYPE as RELEASE

Obj = dict[str, Any]


def _key(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '-')}/{meta['name']}"


def _condition(obj: Obj, kind: str) -> Obj:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), {})


def pods_unscheduled(pods: Iterable[Obj]) -> list[str]:
    """Pods the scheduler did not place (Pending, or PodScheduled False), with its reason."""
    out = []
    for pod in pods:
        status = pod.get("status") or {}
        scheduled = _condition(pod, "PodScheduled")
        if status.get("phase") == "Pending" or scheduled.get("status") == "False":
            why = scheduled.get("message") or scheduled.get("reason") or status.get("phase", "")
            out.append(f"{_key(pod)}: {why}")
    return sorted(out)


ADMISSION_MARKERS = ("violates PodSecurity", "is forbidden", "admission webhook", "denied the request")


def pods_rejected_by_admission(events: Iterable[Obj], controllers: Iterable[Obj]) -> list[str]:
    """Pods a controller tried to create and the API server refused: FailedCreate events and
    ReplicaFailure conditions whose message is an admission refusal (Pod Security above all)."""
    found: set[str] = set()
    for event in events:
        message = str(event.get("message") or "")
        if event.get("reason") in ("FailedCreate", "FailedCreatePodReason") and any(
            m in message for m in ADMISSION_MARKERS
        ):
            ref = event.get("involvedObject") or {}
            found.add(f"{ref.get('kind')} {ref.get('namespace', '-')}/{ref.get('name')}: {message}")
    for obj in controllers:
        failure = _condition(obj, "ReplicaFailure")
        if failure.get("status") == "True" and any(
            m in str(failure.get("message")) for m in ADMISSION_MARKERS
        ):
            found.add(f"{obj.get('kind')} {_key(obj)}: {failure.get('message')}")
    return sorted(found)


def workloads_not_ready(
    deployments: Iterable[Obj], statefulsets: Iterable[Obj], daemonsets: Iterable[Obj]
) -> list[str]:
    """Every Deployment Available with all replicas, StatefulSet with all replicas ready,
    DaemonSet ready on every node it should run on (and on at least one)."""
    out = []
    for d in deployments:
        want, st = (d.get("spec") or {}).get("replicas", 1), d.get("status") or {}
        if _condition(d, "Available").get("status") != "True" or st.get("availableReplicas", 0) < want:
            out.append(f"Deployment {_key(d)}: {st.get('availableReplicas', 0)}/{want} available")
    for s in statefulsets:
        want, st = (s.get("spec") or {}).get("replicas", 1), s.get("status") or {}
        if st.get("readyReplicas", 0) < want:
            out.append(f"StatefulSet {_key(s)}: {st.get('readyReplicas', 0)}/{want} ready")
    for ds in daemonsets:
        st = ds.get("status") or {}
        want = st.get("desiredNumberScheduled", 0)
        if want == 0 or st.get("numberReady", 0) < want:
            out.append(f"DaemonSet {_key(ds)}: {st.get('numberReady', 0)}/{want} ready")
    return sorted(out)


def owner_of(pod: Obj, replicasets: Mapping[str, Obj]) -> tuple[str, str] | None:
    """(kind, namespace/name) of the workload that runs ``pod``: Deployment through its
    ReplicaSet, StatefulSet, DaemonSet, Job (CronJob through its Job is the Job's name)."""
    refs = [r for r in pod["metadata"].get("ownerReferences") or [] if r.get("controller")]
    if not refs:
        return None
    ns = pod["metadata"]["namespace"]
    kind, name = refs[0]["kind"], refs[0]["name"]
    if kind == "ReplicaSet":
        rs = replicasets.get(f"{ns}/{name}")
        up = [
            r for r in ((rs or {}).get("metadata") or {}).get("ownerReferences") or [] if r.get("controller")
        ]
        if up:
            kind, name = up[0]["kind"], up[0]["name"]
    return kind, f"{ns}/{name}"


def placement(plan: Plan, pods: Iterable[Obj], replicasets: Iterable[Obj]) -> tuple[list[str], list[str]]:
    """(mismatches, unverified): every pinned workload and DaemonSet of the capacity plan runs
    exactly on the nodes the plan put it on. Unverified: a planned workload that has no pod
    here (an operator's StatefulSet, a CronJob before its schedule, a hook Job Helm deleted)."""
    expected: dict[str, set[str]] = {}
    kinds: dict[str, str] = {}
    for node, load in plan.loads.items():
        for w, _ in load.pods:
            if w.node or w.daemonset:
                expected.setdefault(w.key, set()).add(node)
                kinds[w.key] = w.kind
    by_rs = {_key(rs): rs for rs in replicasets}
    actual: dict[str, set[str]] = {}
    for pod in pods:
        owner = owner_of(pod, by_rs)
        node = (pod.get("spec") or {}).get("nodeName")
        if owner and node and (pod.get("status") or {}).get("phase") != "Failed":
            actual.setdefault(owner[1], set()).add(node)
    mismatches, unverified = [], []
    for key in sorted(expected):
        if key not in actual:
            unverified.append(
                f"{kinds[key]} {key}: no pod in the cluster (planned on {', '.join(sorted(expected[key]))})"
            )
        elif actual[key] != expected[key]:
            mismatches.append(
                f"{kinds[key]} {key}: runs on {', '.join(sorted(actual[key]))}, the capacity proof put it on "
                f"{', '.join(sorted(expected[key]))}"
            )
    return mismatches, unverified


def helm_release_problems(listed: Sequence[Obj], wanted: Iterable[tuple[str, str]]) -> list[str]:
    """Every release the program installs is listed by `helm list -A` as deployed."""
    status = {(r.get("namespace"), r.get("name")): r.get("status") for r in listed}
    out = []
    for ns, name in sorted(wanted):
        got = status.get((ns, name))
        if got != "deployed":
            out.append(f"{ns}/{name}: {got or 'not listed'}")
    return out


def state_differences(
    registered: Iterable[tuple[str, str]], state: Iterable[Obj]
) -> tuple[list[str], list[str]]:
    """(missing, extra): resources the program registers that the engine's state lacks, and
    state entries the program does not register (defaults aside)."""
    have = {
        (r["type"], r["urn"].rsplit("::", 1)[-1]) for r in state if r.get("type") != "pulumi:pulumi:Stack"
    }
    want = set(registered)
    missing = sorted(f"{t}::{n}" for t, n in want - have)
    extra = sorted(f"{t}::{n}" for t, n in have - want if not t.startswith("pulumi:providers:pulumi"))
    return missing, extra


# -- against a live cluster ---------------------------------------------------------------------

FINDINGS = (
    "pods_unscheduled",
    "pods_rejected_by_admission",
    "placement_mismatches",
    "workloads_not_ready",
    "helm_release_problems",
    "resources_missing_from_state",
)


def collect(
    api: Any, result: Any, helm_listed: Sequence[Obj], helm_error: str, state: Sequence[Obj]
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """(findings, details) of the cluster ``api`` reaches after `up` of the program ``result``
    (tools/mockrun.Result: its registrations and its own capacity plan): every list in
    findings must be empty; details say what was seen."""
    from components.capacity import plan

    kinds = {
        "ReplicaSet": "/apis/apps/v1/replicasets",
        "StatefulSet": "/apis/apps/v1/statefulsets",
        "DaemonSet": "/apis/apps/v1/daemonsets",
        "Deployment": "/apis/apps/v1/deployments",
        "Job": "/apis/batch/v1/jobs",
    }
    objs = {kind: api.items(path) for kind, path in kinds.items()}
    for kind, items in objs.items():  # a list's items carry no kind
        for o in items:
            o["kind"] = kind
    pods, events = api.items("/api/v1/pods"), api.items("/api/v1/events")
    program = result.program
    mismatches, unverified = placement(
        plan(program["settings"], program["workloads"].workloads()), pods, objs["ReplicaSet"]
    )
    wanted = [(r.plain_inputs.get("namespace"), r.plain_inputs["name"]) for r in result.by_type(RELEASE)]
    registered = [(r.type, r.name) for r in result.registrations]
    missing, extra = state_differences(registered, state)
    controllers = [*objs["ReplicaSet"], *objs["StatefulSet"], *objs["DaemonSet"], *objs["Job"]]
    found = {
        "pods_unscheduled": pods_unscheduled(pods),
        "pods_rejected_by_admission": pods_rejected_by_admission(events, controllers),
        "placement_mismatches": mismatches,
        "workloads_not_ready": workloads_not_ready(
            objs["Deployment"], objs["StatefulSet"], objs["DaemonSet"]
        ),
        "helm_release_problems": helm_release_problems(helm_listed, wanted)
        + ([helm_error] if helm_error else []),
        "resources_missing_from_state": missing,
    }
    phases = [(p.get("status") or {}).get("phase") for p in pods]
    details = {
        "helm_releases": [
            {k: r.get(k) for k in ("name", "namespace", "status", "chart", "app_version", "revision")}
            for r in helm_listed
        ],
        "placement_unverified": unverified,
        "resources_registered": len(registered),
        "resources_in_state": len([r for r in state if r.get("type") != "pulumi:pulumi:Stack"]),
        "state_entries_not_registered": extra,
        "pods": {
            "total": len(pods),
            "running": phases.count("Running"),
            "succeeded": phases.count("Succeeded"),
        },
        "workloads": {kind: len(items) for kind, items in objs.items()},
    }
    return found, details


class Watchdog:
    """Tells a running `pulumi up` to stop as soon as the cluster shows it cannot finish: a pod
    the scheduler has refused for ``grace`` seconds, or a pod admission refused. Pulumi would
    otherwise wait out its await (10 minutes per Deployment) before it failed."""

    def __init__(self, api: Any, refused: Callable[[], dict[str, str]], grace: float = 60, every: float = 5):
        self.api, self.refused, self.grace, self.every = api, refused, grace, every
        self._first: dict[str, float] = {}
        self._last = 0.0
        self.reasons: list[str] = []

    def __call__(self) -> str | None:
        now = time.monotonic()
        if now - self._last < self.every:
            return None
        self._last = now
        try:
            pods, events = self.api.items("/api/v1/pods"), self.api.items("/api/v1/events")
        except OSError:
            return None
        if self.refused():
            self.reasons.append(f"local-path refused claims: {self.refused()}")
        rejected = pods_rejected_by_admission(events, [])
        if rejected:
            self.reasons.append(f"admission refused pods: {rejected[:3]}")
        waiting = {item.split(": ", 1)[0]: item for item in pods_unscheduled(pods)}
        self._first = {k: v for k, v in self._first.items() if k in waiting}
        for key in waiting:
            self._first.setdefault(key, now)
        stuck = sorted(waiting[k] for k, t in self._first.items() if now - t >= self.grace)
        if stuck:
            self.reasons.append(f"unschedulable for {self.grace:.0f}s: {stuck[:3]}")
        return "; ".join(self.reasons) or None

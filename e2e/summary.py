"""e2e/out/summary.md: report.json for a reader (the CI step summary)."""

from __future__ import annotations

from typing import Any

from e2e.checks import FINDINGS as CHECKS


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# make e2e: {'passed' if report.get('ok') else 'FAILED'} in {report.get('seconds')} s", ""]
    engine = report.get("engine") or {}
    if engine:
        plugins = ", ".join(f"{p['name']} {p['version']}" for p in engine.get("plugins", []))
        lines += [f"Pulumi {engine.get('pulumi')}, plugins: {plugins or 'none'}.", ""]
        lines += [f"- {engine.get('kubernetes_plugin')}", ""]
    steps = report.get("steps") or {}
    if steps:
        lines += ["| step | ok | seconds | changes |", "| --- | --- | ---: | --- |"]
        for name, step in steps.items():
            changes = ", ".join(f"{k} {v}" for k, v in (step.get("changes") or {}).items()) or "-"
            lines.append(
                f"| {name} | {'yes' if step.get('ok') else '**no**'} | {step.get('seconds')} | {changes} |"
            )
        lines.append("")
    policy = (steps.get("policy") or {}).get("policies") or {}
    if policy:
        advisory = {
            k: v.get("advisory", 0) for k, v in policy.get("policies", {}).items() if v.get("advisory")
        }
        lines += [
            f"Policy pack: {policy.get('resources_analyzed')} resources analyzed; mandatory policies "
            f"({len(policy.get('mandatory', []))}) failed {len(policy.get('mandatory_failures', []))} times; "
            f"advisory findings: {advisory or 'none'}.",
            "",
        ]
    mirror = report.get("chart_mirror") or {}
    for change in mirror.get("changes") or []:
        lines.append(
            f"- Chart mirror: {change['chart']} {change['file']}: $id {change['$id']['was']} "
            "-> the unpacked file"
        )
    if mirror.get("changes"):
        lines.append("")
    found = report.get("checks") or {}
    if found:
        lines += ["| check after up | findings |", "| --- | ---: |"]
        for name in CHECKS:
            if name in found:
                lines.append(f"| {name} | {len(found[name])} |")
        releases = found.get("helm_releases") or []
        lines += ["", "Helm releases: " + ", ".join(f"{r['name']} ({r['status']})" for r in releases), ""]
        for name in CHECKS:
            for item in (found.get(name) or [])[:20]:
                lines.append(f"- {name}: {item}")
        if found.get("placement_unverified"):
            lines += ["", "Planned but without a pod here (no controller or schedule creates one):"]
            lines += [f"- {item}" for item in found["placement_unverified"]]
        lines.append("")
    side = report.get("side_by_side") or {}
    if side:
        lines += [
            "| side by side | seconds |",
            "| --- | ---: |",
            f"| pulumi up | {steps.get('up', {}).get('seconds')} |",
            f"| kubectl apply + helm upgrade --install | {side.get('apply', {}).get('seconds')} |",
            f"| no-op pulumi up | {steps.get('up-again', {}).get('seconds')} |",
            f"| no-op kubectl apply + helm upgrade --install | {side.get('noop-apply', {}).get('seconds')} |",
            "",
            f"Ratio up / apply: **{side.get('ratio_up_to_apply')}**; no-op up / no-op apply: "
            f"**{side.get('ratio_noop_up_to_noop_apply')}**.",
            "",
        ]
    nodes = (report.get("cluster") or {}).get("nodes") or []
    if nodes:
        lines += ["| node | capacity | allocatable | taints |", "| --- | --- | --- | --- |"]
        for n in nodes:
            cap, alloc = n["capacity"], n["allocatable"]
            lines.append(
                f"| {n['name']} | {cap['cpu']} CPU, {cap['memory']} | {alloc['cpu']}, {alloc['memory']} | "
                f"{len(n.get('taints') or [])} |"
            )
        lines.append("")
    for item in report.get("not_covered") or []:
        lines.append(f"- Not covered: {item['what']}: {item['why']}.")
    if report.get("failures"):
        lines += ["", "## Failures", ""] + [f"- {f}" for f in report["failures"]]
    return "\n".join(lines).rstrip() + "\n"

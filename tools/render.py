"""Offline render: run the program under mocks and write what it would register.

    python -m tools.render [--stack pi-k3s] [--out rendered]

Writes ``<out>/manifests/<namespace>/<Kind>-<name>.yaml`` (cluster-scoped objects under
``_cluster``), ``<out>/resources.json`` and ``<out>/outputs.json``, every secret replaced by
``[secret]``, and prints a plan summary. Output is byte-for-byte stable between runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tools import batch

if __name__ == "__main__":  # one short batch run: before the SDK imports below (tools/batch.py)
    batch.collect_rarely()

import yaml

from tools import mockrun

TOP_KEYS = ("apiVersion", "kind", "metadata")


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]  # libyaml when present
    pass


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def manifest_document(obj: dict[str, Any]) -> str:
    """One object as YAML: apiVersion, kind, metadata first, then the rest sorted."""
    ordered = {k: _sorted(obj[k]) for k in TOP_KEYS if k in obj}
    ordered.update({k: _sorted(obj[k]) for k in sorted(obj) if k not in TOP_KEYS})
    return yaml.dump(ordered, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)


def manifest_path(obj: dict[str, Any]) -> Path:
    meta = obj.get("metadata") or {}
    folder = meta.get("namespace") or "_cluster"
    return Path(folder) / f"{obj['kind']}-{meta['name']}.yaml"


def resources_document(result: mockrun.Result) -> list[dict[str, Any]]:
    return [
        {
            "type": r.type,
            "name": r.name,
            "parent": r.parent,
            "provider": r.provider,
            "dependsOn": r.depends_on,
            "protect": r.protect,
            "inputs": _sorted(r.masked_inputs),
        }
        for r in result.registrations
    ]


def outputs_document(result: mockrun.Result) -> dict[str, Any]:
    return {
        name: (mockrun.MASK if name in result.secret_outputs else _sorted(value))
        for name, value in sorted(result.outputs.items())
    }


def write(result: mockrun.Result, out: Path) -> dict[str, int]:
    """Write the three artifacts; return files written per kind."""
    if (out / "manifests").exists():
        shutil.rmtree(out / "manifests")
    out.mkdir(parents=True, exist_ok=True)
    per_kind: Counter[str] = Counter()
    for reg in result.kubernetes_objects():
        obj = reg.masked_inputs
        path = out / "manifests" / manifest_path(obj)
        if path.exists():
            raise SystemExit(f"two objects render to {path}: {reg.key}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(manifest_document(obj))
        per_kind[obj["kind"]] += 1
    (out / "resources.json").write_text(
        json.dumps(resources_document(result), indent=2, sort_keys=True) + "\n"
    )
    (out / "outputs.json").write_text(json.dumps(outputs_document(result), indent=2, sort_keys=True) + "\n")
    return dict(per_kind)


def summary(result: mockrun.Result) -> str:
    """Resources per component and per type, and the total."""
    parents = {r.key: r for r in result.registrations}

    def component(r: mockrun.Registration) -> str:
        while r.parent and r.parent in parents:
            p = parents[r.parent]
            if p.parent is None or p.parent.startswith("pulumi:pulumi:Stack"):
                return p.key
            r = p
        return r.key

    by_component = Counter(component(r) for r in result.registrations if r.custom)
    by_type = Counter(r.type for r in result.registrations if r.custom)
    lines = [f"Plan for stack {result.stack} (offline render, nothing was contacted)", ""]
    lines.append("Resources per component:")
    lines += [f"  {n:4d}  {k}" for k, n in sorted(by_component.items())]
    lines.append("Resources per type:")
    lines += [f"  {n:4d}  {k}" for k, n in sorted(by_type.items())]
    lines.append(f"Total: {sum(by_type.values())} resources in {len(by_component)} components")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="pi-k3s")
    parser.add_argument("--out", default=None, help="default: rendered (rendered/<stack> for others)")
    args = parser.parse_args(argv)
    out = Path(args.out or ("rendered" if args.stack == "pi-k3s" else f"rendered/{args.stack}"))
    try:
        result = mockrun.run(args.stack)
    except Exception as err:  # a settings error is the user's message, not a traceback
        from config.settings import SettingsError

        if isinstance(err, SettingsError):
            print(f"error: {err}", file=sys.stderr)
            return 1
        raise
    write(result, out)
    print(summary(result))
    print(f"Wrote {out}/manifests, {out}/resources.json, {out}/outputs.json")
    return 0


if __name__ == "__main__":
    code = main()
    batch.skip_collections_at_exit()
    sys.exit(code)

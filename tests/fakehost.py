"""A fake Raspberry Pi OS host for the node scripts: one program installed under the names of the
commands the scripts call (sudo, systemctl, nmcli, swapoff, getconf, journalctl, curl, kubectl,
...). Every call is appended to ``<root>/.fake/calls.jsonl``; state (units, connections, sudo,
Kubernetes nodes) lives in ``<root>/.fake/state.json``. The scripts themselves run unchanged
under bash, with the real coreutils (timeout, install, cmp, mktemp, sha256sum).

Imported by the tests, it builds the images the scripts meet (:func:`install_image`) and boots
them (:func:`boot`), as the 2025 and 2026 releases of Raspberry Pi OS do:

- ``bookworm-2025``: NetworkManager profile "Wired connection 1", swap from dphys-swapfile
  (RPi-Distro/pi-gen bookworm stage2/01-sys-tweaks/00-packages), passwordless sudo through
  raspberrypi-sys-mods' /etc/sudoers.d/010_pi-nopasswd.
- ``trixie-2026``: cloud-init + netplan (pi-gen stage2/04-cloud-init, ENABLE_CLOUD_INIT=1), so
  the profile is "netplan-eth0" (netplan's NetworkManager renderer names it "netplan-<id>":
  canonical/netplan tag 1.1.2 src/nm.c; the id eth0 is observed), swap from rpi-swap (pi-gen
  22601c0e: zram with a file behind it, configured by /etc/rpi/swap.conf and drop-ins in
  /etc/rpi/swap.conf.d/), sudo asks for a password unless Imager's "Enable passwordless sudo"
  was ticked (pi-gen c020178c, release notes 2026-04-13; rpi-imager v2.0.11
  customization_generator.cpp), which cloud-init turns into /etc/sudoers.d/90-cloud-init-users.

Kernels (export-noobs/00-release/files/release_notes.txt at the pi-gen tags): the 2025 Bookworm
releases run 6.12.25 to 6.12.47 (6.12.93 at tag 2026-06-18-raspios-bookworm-arm64), Trixie
2026-04-13 runs 6.12.75 (6.18.34 at tag 2026-06-18-raspios-trixie-arm64). The memory cgroup is
built in but off: the device tree's bootargs put cgroup_disable=memory ahead of cmdline.txt, so
it appears in /sys/fs/cgroup/cgroup.controllers only when cmdline.txt adds cgroup_enable=memory;
cgroup_memory=1 is not needed, and from 6.12 (no CONFIG_MEMCG_V1) /proc/cgroups no longer lists
memory at all (raspberrypi/linux issue #6980, the kernel maintainers' answer, 2025-07/08; PR
#6439). The fake models that rule for both images; 6.18 was not checked separately. A Pi 5
boots kernel_2712.img with 16K pages unless config.txt names kernel8.img (4K pages).

The image's /etc/machine-id holds no id: Bookworm's is empty (RPi-Distro/pi-gen tag
2026-06-18-raspios-bookworm-arm64 export-image/05-finalise/01-run.sh: `true >
"${ROOTFS_DIR}/etc/machine-id"`), Trixie's says "uninitialized" (same file at tag
2026-06-18-raspios-trixie-arm64: `echo "uninitialized" > ...`, pi-gen c4e9044f). systemd generates
an id on the next boot and writes it to disk in both cases (machine-id(5) of systemd
252.38-1~deb12u1, "First boot semantics": "uninitialized" is a first boot; an empty file is not,
but an id is still bind-mounted over it and committed). Every boot has a new boot id.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

FAKE = ".fake"
PI5 = "Raspberry Pi 5 Model B Rev 1.0"
PI3 = "Raspberry Pi 3 Model B Rev 1.2"
IMAGES = ("bookworm-2025", "trixie-2026")
CONNECTION = {"bookworm-2025": "Wired connection 1", "trixie-2026": "netplan-eth0"}
# /etc/machine-id as each image ships it (the sources are in the module docstring).
FLASHED_MACHINE_ID = {"bookworm-2025": "", "trixie-2026": "uninitialized\n"}
SWAPS_HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
K3S_UNITS = ("k3s", "k3s-agent")


def _root() -> Path:
    return Path(os.environ["PI_CLUSTER_ROOT"])


def load(root: Path | None = None) -> dict[str, Any]:
    return json.loads(((root or _root()) / FAKE / "state.json").read_text())


def save(state: dict[str, Any], root: Path | None = None) -> None:
    ((root or _root()) / FAKE / "state.json").write_text(json.dumps(state, indent=1, sort_keys=True))


def record(argv: list[str], **extra: Any) -> None:
    with (_root() / FAKE / "calls.jsonl").open("a") as f:
        f.write(json.dumps({"argv": argv, **extra}) + "\n")


# -- images ------------------------------------------------------------------------------------


def _write(root: Path, path: str, text: str, mode: int | None = None) -> None:
    p = root / path
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    if mode is not None:
        p.chmod(mode)


def install_image(
    root: Path,
    image: str,
    *,
    model: str = PI3,
    passwordless_sudo: bool | None = None,
    hostname: str = "raspberrypi",
) -> None:
    """Write a freshly flashed card of ``image`` under ``root`` and boot it once (first boot)."""
    if image not in IMAGES:
        raise ValueError(f"unknown image {image!r}")
    trixie = image == "trixie-2026"
    if passwordless_sudo is None:
        passwordless_sudo = not trixie  # the 2026 default is a password
    (root / FAKE).mkdir(parents=True, exist_ok=True)
    codename = "trixie" if trixie else "bookworm"
    version = "13" if trixie else "12"
    os_release = (
        f'PRETTY_NAME="Debian GNU/Linux {version} ({codename})"\nVERSION_CODENAME={codename}\nID=debian\n'
    )
    _write(root, "etc/os-release", os_release)
    _write(root, "etc/machine-id", FLASHED_MACHINE_ID[image])
    _write(root, "etc/hostname", hostname + "\n")
    part = uuid.uuid4().hex[:8]
    cmdline = f"console=serial0,115200 console=tty1 root=PARTUUID={part}-02 rootfstype=ext4 "
    cmdline += "fsck.repair=yes rootwait"
    _write(root, "boot/firmware/cmdline.txt", cmdline + "\n")
    firmware = "dtparam=audio=on\narm_boost=1\n\n[cm5]\ndtoverlay=dwc2,dr_mode=host\n\n[all]\n"
    _write(root, "boot/firmware/config.txt", "# firmware settings of the image\n" + firmware)
    _write(root, "proc/device-tree/model", model + "\0")
    fstab = ["proc /proc proc defaults 0 0", f"PARTUUID={part}-01 /boot/firmware vfat defaults 0 2"]
    fstab.append(f"PARTUUID={part}-02 / ext4 defaults,noatime 0 1")
    _write(root, "etc/fstab", "\n".join(fstab) + "\n")
    _write(root, "etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\nAcceptEnv LANG LC_*\n")
    units: dict[str, dict[str, Any]] = {"ssh.service": {"enabled": "enabled", "active": False}}
    if trixie:
        _write(root, "etc/rpi/swap.conf", "# rpi-swap defaults (see swap.conf(5))\n[Main]\n#Mechanism=auto\n")
        if passwordless_sudo:
            # Imager's user-data `sudo:` line for the user; cloud-init writes it to its own
            # sudoers file, 0440, under a header (canonical/cloud-init cloudinit/distros/__init__.py
            # Distro.ci_sudoers_fn and write_sudo_rules; read in a stored copy, version not
            # checked). pi-gen c020178c dropped 010_pi-nopasswd.
            rule = "# Created by cloud-init\n\n# User rules for pi\npi ALL=(ALL) NOPASSWD:ALL\n"
            _write(root, "etc/sudoers.d/90-cloud-init-users", rule, 0o440)
        connection = {"netplan-eth0": {"GENERAL.DEVICES": "eth0"}}
    else:
        _write(root, "etc/dphys-swapfile", "CONF_SWAPSIZE=512\n")
        units["dphys-swapfile.service"] = {"enabled": "enabled", "active": False}
        if passwordless_sudo:
            _write(root, "etc/sudoers.d/010_pi-nopasswd", "pi ALL=(ALL) NOPASSWD: ALL\n", 0o440)
        connection = {"Wired connection 1": {"GENERAL.DEVICES": "eth0"}}
    for conn in connection.values():
        conn.update(
            {"ipv4.dns": "", "ipv4.ignore-auto-dns": "no", "ipv6.dns": "", "ipv6.ignore-auto-dns": "no"}
        )
    state = {
        "image": image,
        "model": model,
        "hostname": hostname,
        "user": "pi",
        "sudo_nopasswd": passwordless_sudo,
        "units": units,
        "nm": {"connections": connection, "devices": {"eth0": next(iter(connection))}},
        "nodes": {},
        "journal": {},
        "boots": 0,
    }
    save(state, root)
    boot(root)


def rpi_swap_mechanism(root: Path) -> str | None:
    """What rpi-swap's generator would configure: the last Mechanism= of swap.conf and its
    drop-ins in lexical order (swap.conf(5)); None where rpi-swap is not installed."""
    main = root / "etc/rpi/swap.conf"
    if not main.exists():
        return None
    mechanism = "auto"
    files = [main, *sorted((root / "etc/rpi/swap.conf.d").glob("*.conf"), key=lambda p: p.name)]
    for f in files:
        for line in f.read_text().splitlines():
            if line.strip().startswith("Mechanism="):
                mechanism = line.split("=", 1)[1].strip()
    return mechanism


def _generate(root: Path, state: dict[str, Any]) -> None:
    """systemd's generators: rpi-swap's zram unit exists unless the mechanism is none."""
    units = state["units"]
    mechanism = rpi_swap_mechanism(root)
    if mechanism is None:
        return
    if mechanism == "none":
        units.pop("dev-zram0.swap", None)
    else:
        units.setdefault("dev-zram0.swap", {"enabled": "generated", "active": False})


def boot(root: Path) -> None:
    """Start the card: a new boot id, the kernel the firmware would load with the command line
    of cmdline.txt, swap as the image configures it, enabled units running."""
    state = load(root)
    state["boots"] += 1
    machine_id = root / "etc/machine-id"
    if machine_id.read_text() in FLASHED_MACHINE_ID.values():
        machine_id.write_text(uuid.uuid4().hex + "\n")
    _write(root, "proc/sys/kernel/random/boot_id", f"{uuid.uuid4()}\n")
    cmdline = (root / "boot/firmware/cmdline.txt").read_text().splitlines()[0]
    _write(root, "proc/cmdline", cmdline + "\n")
    memory = "cgroup_enable=memory" in cmdline.split()
    _write(
        root, "sys/fs/cgroup/cgroup.controllers", "cpuset cpu io " + ("memory " if memory else "") + "pids\n"
    )
    config = (root / "boot/firmware/config.txt").read_text().splitlines()
    pi5 = state["model"].startswith(("Raspberry Pi 5", "Raspberry Pi Compute Module 5"))
    state["pagesize"] = 16384 if pi5 and "kernel=kernel8.img" not in config else 4096
    _generate(root, state)
    units = state["units"]
    units.pop("pi-cluster-reboot.service", None)
    for unit in units.values():
        unit["active"] = unit["enabled"] in ("enabled", "generated") and unit.get("start", "ok") == "ok"
    swaps = []
    if units.get("dphys-swapfile.service", {}).get("active"):
        swaps.append("/var/swap\t\t\t\tfile\t\t524284\t\t0\t\t-2")
    if units.get("dev-zram0.swap", {}).get("active"):
        swaps.append("/dev/zram0\t\t\t\tpartition\t2097136\t\t0\t\t100")
    for line in (root / "etc/fstab").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 3 and not line.startswith("#") and fields[2] == "swap":
            swaps.append(f"{fields[0]}\t\t\t\tfile\t\t102396\t\t0\t\t-3")
    _write(root, "proc/swaps", SWAPS_HEADER + "".join(s + "\n" for s in swaps))
    save(state, root)


def ssh_accepts(root: Path) -> bool:
    """Whether a new SSH connection gets through: only while ssh.service runs."""
    return bool(load(root)["units"].get("ssh.service", {}).get("active"))


def installer_script() -> str:
    """What the fake download serves as install.sh: a script that runs this fake as installer."""
    return f'exec "{sys.executable}" "{__file__}" installer "$@"\n'


# -- the commands ------------------------------------------------------------------------------


def sudo(args: list[str]) -> int:
    """Like sudo with env_reset: only PATH, the fake root and --preserve-env variables pass; with
    no NOPASSWD rule it asks for a password, which -n (or no terminal) refuses."""
    state = load()
    preserve: list[str] = []
    non_interactive = False
    while args and args[0].startswith("-"):
        opt = args.pop(0)
        if opt.startswith("--preserve-env="):
            preserve += opt.split("=", 1)[1].split(",")
        elif opt == "-n":
            non_interactive = True
    if not state["sudo_nopasswd"]:
        if non_interactive:
            print("sudo: a password is required", file=sys.stderr)
        else:
            print("sudo: a terminal is required to read the password", file=sys.stderr)
        return 1
    keep = {"PATH", "PI_CLUSTER_ROOT", *preserve}
    env = {k: v for k, v in os.environ.items() if k in keep}
    os.execvpe(args[0], args, env)
    return 1


def _server_started() -> None:
    """What a K3s server writes once it runs: the kubeconfig and the join token."""
    root = _root()
    kubeconfig = (
        "apiVersion: v1\nclusters:\n- cluster:\n    server: https://127.0.0.1:6443\n  name: default\n"
    )
    _write(root, "etc/rancher/k3s/k3s.yaml", kubeconfig, 0o600)
    _write(root, "var/lib/rancher/k3s/server/node-token", "K10fake::server:token\n", 0o600)


def systemctl(args: list[str]) -> int:
    state = load()
    units = state["units"]
    quiet = "--quiet" in args
    args = [a for a in args if a not in ("--quiet", "--now", "--no-block")]
    verb, unit = args[0], (args[1] if len(args) > 1 else "")
    name = unit if "." in unit else f"{unit}.service"
    if verb == "is-enabled":
        if name not in units:
            print(f"Failed to get unit file state for {name}: No such file or directory", file=sys.stderr)
            return 1
        print(units[name]["enabled"])
        return 0 if units[name]["enabled"] in ("enabled", "generated", "static") else 1
    if verb == "is-active":
        active = units.get(name, {}).get("active", False)
        if not quiet:
            print("active" if active else "inactive")
        return 0 if active else 3
    if verb == "daemon-reload":
        _generate(_root(), state)
        save(state)
        return 0
    u = units.setdefault(name, {"enabled": "disabled", "active": False})
    if verb == "mask":
        u.update(enabled="masked", active=False)
    elif verb in ("start", "restart"):
        behaviour = u.get("start", "ok")
        if behaviour == "hang":  # Type=notify that never sends READY=1: the job never ends
            save(state)
            time.sleep(3600)
            return 0
        if behaviour == "fail":
            u["active"] = False
            save(state)
            print(
                f"Job for {name} failed because the control process exited with error code.", file=sys.stderr
            )
            return 1
        u["active"] = True
        u["starts"] = u.get("starts", 0) + 1
        if name == "k3s.service":
            _server_started()
    elif verb == "reload":
        u["reloads"] = u.get("reloads", 0) + 1
    elif verb == "stop":
        # ssh.service: sshd stops listening, but the sessions it runs, this one included, go on
        # (KillMode=process in Debian's unit: /lib/systemd/system/ssh.service of openssh-server
        # 1:9.2p1-2+deb12u10, Bookworm; Trixie's package was not read). Tests open a new
        # session only through ssh_accepts(), which then refuses.
        u["active"] = False
    elif verb == "enable":
        u["enabled"] = "enabled"
    save(state)
    return 0


def journalctl(args: list[str]) -> int:
    unit = args[args.index("-u") + 1]
    for line in load()["journal"].get(unit, []):
        print(line)
    return 0


def getconf(args: list[str]) -> int:
    if args != ["PAGESIZE"]:
        return 1
    print(load()["pagesize"])
    return 0


def hostname(args: list[str]) -> int:
    print(load()["hostname"])
    return 0


def nmcli(args: list[str]) -> int:
    state = load()
    conns = state["nm"]["connections"]
    devices = state["nm"]["devices"]
    if args[0] == "-g":
        field, rest = args[1], args[2:]
        if rest[:2] == ["device", "show"]:
            if rest[2] not in devices:
                print(f"Error: Device '{rest[2]}' not found.", file=sys.stderr)
                return 10
            print(devices[rest[2]] if field == "GENERAL.CONNECTION" else "")
            return 0
        if rest[:2] == ["device", "status"]:
            print("\n".join(f"{d}:connected:{c}" for d, c in devices.items()))
            return 0
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
    (_root() / "proc/swaps").write_text(SWAPS_HEADER)
    return 0


def curl(args: list[str]) -> int:
    """Serves the installer (installer_script())."""
    out = Path(args[args.index("-o") + 1])
    out.write_text(installer_script())
    return 0


def installer(args: list[str]) -> int:
    """What k3s-io/k3s install.sh (the file the program downloads at v1.33.6+k3s1, pinned by
    installerSha256) does that the scripts rely on: the binary and uninstaller, the unit
    (create_systemd_service_file: Type=notify, TimeoutStartSec=0) and its environment file
    (create_env_file: K3S_* variables, 0600), enabled; started only without
    INSTALL_K3S_SKIP_START=true (service_enable_and_start). Read from a stored copy of install.sh
    (k3s-io/k3s commit 0136cf25), not from the tag itself. The binary prints `k3s --version` as
    k3s does: "k3s version <version> (<commit>)" then "go version ..." (k3s-io/k3s
    pkg/cli/cmds/root.go NewApp, cli.VersionPrinter; read in a stored copy at commit e7f7db48,
    older than the tag)."""
    role = args[0]
    env = {
        k: os.environ.get(k)
        for k in ("INSTALL_K3S_VERSION", "INSTALL_K3S_SKIP_START", "K3S_URL", "K3S_TOKEN")
    }
    record(["installer", *args], env=env)
    root = _root()
    version = env["INSTALL_K3S_VERSION"] or "stable"
    bin_dir = root / "usr/local/bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    k3s = bin_dir / "k3s"
    k3s.write_text(f'#!/bin/sh\necho "k3s version {version} (b5847677)"\necho "go version go1.24.9"\n')
    uninstaller = bin_dir / ("k3s-uninstall.sh" if role == "server" else "k3s-agent-uninstall.sh")
    uninstaller.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{__file__}" uninstaller "$0"\n')
    for p in (k3s, uninstaller):
        p.chmod(0o755)
    service = "k3s" if role == "server" else "k3s-agent"
    variables = "".join(f"{k}={v}\n" for k, v in sorted(os.environ.items()) if k.startswith("K3S_"))
    _write(root, f"etc/systemd/system/{service}.service.env", variables, 0o600)
    unit_file = f"[Service]\nType=notify\nTimeoutStartSec=0\nExecStart=/usr/local/bin/k3s {role}\n"
    _write(root, f"etc/systemd/system/{service}.service", unit_file)
    state = load()
    unit = state["units"].setdefault(f"{service}.service", {"active": False})
    unit["enabled"] = "enabled"
    save(state)
    if env["INSTALL_K3S_SKIP_START"] != "true":
        return systemctl(["restart", service])
    return 0


def uninstaller(args: list[str]) -> int:
    root = _root()
    for name in ("k3s", "k3s-uninstall.sh", "k3s-agent-uninstall.sh"):
        (root / "usr/local/bin" / name).unlink(missing_ok=True)
    shutil.rmtree(root / "etc/rancher/k3s", ignore_errors=True)
    return 0


def kubectl(args: list[str]) -> int:
    state = load()
    nodes = state["nodes"]
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
            # The API omits an empty value; {{.value}} then prints "<no value>".
            for t in node["taints"]:
                if "{{with .value}}" in out:
                    value = f"={t['value']}" if t.get("value") else ""
                else:
                    value = "=" + t.get("value", "<no value>")
                print(f"{t['key']}{value}:{t['effect']}")
        elif out == "jsonpath={.status.nodeInfo.machineID}":
            print(node.get("machineID", ""), end="")
        elif out == 'jsonpath={.status.conditions[?(@.type=="Ready")].status}':
            print(node.get("ready", "True"), end="")
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
            key, _, value = kv.partition("=")
            rest = [t for t in node["taints"] if (t["key"], t["effect"]) != (key, effect)]
            taint = {"key": key, "effect": effect, **({"value": value} if value else {})}
            node["taints"] = [*rest, taint]
    elif verb == "drain":
        node = nodes[args[1]]
        if node.get("ready", "True") != "True":
            # Eviction needs the kubelet: a NotReady node's pods never leave.
            timeout = next(a for a in args if a.startswith("--timeout=")).split("=")[1].rstrip("s")
            time.sleep(float(timeout))
            print(f"error: unable to drain node {args[1]}: timed out", file=sys.stderr)
            return 1
        node["pods"] = []
    elif verb == "delete" and args[1] == "node":
        nodes.pop(args[2])
    elif verb == "delete" and args[1] == "pods":
        selector = args[args.index("--field-selector") + 1]
        name = selector.split("=", 1)[1]
        nodes[name]["pods"] = []
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
        "journalctl": journalctl,
        "getconf": getconf,
        "hostname": hostname,
        "nmcli": nmcli,
        "swapoff": swapoff,
        "curl": curl,
        "installer": installer,
        "uninstaller": uninstaller,
        "kubectl": kubectl,
    }
    handler = handlers.get(name, lambda a: 0)  # systemd-run, sleep, reboot: recorded only
    return int(handler(args))


if __name__ == "__main__":
    sys.exit(main())

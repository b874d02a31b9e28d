"""Every node script runs under bash against fake Raspberry Pi OS cards (tests/fakehost.py: the
Bookworm image of 2025 and the Trixie image of 2026) and recording stub commands: the first run
changes what it should, a second run changes nothing, and a changed parameter changes exactly
what it should. Every parameter comes from the program's own functions (components.cluster), so
the scripts get exactly what `pulumi up` sends. shellcheck passes on every script.
host-identity.sh runs against a real OpenSSH server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components import cluster
from config.settings import Node, Settings, host_key_problem, parse
from tests import fakehost
from tests.conftest import ROOT, raw_config, require_tool

SCRIPTS = ROOT / "components" / "scripts"
FAKEHOST = ROOT / "tests" / "fakehost.py"
READ_ONLY_SUDO = {"cat", "test", "cmp", "journalctl", "sed"}
STUBS = (
    "sudo",
    "systemctl",
    "journalctl",
    "nmcli",
    "swapoff",
    "systemd-run",
    "getconf",
    "curl",
    "kubectl",
    "hostname",
    "sleep",
    "reboot",  # none of the scripts calls it directly; if one did, it is only recorded
)
IMAGES = fakehost.IMAGES


class Host:
    """A fake node: a flashed card under ``root``, stub commands on PATH, calls recorded."""

    def __init__(self, tmp: Path, image: str, **card: Any) -> None:
        self.root = tmp / "root"
        self.stubs = tmp / "stubs"
        self.root.mkdir(parents=True)
        self.stubs.mkdir()
        launcher = f'#!/bin/sh\nexec "{sys.executable}" "{FAKEHOST}" "$(basename "$0")" "$@"\n'
        for name in STUBS:
            (self.stubs / name).write_text(launcher)
            (self.stubs / name).chmod(0o755)
        fakehost.install_image(self.root, image, **card)
        self.image = image
        self.stderr = ""

    @property
    def state(self) -> dict[str, Any]:
        return fakehost.load(self.root)

    def edit(self, change: Any) -> None:
        state = fakehost.load(self.root)
        change(state)
        fakehost.save(state, self.root)

    def boot(self) -> None:
        fakehost.boot(self.root)

    def cancel_reboot(self) -> None:
        """What someone at the console does to keep the node up after node-prepare.sh scheduled
        its reboot: stop the timer (the fake only records it) and start sshd again, same boot."""
        self.edit(lambda s: s["units"]["ssh.service"].update(active=True))

    def file(self, path: str, text: str | None = None) -> str:
        p = self.root / path.lstrip("/")
        if text is not None:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        return p.read_text()

    @property
    def env(self) -> dict[str, str]:
        path = f"{self.root}/usr/local/bin:{self.stubs}:/usr/bin:/bin"
        return {"PATH": path, "PI_CLUSTER_ROOT": str(self.root), "TMPDIR": str(self.root / ".fake")}

    def run(
        self, script: str, env: dict[str, str] | None = None, ok: bool = True
    ) -> tuple[list[list[str]], str]:
        """Run a script in a new SSH session; return the calls it made and its stdout. Raises
        ConnectionRefusedError while the card's sshd is stopped."""
        if not fakehost.ssh_accepts(self.root):
            raise ConnectionRefusedError(f"ssh: connect to {self.image} card: Connection refused")
        calls_file = self.root / ".fake" / "calls.jsonl"
        calls_file.write_text("")
        proc = subprocess.run(
            ["bash", "-c", cluster.script(script)],  # the text the program sends
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (proc.returncode == 0) == ok, f"{script} rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        calls = [json.loads(line)["argv"] for line in calls_file.read_text().splitlines()]
        self.stderr = proc.stderr
        return calls, proc.stdout

    def files(self) -> dict[str, str]:
        return {
            str(p.relative_to(self.root)): p.read_text()
            for p in sorted(self.root.rglob("*"))
            if p.is_file() and ".fake" not in p.parts
        }


def changes(calls: list[list[str]]) -> list[list[str]]:
    """Calls that change the host: everything run under sudo except reads (a bounded
    ``timeout N`` prefix dropped), plus the installer."""
    out = []
    for c in calls:
        if c[0] == "sudo":
            args = [a for a in c[1:] if not a.startswith("--preserve-env") and a != "-n"]
            if args[:1] == ["timeout"]:
                args = args[2:]
            if args[0] in READ_ONLY_SUDO or args[:2] == ["kubectl", "get"] or args == ["true"]:
                continue
            out.append(args)
        elif c[0] == "installer":
            out.append(c)
    return out


def settings_with(**k3s: Any) -> Settings:
    raw = raw_config()
    raw["k3s"].update(k3s)
    return parse(raw)


def fake_installer_sha() -> str:
    return hashlib.sha256(fakehost.installer_script().encode()).hexdigest()


@pytest.fixture
def program() -> Settings:
    """The stack's settings, with the digest of the install.sh the fake download serves."""
    return settings_with(installerSha256=fake_installer_sha())


@pytest.fixture(params=IMAGES)
def image(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- shellcheck -------------------------------------------------------------------------------


NODE_SCRIPTS = sorted(
    p.name for p in [*SCRIPTS.glob("node-*.sh"), *SCRIPTS.glob("k3s-*.sh"), SCRIPTS / "host-identity.sh"]
)


def test_node_scripts_are_found() -> None:
    assert {"node-prepare.sh", "k3s-install.sh", "host-identity.sh"} <= set(NODE_SCRIPTS)


@pytest.mark.parametrize("script", NODE_SCRIPTS)
def test_shellcheck(script: str) -> None:
    shellcheck = require_tool("shellcheck")
    text = (SCRIPTS / script).read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
    proc = subprocess.run([shellcheck, "-S", "style", str(SCRIPTS / script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_shellcheck_catches_a_bad_script(tmp_path: Path) -> None:
    shellcheck = require_tool("shellcheck")
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nset -euo pipefail\nrm -rf $1/*\n")
    assert subprocess.run([shellcheck, str(bad)], capture_output=True).returncode != 0


# -- node-prepare.sh / node-wait.sh -----------------------------------------------------------

REBOOT = ["systemd-run", "--on-active=5", "--unit=pi-cluster-reboot", "systemctl", "reboot"]


def _wait_env(node: Node, prepared: str) -> dict[str, str]:
    return {k: str(v) for k, v in cluster.wait_env(node, prepared).items()}


@pytest.mark.parametrize("model", [fakehost.PI3, fakehost.PI5], ids=["pi3", "pi5"])
def test_prepare_first_run_reboot_then_nothing(
    tmp_path: Path, image: str, model: str, program: Settings
) -> None:
    host = Host(tmp_path, image, model=model, passwordless_sudo=True)
    node = program.node("pi-k3s" if model == fakehost.PI5 else "pi3-worker-1")
    fresh_cmdline = host.file("boot/firmware/cmdline.txt")
    boot_before = host.file("proc/sys/kernel/random/boot_id").strip()
    calls, out = host.run("node-prepare.sh")
    made = changes(calls)

    assert (
        host.file("boot/firmware/cmdline.txt")
        == fresh_cmdline.strip() + " cgroup_memory=1 cgroup_enable=memory\n"
    )
    assert host.file("boot/firmware/cmdline.txt.pi-cluster.orig") == fresh_cmdline
    assert host.file("etc/ssh/sshd_config.d/50-pi-cluster.conf") == (
        "AcceptEnv PI_CLUSTER_* INSTALL_K3S_VERSION K3S_URL K3S_TOKEN\n"
    )
    assert ["systemctl", "reload", "ssh.service"] in made
    if image == "trixie-2026":  # rpi-swap: the drop-in, never a mask
        assert host.file("etc/rpi/swap.conf.d/99-pi-cluster-no-swap.conf") == "[Main]\nMechanism=none\n"
        assert ["systemctl", "daemon-reload"] in made
        assert not any(c[:2] == ["systemctl", "mask"] for c in made)
    else:
        assert ["systemctl", "mask", "--now", "dphys-swapfile.service"] in made
        assert not (host.root / "etc/rpi").exists()
    assert ["swapoff", "-a"] in made
    assert host.file("proc/swaps").count("\n") == 1
    if model == fakehost.PI5:
        assert "[all]\nkernel=kernel8.img\n" in host.file("boot/firmware/config.txt")
    else:
        assert "kernel=" not in host.file("boot/firmware/config.txt")
    # Reboot scheduled after the command returns; sshd refuses new sessions until then, while
    # this session goes on to its last line (Debian's ssh.service: KillMode=process).
    assert made[made.index(REBOOT) + 1] == ["systemctl", "stop", "ssh.service"]
    assert f"boot_id={boot_before}" in out and out.strip().endswith("reboot=yes")
    with pytest.raises(ConnectionRefusedError):
        host.run("node-wait.sh", _wait_env(node, out))

    host.boot()
    _, ready = host.run("node-wait.sh", _wait_env(node, out))
    assert "ready" in ready and "4096-byte pages" in ready
    assert "memory" in host.file("sys/fs/cgroup/cgroup.controllers").split()
    assert host.file("proc/swaps").count("\n") == 1  # swap stayed off across the boot

    before = host.files()
    calls, again = host.run("node-prepare.sh")
    assert changes(calls) == []
    assert host.files() == before
    assert "changes=none" in again and "reboot=no" in again


@pytest.mark.parametrize("image", IMAGES)
def test_prepare_refuses_sudo_that_asks_for_a_password(tmp_path: Path, image: str) -> None:
    host = Host(tmp_path, image, passwordless_sudo=False)
    before = host.files()
    calls, _ = host.run("node-prepare.sh", ok=False)
    assert "cannot run sudo without a password" in host.stderr
    assert '"Enable passwordless sudo"' in host.stderr and "do_sudo_pass 1" in host.stderr
    assert host.stderr.endswith(f"every bootstrap step needs it.\n{cluster.SUDO_HELP}\n")
    assert changes(calls) == [] and host.files() == before


def test_trixie_default_is_a_password(tmp_path: Path) -> None:
    host = Host(tmp_path, "trixie-2026")
    host.run("node-prepare.sh", ok=False)
    assert "sudo without a password" in host.stderr


def test_prepare_leaves_cmdline_alone_when_the_kernel_has_the_memory_cgroup(
    tmp_path: Path, image: str
) -> None:
    """6.12 kernels: cgroup_enable=memory is what counts; cgroup_memory=1 is not needed."""
    host = Host(tmp_path, image, passwordless_sudo=True)
    line = host.file("boot/firmware/cmdline.txt").strip() + " cgroup_enable=memory\n"
    host.file("boot/firmware/cmdline.txt", line)
    host.boot()
    calls, out = host.run("node-prepare.sh")
    assert host.file("boot/firmware/cmdline.txt") == line
    assert "reboot=no" in out and REBOOT not in changes(calls)
    assert ["swapoff", "-a"] in changes(calls)  # swap still handled


def test_prepare_reboots_when_the_file_is_right_but_the_kernel_is_not(tmp_path: Path, image: str) -> None:
    """Someone edited cmdline.txt but never rebooted: the running kernel still lacks the cgroup."""
    host = Host(tmp_path, image, passwordless_sudo=True)
    line = host.file("boot/firmware/cmdline.txt").strip() + " cgroup_memory=1 cgroup_enable=memory\n"
    host.file("boot/firmware/cmdline.txt", line)
    _, out = host.run("node-prepare.sh")
    assert "reboot=yes" in out and host.file("boot/firmware/cmdline.txt") == line
    assert not (host.root / "boot/firmware/cmdline.txt.pi-cluster.orig").exists()


def test_prepare_on_a_pi5_reboots_only_while_the_16k_kernel_runs(tmp_path: Path, image: str) -> None:
    host = Host(tmp_path, image, model=fakehost.PI5, passwordless_sudo=True)
    host.file(
        "boot/firmware/cmdline.txt",
        host.file("boot/firmware/cmdline.txt").strip() + " cgroup_enable=memory\n",
    )
    host.boot()
    assert host.state["pagesize"] == 16384
    _, out = host.run("node-prepare.sh")
    assert "config:kernel8.img" in out and "reboot=yes" in out
    host.cancel_reboot()
    _, out = host.run("node-prepare.sh")  # not rebooted yet: config right, kernel not
    assert "changes=none" in out and "reboot=yes" in out
    host.boot()
    _, out = host.run("node-prepare.sh")
    assert "changes=none" in out and "reboot=no" in out
    assert host.file("boot/firmware/config.txt").count("kernel=kernel8.img") == 1


def test_wait_refuses_a_node_that_did_not_reboot_or_lacks_what_k3s_needs(
    tmp_path: Path, image: str, program: Settings
) -> None:
    host = Host(tmp_path, image, model=fakehost.PI5, passwordless_sudo=True)
    _, out = host.run("node-prepare.sh")
    host.cancel_reboot()
    host.run("node-wait.sh", _wait_env(program.server, out), ok=False)  # the same boot
    assert "error: node pi-k3s is not ready" in host.stderr
    assert "was to reboot but still runs boot" in host.stderr
    assert "no memory cgroup" in host.stderr and "16384-byte page kernel" in host.stderr
    # A reboot that came back with the old kernel (config.txt reverted by hand):
    host.file(
        "boot/firmware/config.txt", host.file("boot/firmware/config.txt").replace("kernel=kernel8.img", "")
    )
    host.boot()
    host.run("node-wait.sh", _wait_env(program.server, out), ok=False)
    assert "16384-byte page kernel" in host.stderr and "still runs boot" not in host.stderr


def test_prepare_comments_out_fstab_swap(tmp_path: Path) -> None:
    host = Host(tmp_path, "bookworm-2025")
    host.file("etc/fstab", host.file("etc/fstab") + "/swapfile none swap sw 0 0\n")
    host.boot()
    assert "/swapfile" in host.file("proc/swaps")
    host.run("node-prepare.sh")
    assert "# pi-cluster: swap off # /swapfile none swap" in host.file("etc/fstab")
    host.boot()
    assert "/swapfile" not in host.file("proc/swaps")


# -- node-dns.sh ------------------------------------------------------------------------------


def _dns(node: Node) -> dict[str, str]:
    return cluster.dns_env(node)


def test_dns_sets_the_connection_of_the_device_then_changes_nothing(tmp_path: Path, image: str) -> None:
    host = Host(tmp_path, image, passwordless_sudo=True)
    conn = fakehost.CONNECTION[image]  # "Wired connection 1" or "netplan-eth0"
    node = parse(raw_config()).node("pi3-worker-1")
    calls, out = host.run("node-dns.sh", _dns(node))
    made = changes(calls)
    assert made[0] == [
        "nmcli", "connection", "modify", conn,
        "ipv4.dns", "1.1.1.1,8.8.8.8", "ipv4.ignore-auto-dns", "yes", "ipv6.ignore-auto-dns", "yes",
    ]  # fmt: skip
    assert ["nmcli", "device", "reapply", "eth0"] in made
    settings_now = host.state["nm"]["connections"][conn]
    assert settings_now["ipv6.ignore-auto-dns"] == "yes" and settings_now["ipv6.dns"] == ""
    assert f"'{conn}' set to 1.1.1.1,8.8.8.8" in out
    calls, out = host.run("node-dns.sh", _dns(node))
    assert changes(calls) == [] and "unchanged" in out


def test_dns_connection_override_and_unknown_names(tmp_path: Path) -> None:
    host = Host(tmp_path, "trixie-2026", passwordless_sudo=True)
    raw = raw_config()
    raw["nodes"][1]["nmConnection"] = "Wired connection 1"  # the Bookworm name on a Trixie card
    calls, _ = host.run("node-dns.sh", _dns(parse(raw).node("pi3-worker-1")), ok=False)
    assert (
        "no NetworkManager connection 'Wired connection 1'" in host.stderr and "netplan-eth0" in host.stderr
    )
    assert changes(calls) == []
    raw["nodes"][1].pop("nmConnection")
    raw["nodes"][1]["nmDevice"] = "end0"
    calls, _ = host.run("node-dns.sh", _dns(parse(raw).node("pi3-worker-1")), ok=False)
    assert "device end0 has no active NetworkManager connection" in host.stderr and changes(calls) == []


def test_dns_changed_resolvers_change_only_dns(tmp_path: Path, image: str) -> None:
    host = Host(tmp_path, image, passwordless_sudo=True)
    raw = raw_config()
    host.run("node-dns.sh", _dns(parse(raw).node("pi3-worker-1")))
    raw["nodes"][1]["dnsResolvers"] = ["9.9.9.9"]
    calls, _ = host.run("node-dns.sh", _dns(parse(raw).node("pi3-worker-1")))
    assert changes(calls)[0][4:] == ["ipv4.dns", "9.9.9.9"]


def test_dns_auto_hands_back_only_what_it_made_static(tmp_path: Path, image: str) -> None:
    host = Host(tmp_path, image, passwordless_sudo=True)
    raw = raw_config()
    raw["nodes"][1]["staticDns"] = False
    auto = _dns(parse(raw).node("pi3-worker-1"))
    calls, out = host.run("node-dns.sh", auto)  # never static: its own DNS stays
    assert changes(calls) == [] and "left as it is" in out
    host.run("node-dns.sh", _dns(parse(raw_config()).node("pi3-worker-1")))
    calls, out = host.run("node-dns.sh", auto)
    conn = host.state["nm"]["connections"][fakehost.CONNECTION[image]]
    assert (
        conn["ipv4.dns"] == ""
        and conn["ipv4.ignore-auto-dns"] == "no"
        and conn["ipv6.ignore-auto-dns"] == "no"
    )
    assert not (host.root / "var/lib/pi-cluster/dns-static").exists()
    calls, _ = host.run("node-dns.sh", auto)
    assert changes(calls) == []


# -- k3s-install.sh / k3s-read.sh -------------------------------------------------------------

TOKEN = "K10" + "c0ffee" * 10 + "::server:0123456789abcdef"


def _installs(calls: list[list[str]]) -> list[list[str]]:
    return [c for c in changes(calls) if c[0] == "installer"]


def _installer_env(host: Host) -> dict[str, Any]:
    entries = [json.loads(line) for line in (host.root / ".fake/calls.jsonl").read_text().splitlines()]
    return next(c["env"] for c in entries if c["argv"][0] == "installer")


def test_server_install_rerun_config_change_upgrade(tmp_path: Path, image: str, program: Settings) -> None:
    host = Host(tmp_path, image, model=fakehost.PI5, passwordless_sudo=True)
    env = cluster.install_env(program)
    calls, out = host.run("k3s-install.sh", env)
    assert _installs(calls) == [["installer", "server"]]
    assert _installer_env(host)["INSTALL_K3S_SKIP_START"] == "true"  # the installer starts nothing
    made = changes(calls)
    assert made[-1] == ["systemctl", "restart", "k3s"]
    assert next(c for c in calls if "restart" in c)[1:] == ["timeout", "300", "systemctl", "restart", "k3s"]
    curl = next(c for c in calls if c[0] == "curl")
    assert (
        curl[-3:] == [program.k3s.installer(), "-o", curl[-1]] and "--retry" in curl and "--max-time" in curl
    )
    assert "https://raw.githubusercontent.com/k3s-io/k3s/v1.33.6%2Bk3s1/install.sh" in curl
    config = host.root / "etc/rancher/k3s/config.yaml"
    assert config.read_text() == cluster.server_config(program)  # the exact bytes, final newline too
    assert "node-name: pi-k3s\n" in config.read_text()
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    assert "installed v1.33.6+k3s1 (was none)" in out

    # Unchanged inputs: nothing written, nothing restarted.
    before = host.files()
    calls, out = host.run("k3s-install.sh", env)
    assert changes(calls) == [] and host.files() == before and "unchanged" in out
    assert host.state["units"]["k3s.service"]["starts"] == 1

    # A new server flag: config.yaml and one restart, no installer.
    raw = raw_config()
    raw["k3s"].update(
        installerSha256=fake_installer_sha(), extraServerConfig={"kubelet-arg": ["max-pods=60"]}
    )
    calls, out = host.run("k3s-install.sh", cluster.install_env(parse(raw)))
    assert changes(calls) == [["install", "-D", "-m", "0600", changes(calls)[0][4], str(config)],
                              ["systemctl", "restart", "k3s"]]  # fmt: skip
    assert "restarted for a new config.yaml" in out

    # Upgrade: the installer, then a restart onto the new binary.
    calls, out = host.run("k3s-install.sh", cluster.install_env(settings_with(
        version="v1.33.7+k3s1", installerSha256=fake_installer_sha())))  # fmt: skip
    assert _installs(calls) == [["installer", "server"]] and changes(calls)[-1] == [
        "systemctl",
        "restart",
        "k3s",
    ]
    assert "was v1.33.6+k3s1" in out


def test_install_refuses_a_lower_version(tmp_path: Path, program: Settings) -> None:
    host = Host(tmp_path, "trixie-2026", passwordless_sudo=True)
    newer = settings_with(version="v1.34.1+k3s1", installerSha256=fake_installer_sha())
    host.run("k3s-install.sh", cluster.install_env(newer))
    calls, _ = host.run("k3s-install.sh", cluster.install_env(program), ok=False)
    assert "runs K3s v1.34.1+k3s1, newer than k3s.version v1.33.6+k3s1" in host.stderr
    assert changes(calls) == []


def test_install_refuses_to_change_cluster_networks(tmp_path: Path, program: Settings) -> None:
    host = Host(tmp_path, "bookworm-2025")
    host.run("k3s-install.sh", cluster.install_env(program))
    moved = settings_with(installerSha256=fake_installer_sha(), clusterCidr="10.52.0.0/16")
    calls, _ = host.run("k3s-install.sh", cluster.install_env(moved), ok=False)
    assert "refusing to change cluster-cidr from 10.42.0.0/16 to 10.52.0.0/16" in host.stderr
    assert changes(calls) == [] and "cluster-cidr: 10.42.0.0/16" in host.file("etc/rancher/k3s/config.yaml")


def test_install_refuses_an_installer_with_another_digest(tmp_path: Path) -> None:
    host = Host(tmp_path, "trixie-2026", passwordless_sudo=True)
    stack = parse(raw_config())  # the stack's digest of the real install.sh, not the fake's
    calls, _ = host.run("k3s-install.sh", cluster.install_env(stack), ok=False)
    assert f"has sha256 {fake_installer_sha()}, not {stack.k3s.installer_sha256}" in host.stderr
    assert _installs(calls) == []


def test_agent_join_rerun_and_rejoin(tmp_path: Path, image: str, program: Settings) -> None:
    host = Host(tmp_path, image, passwordless_sudo=True)
    agent = program.node("pi3-worker-1")
    env = cluster.join_env(program, agent, TOKEN)
    calls, out = host.run("k3s-install.sh", env)
    assert _installs(calls) == [["installer", "agent"]]
    assert _installer_env(host) == {
        "INSTALL_K3S_VERSION": "v1.33.6+k3s1",
        "INSTALL_K3S_SKIP_START": "true",
        "K3S_URL": "https://192.168.1.55:6443",
        "K3S_TOKEN": TOKEN,
    }
    assert changes(calls)[-1] == ["systemctl", "restart", "k3s-agent"]
    assert host.file("etc/rancher/k3s/config.yaml") == cluster.agent_config(agent)
    assert "node-name: pi3-worker-1\n" in host.file("etc/rancher/k3s/config.yaml")
    # The token is never printed and only in the installer's root-only unit environment file.
    assert TOKEN not in out + host.stderr
    holders = [path for path, text in host.files().items() if TOKEN in text]
    assert holders == ["etc/systemd/system/k3s-agent.service.env"]
    assert oct((host.root / holders[0]).stat().st_mode & 0o777) == "0o600"

    calls, out = host.run("k3s-install.sh", env)
    assert changes(calls) == [] and "unchanged" in out
    calls, _ = host.run("k3s-install.sh", cluster.join_env(program, agent, TOKEN.replace("c0ffee", "decade")))
    assert _installs(calls) == [["installer", "agent"]]  # a new token means a rejoin


def test_a_join_that_never_becomes_ready_fails_within_the_bound(tmp_path: Path) -> None:
    """A k3s-agent that never sends READY=1 (it cannot reach the server): the bounded start."""
    host = Host(tmp_path, "trixie-2026", passwordless_sudo=True)
    host.edit(
        lambda s: s["units"].update(
            {"k3s-agent.service": {"enabled": "disabled", "active": False, "start": "hang"}}
        )
    )
    journal = (
        'level=error msg="failed to get CA certs: Get \\"https://192.168.1.55:6443/cacerts\\": '
        'dial tcp: connect: no route to host"'
    )
    host.edit(lambda s: s["journal"].update({"k3s-agent": [journal]}))
    settings = settings_with(installerSha256=fake_installer_sha(), startTimeoutSeconds=10)
    started = time.monotonic()
    calls, _ = host.run(
        "k3s-install.sh", cluster.join_env(settings, settings.node("pi3-worker-2"), TOKEN), ok=False
    )
    elapsed = time.monotonic() - started
    assert 10 <= elapsed < 30, elapsed
    assert "error: node pi3-worker-2: k3s-agent did not become active within 10s" in host.stderr
    assert "failed to get CA certs" in host.stderr  # the journal excerpt
    assert ["journalctl", "-u", "k3s-agent", "-n", "50", "--no-pager"] in [
        c[1:] for c in calls if c[0] == "sudo"
    ]


def test_server_without_files_times_out_clearly(tmp_path: Path, program: Settings) -> None:
    host = Host(tmp_path, "bookworm-2025")
    host.run("k3s-install.sh", cluster.install_env(program))
    (host.root / "var/lib/rancher/k3s/server/node-token").unlink()
    host.run("k3s-install.sh", cluster.install_env(program), ok=False)
    assert (
        f"node pi-k3s: {host.root}/var/lib/rancher/k3s/server/node-token did not appear within 180s"
        in host.stderr
    )


def test_read_prints_the_file_and_refuses_unknown_names(
    tmp_path: Path, image: str, program: Settings
) -> None:
    host = Host(tmp_path, image, passwordless_sudo=True)
    host.run("k3s-install.sh", cluster.install_env(program))
    _, out = host.run("k3s-read.sh", cluster.read_env("token"))
    assert out.strip() == "K10fake::server:token"
    _, out = host.run("k3s-read.sh", cluster.read_env("kubeconfig"))
    assert "https://192.168.1.55:6443" in cluster.rewrite_kubeconfig(out, program.server.address)
    host.run("k3s-read.sh", cluster.read_env("/etc/shadow"), ok=False)


# -- node-labels.sh ---------------------------------------------------------------------------

LABEL = ["kubectl", "label", "node", "pi3-worker-1"]


def _labelled(labels: dict[str, str], taints: list[dict[str, str]]) -> Settings:
    raw = raw_config()
    raw["nodes"][1].update(labels=labels, taints=taints)
    return parse(raw)


@pytest.fixture
def cluster_host(tmp_path: Path, image: str) -> Host:
    host = Host(tmp_path, image, model=fakehost.PI5, passwordless_sudo=True)
    node = {
        "labels": {"kubernetes.io/hostname": "pi3-worker-1", "other/owner": "x"},
        "annotations": {},
        "taints": [],
        "machineID": "a" * 32,
        "ready": "True",
        "pods": ["kube-system/svclb-x", "pihole/unbound-0"],
    }
    host.edit(lambda s: s["nodes"].update({"pi3-worker-1": node}))
    return host


def test_labels_first_run_second_run_and_removal(cluster_host: Host) -> None:
    taints = [{"key": "dedicated", "value": "dns", "effect": "NoSchedule"},
              {"key": "pi-cluster/spare", "effect": "PreferNoSchedule"}]  # fmt: skip
    wanted = _labelled({"pi-cluster/class": "pi3", "pi-cluster/role": "dns"}, taints)
    env = cluster.labels_env(wanted, wanted.node("pi3-worker-1"))
    calls, _ = cluster_host.run("node-labels.sh", env)
    made = changes(calls)
    assert made[0] == [*LABEL, "--overwrite", "pi-cluster/class=pi3", "pi-cluster/role=dns"]
    assert ["kubectl", "taint", "node", "pi3-worker-1", "dedicated=dns:NoSchedule", "--overwrite"] in made
    assert [
        "kubectl",
        "taint",
        "node",
        "pi3-worker-1",
        "pi-cluster/spare:PreferNoSchedule",
        "--overwrite",
    ] in made
    node = cluster_host.state["nodes"]["pi3-worker-1"]
    assert node["annotations"] == {
        "pi-cluster/managed-labels": "pi-cluster/class,pi-cluster/role",
        "pi-cluster/managed-taints": "dedicated:NoSchedule,pi-cluster/spare:PreferNoSchedule",
    }
    assert {"key": "pi-cluster/spare", "effect": "PreferNoSchedule"} in node["taints"]  # no value field

    calls, _ = cluster_host.run("node-labels.sh", env)
    assert changes(calls) == []  # the taint without a value reads back equal

    # Drop a label and the taints, change a value: exactly those changes, foreign labels kept.
    fewer = _labelled({"pi-cluster/class": "pi3b"}, [])
    calls, _ = cluster_host.run("node-labels.sh", cluster.labels_env(fewer, fewer.node("pi3-worker-1")))
    assert changes(calls) == [
        [*LABEL, "--overwrite", "pi-cluster/class=pi3b", "pi-cluster/role-"],
        ["kubectl", "taint", "node", "pi3-worker-1", "dedicated:NoSchedule-"],
        ["kubectl", "taint", "node", "pi3-worker-1", "pi-cluster/spare:PreferNoSchedule-"],
        [
            "kubectl", "annotate", "node", "pi3-worker-1", "--overwrite",
            "pi-cluster/managed-labels=pi-cluster/class", "pi-cluster/managed-taints=",
        ],
    ]  # fmt: skip
    node = cluster_host.state["nodes"]["pi3-worker-1"]
    assert node["labels"] == {
        "kubernetes.io/hostname": "pi3-worker-1",
        "other/owner": "x",
        "pi-cluster/class": "pi3b",
    }
    assert node["taints"] == []


def test_the_old_template_would_never_settle_on_a_taint_without_value(cluster_host: Host) -> None:
    """What the fix is for: {{.value}} prints "<no value>" for such a taint (the fake does too)."""
    cluster_host.edit(
        lambda s: s["nodes"]["pi3-worker-1"]["taints"].append({"key": "k", "effect": "NoSchedule"})
    )
    template = 'go-template={{range .spec.taints}}{{.key}}={{.value}}:{{.effect}}{{"\\n"}}{{end}}'
    proc = subprocess.run(
        ["kubectl", "get", "node", "pi3-worker-1", "-o", template],
        env=cluster_host.env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout == "k=<no value>:NoSchedule\n"


def test_labels_wait_for_the_node_then_fail_clearly(cluster_host: Host) -> None:
    quick = settings_with(readyTimeoutSeconds=10)
    env = cluster.labels_env(quick, quick.node("pi3-worker-2"))
    calls, _ = cluster_host.run("node-labels.sh", env, ok=False)
    assert "node pi3-worker-2 did not register within 10s" in cluster_host.stderr
    assert changes(calls) == []


# -- node-remove.sh ---------------------------------------------------------------------------


def _drain(
    host: Host, program: Settings, *, node_id: str = "a" * 32, host_id: str | None = None
) -> dict[str, str]:
    here = host.file("etc/machine-id").strip()
    env = cluster.host_env(cluster.drain_env(program, program.node("pi3-worker-1"), node_id), host_id or here)
    return {k: str(v) for k, v in env.items()}


def test_drain_a_ready_node_then_nothing(cluster_host: Host, program: Settings) -> None:
    calls, out = cluster_host.run("node-remove.sh", _drain(cluster_host, program))
    assert changes(calls) == [
        [
            "kubectl",
            "drain",
            "pi3-worker-1",
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=180s",
        ],
        ["kubectl", "delete", "node", "pi3-worker-1", "--timeout=180s"],
    ]
    assert cluster_host.state["nodes"] == {} and "drained and deleted" in out
    calls, out = cluster_host.run("node-remove.sh", _drain(cluster_host, program))
    assert changes(calls) == [] and "nothing to drain" in out


def test_a_dead_node_is_removed_without_waiting_for_it(cluster_host: Host, program: Settings) -> None:
    cluster_host.edit(lambda s: s["nodes"]["pi3-worker-1"].update(ready="Unknown"))
    started = time.monotonic()
    calls, out = cluster_host.run("node-remove.sh", _drain(cluster_host, program))
    assert time.monotonic() - started < 20
    assert changes(calls) == [
        ["kubectl", "delete", "pods", "--all-namespaces", "--field-selector", "spec.nodeName=pi3-worker-1",
         "--force", "--grace-period=0", "--timeout=180s"],
        ["kubectl", "delete", "node", "pi3-worker-1", "--timeout=180s"],
    ]  # fmt: skip
    assert "not ready (Unknown)" in out and cluster_host.state["nodes"] == {}


def test_drain_leaves_a_new_card_and_a_new_server_alone(cluster_host: Host, program: Settings) -> None:
    calls, out = cluster_host.run("node-remove.sh", _drain(cluster_host, program, node_id="b" * 32))
    assert changes(calls) == [] and "a new card joined under this name" in out
    calls, out = cluster_host.run("node-remove.sh", _drain(cluster_host, program, host_id="c" * 32))
    assert changes(calls) == [] and "is another host now" in out
    assert "pi3-worker-1" in cluster_host.state["nodes"]


def test_uninstall_only_when_allowed_and_only_on_its_host(
    tmp_path: Path, image: str, program: Settings
) -> None:
    host = Host(tmp_path, image, passwordless_sudo=True)
    agent = program.node("pi3-worker-1")
    host.run("k3s-install.sh", cluster.join_env(program, agent, TOKEN))
    here = host.file("etc/machine-id").strip()
    env = {k: str(v) for k, v in cluster.host_env(cluster.uninstall_env(program, agent), here).items()}
    calls, out = host.run("node-remove.sh", env)
    assert changes(calls) == [] and "left installed" in out
    allowed = settings_with(installerSha256=fake_installer_sha(), allowUninstall=True)
    env = {k: str(v) for k, v in cluster.host_env(cluster.uninstall_env(allowed, agent), here).items()}
    calls, _ = host.run("node-remove.sh", {**env, "PI_CLUSTER_HOST_ID": "d" * 32})
    assert changes(calls) == [] and (host.root / "usr/local/bin/k3s").exists()
    calls, out = host.run("node-remove.sh", env)
    assert [str(host.root / "usr/local/bin/k3s-agent-uninstall.sh")] in changes(calls)
    assert not (host.root / "usr/local/bin/k3s").exists()
    calls, out = host.run("node-remove.sh", env)
    assert changes(calls) == [] and "not installed" in out


def test_scripts_honour_an_empty_root() -> None:
    """The test seam is also the real path: with PI_CLUSTER_ROOT unset, paths are absolute."""
    for name in NODE_SCRIPTS:
        text = (SCRIPTS / name).read_text()
        if name not in ("node-labels.sh", "host-identity.sh"):  # no local paths in these
            assert 'root="${PI_CLUSTER_ROOT:-}"' in text, name
    assert os.environ.get("PI_CLUSTER_ROOT") is None


# -- host-identity.sh against a real OpenSSH server on loopback ----------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keygen(path: Path) -> str:
    subprocess.run([require_tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


class Sshd:
    """sshd -D on 127.0.0.1 whose sessions see the fake card (PI_CLUSTER_ROOT) and its sudo."""

    def __init__(self, tmp: Path, host: Host) -> None:
        self.dir = tmp / "sshd"
        self.dir.mkdir()
        self.port = _free_port()
        self.host_key = _keygen(self.dir / "host_ed25519")
        self.client_pub = _keygen(self.dir / "client_ed25519")
        (self.dir / "authorized_keys").write_text(self.client_pub + "\n")
        self.user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
        config = self.dir / "sshd_config"
        config.write_text(
            f"ListenAddress 127.0.0.1\nPort {self.port}\nHostKey {self.dir}/host_ed25519\n"
            f"AuthorizedKeysFile {self.dir}/authorized_keys\nPidFile {self.dir}/sshd.pid\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "PermitRootLogin prohibit-password\n"
            f"SetEnv PI_CLUSTER_ROOT={host.root} PATH={host.stubs}:/usr/bin:/bin\n"
        )
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        if not Path(sshd).exists():
            require_tool("sshd")
        self.proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"sshd did not start: {self.proc.stderr.read() if self.proc.stderr else ''}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def sshd(tmp_path: Path, image: str) -> Iterator[tuple[Sshd, Host]]:
    require_tool("ssh")
    host = Host(tmp_path, image, passwordless_sudo=True)
    server = Sshd(tmp_path, host)
    try:
        yield server, host
    finally:
        server.stop()


def _identity(
    server: Sshd, host_key: str | None, skip: str | None = None, key: str | None = None
) -> tuple[subprocess.CompletedProcess[str], Node]:
    node = Node.model_validate({
        "name": "pi-k3s", "address": "127.0.0.1", "role": "server", "sshUser": server.user,
        "hardware": {"model": "pi5", "cores": 4, "memory": "8Gi"},
        **({"hostKey": host_key} if host_key else {}), **({"skipHostKeyCheck": skip} if skip else {}),
    })  # fmt: skip
    env = {**cluster.identity_env(node), "PI_CLUSTER_PORT": str(server.port), "PATH": os.environ["PATH"]}
    proc = subprocess.run(
        ["bash", "-c", cluster.script("host-identity.sh")],
        input=key if key is not None else (server.dir / "client_ed25519").read_text(),
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return proc, node


def test_identity_reads_the_machine_id_over_ssh_with_the_recorded_host_key(sshd: tuple[Sshd, Host]) -> None:
    server, host = sshd
    # The guide's command, against this server: "[127.0.0.1]:<port> ssh-ed25519 AAAA..."
    scan = subprocess.run(
        [require_tool("ssh-keyscan"), "-t", "ed25519", "-p", str(server.port), "127.0.0.1"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout.strip()  # fmt: skip
    assert host_key_problem(scan, "127.0.0.1") is None
    proc, node = _identity(server, scan)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == host.file("etc/machine-id")
    assert node.host_key_line == " ".join(server.host_key.split()[:2])


def test_identity_takes_the_key_as_pulumi_config_holds_it(sshd: tuple[Sshd, Host]) -> None:
    """`pulumi config set --secret sshPrivateKey < key` may keep the key without its last newline."""
    server, host = sshd
    key = (server.dir / "client_ed25519").read_text().rstrip("\n")
    proc, _ = _identity(server, server.host_key, key=key)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == host.file("etc/machine-id")


def test_identity_refuses_a_card_before_its_first_boot_and_reads_the_id_systemd_writes(
    sshd: tuple[Sshd, Host],
) -> None:
    """The card as flashed has no id (Bookworm: empty, Trixie: "uninitialized"); booting it
    gives it one, which is then the node's identity."""
    server, host = sshd
    before = host.file("etc/machine-id")
    host.file("etc/machine-id", fakehost.FLASHED_MACHINE_ID[host.image])
    proc, _ = _identity(server, server.host_key)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "not 32 hex digits (has the card finished its first boot?)" in proc.stderr
    host.boot()
    after = host.file("etc/machine-id")
    assert re.fullmatch(r"[0-9a-f]{32}\n", after) and after != before
    proc, _ = _identity(server, server.host_key)
    assert proc.returncode == 0 and proc.stdout == after


def test_identity_refuses_a_wrong_host_key(sshd: tuple[Sshd, Host], tmp_path: Path) -> None:
    server, _ = sshd
    other = _keygen(tmp_path / "other_host")
    proc, _ = _identity(server, other)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "node pi-k3s (127.0.0.1): SSH as" in proc.stderr and "verification failed" in proc.stderr
    assert "not the one in hostKey" in proc.stderr


def test_identity_refuses_sudo_with_a_password(sshd: tuple[Sshd, Host]) -> None:
    server, host = sshd
    host.edit(lambda s: s.update(sudo_nopasswd=False))
    proc, _ = _identity(server, server.host_key)
    assert proc.returncode == 1 and '"Enable passwordless sudo"' in proc.stderr
    assert proc.stderr.endswith(f"cannot run sudo without a password.\n{cluster.SUDO_HELP}\n")


def test_both_sudo_refusals_give_the_programs_one_advice() -> None:
    """host-identity.sh and node-prepare.sh each hold the placeholder once; the text the
    program sends has SUDO_HELP there and no placeholder left."""
    for name in ("host-identity.sh", "node-prepare.sh"):
        assert (SCRIPTS / name).read_text().count(cluster.SUDO_HELP_PLACEHOLDER) == 1, name
        sent = cluster.script(name)
        assert "@PI_CLUSTER_" not in sent and f"sudo_help={shlex.quote(cluster.SUDO_HELP)}\n" in sent, name
        assert "do_sudo_pass" not in (SCRIPTS / name).read_text(), name  # no second copy of the text


def test_identity_without_host_key_check_only_when_the_node_says_why(sshd: tuple[Sshd, Host]) -> None:
    server, host = sshd
    proc, node = _identity(server, None, skip="lab bench card, re-flashed daily")
    assert proc.returncode == 0 and proc.stdout == host.file("etc/machine-id")
    assert cluster.identity_env(node)["PI_CLUSTER_HOST_KEY"] == ""

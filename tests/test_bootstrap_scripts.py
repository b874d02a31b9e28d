"""Every node script runs under bash against a fake root and recording stub commands
(tests/fakehost.py): the first run changes the host, a second run changes nothing, and a changed
parameter changes exactly what it should. shellcheck passes on every script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, require_tool

SCRIPTS = ROOT / "components" / "scripts"
FAKEHOST = ROOT / "tests" / "fakehost.py"
READ_ONLY_SUDO = {"cat", "test"}


class Host:
    """A fake node: files under ``root``, stub commands on PATH, calls and state recorded."""

    def __init__(self, tmp: Path, state: dict[str, Any] | None = None) -> None:
        self.root = tmp / "root"
        self.stubs = tmp / "stubs"
        (self.root / ".fake").mkdir(parents=True)
        self.stubs.mkdir()
        launcher = f'#!/bin/sh\nexec "{sys.executable}" "{FAKEHOST}" "$(basename "$0")" "$@"\n'
        for name in (
            "sudo",
            "systemctl",
            "nmcli",
            "swapoff",
            "systemd-run",
            "curl",
            "kubectl",
            "hostname",
            "sleep",
            "reboot",  # none of the scripts calls it directly; if one did, it is only recorded
        ):
            (self.stubs / name).write_text(launcher)
            (self.stubs / name).chmod(0o755)
        self.write_state(state or {})
        self.run_count = 0

    def write_state(self, state: dict[str, Any]) -> None:
        (self.root / ".fake" / "state.json").write_text(json.dumps(state))

    @property
    def state(self) -> dict[str, Any]:
        return json.loads((self.root / ".fake" / "state.json").read_text())

    def file(self, path: str, text: str | None = None) -> str:
        p = self.root / path.lstrip("/")
        if text is not None:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        return p.read_text()

    def run(
        self, script: str, env: dict[str, str] | None = None, ok: bool = True
    ) -> tuple[list[list[str]], str]:
        """Run a script; return the calls it made and its stdout."""
        calls_file = self.root / ".fake" / "calls.jsonl"
        calls_file.write_text("")
        path = f"{self.root}/usr/local/bin:{self.stubs}:/usr/bin:/bin"
        proc = subprocess.run(
            ["bash", "-c", (SCRIPTS / script).read_text()],
            env={"PATH": path, "PI_CLUSTER_ROOT": str(self.root), **(env or {})},
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
    """Calls that change the host: everything run under sudo except reads, plus the installer."""
    out = []
    for c in calls:
        if c[0] == "sudo":
            args = [a for a in c[1:] if not a.startswith("--preserve-env")]
            if args[0] in READ_ONLY_SUDO or args[:2] == ["kubectl", "get"]:
                continue
            out.append(args)
        elif c[0] == "installer":
            out.append(c)
    return out


# -- shellcheck -------------------------------------------------------------------------------


NODE_SCRIPTS = sorted(p.name for p in [*SCRIPTS.glob("node-*.sh"), *SCRIPTS.glob("k3s-*.sh")])


def test_node_scripts_are_found() -> None:
    assert "node-prepare.sh" in NODE_SCRIPTS and "k3s-install.sh" in NODE_SCRIPTS


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

FRESH_CMDLINE = (
    "console=serial0,115200 console=tty1 root=PARTUUID=1234-02 rootfstype=ext4 fsck.repair=yes rootwait"
)


@pytest.fixture
def fresh_pi(tmp_path: Path) -> Host:
    host = Host(tmp_path, {"units": {"dphys-swapfile.service": {"enabled": "enabled", "active": True}}})
    host.file("boot/firmware/cmdline.txt", FRESH_CMDLINE + "\n")
    host.file("proc/cmdline", FRESH_CMDLINE + "\n")
    host.file("proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n/var/swap\tfile\t102396\t0\t-2\n")
    host.file("etc/fstab", "proc /proc proc defaults 0 0\n/var/swap none swap sw 0 0\n")
    return host


def test_prepare_first_run_changes_then_reboots(fresh_pi: Host) -> None:
    calls, out = fresh_pi.run("node-prepare.sh")
    assert (
        fresh_pi.file("boot/firmware/cmdline.txt")
        == FRESH_CMDLINE + " cgroup_memory=1 cgroup_enable=memory\n"
    )
    assert fresh_pi.file("boot/firmware/cmdline.txt.pi-cluster.orig") == FRESH_CMDLINE + "\n"
    assert "AcceptEnv PI_CLUSTER_* INSTALL_K3S_VERSION K3S_URL K3S_TOKEN" in fresh_pi.file(
        "etc/ssh/sshd_config.d/50-pi-cluster.conf"
    )
    assert "# pi-cluster: swap off # /var/swap none swap" in fresh_pi.file("etc/fstab")
    assert fresh_pi.file("proc/swaps").count("\n") == 1
    assert fresh_pi.state["units"]["dphys-swapfile.service"] == {"enabled": "masked", "active": False}
    made = changes(calls)
    assert ["systemctl", "reload", "ssh.service"] in made
    assert ["systemctl", "mask", "--now", "dphys-swapfile.service"] in made
    assert ["swapoff", "-a"] in made
    # Reboot scheduled after the command returns; sshd refuses new sessions until then.
    reboot = made.index(["systemd-run", "--on-active=5", "--unit=pi-cluster-reboot", "systemctl", "reboot"])
    assert made[reboot + 1] == ["systemctl", "stop", "ssh.service"]
    assert out.strip().endswith("reboot=yes")


def test_prepare_second_run_after_reboot_changes_nothing(fresh_pi: Host) -> None:
    fresh_pi.run("node-prepare.sh")
    fresh_pi.file("proc/cmdline", fresh_pi.file("boot/firmware/cmdline.txt"))  # the reboot
    before = fresh_pi.files()
    calls, out = fresh_pi.run("node-prepare.sh")
    assert changes(calls) == []
    assert fresh_pi.files() == before
    assert "changes=none" in out and "reboot=no" in out
    _, out = fresh_pi.run("node-wait.sh")
    assert "ready" in out


def test_prepare_without_cmdline_change_does_not_reboot(fresh_pi: Host) -> None:
    line = FRESH_CMDLINE + " cgroup_memory=1 cgroup_enable=memory\n"
    fresh_pi.file("boot/firmware/cmdline.txt", line)
    fresh_pi.file("proc/cmdline", line)
    calls, out = fresh_pi.run("node-prepare.sh")
    made = changes(calls)
    assert not any(c[0] == "systemd-run" for c in made) and "reboot=no" in out
    assert ["swapoff", "-a"] in made  # swap still handled


def test_prepare_reboots_when_file_is_right_but_kernel_is_not(fresh_pi: Host) -> None:
    """Someone edited cmdline.txt but never rebooted: the running kernel still lacks the cgroup."""
    fresh_pi.file("boot/firmware/cmdline.txt", FRESH_CMDLINE + " cgroup_memory=1 cgroup_enable=memory\n")
    calls, out = fresh_pi.run("node-prepare.sh")
    assert "reboot=yes" in out
    assert not any(c[:2] == ["tee", str(fresh_pi.root / "boot/firmware/cmdline.txt")] for c in changes(calls))


def test_wait_refuses_a_node_that_came_back_without_the_cgroup(fresh_pi: Host) -> None:
    _, _ = fresh_pi.run("node-wait.sh", ok=False)
    assert "without cgroup_memory=1" in fresh_pi.stderr


# -- node-dns.sh ------------------------------------------------------------------------------

DNS_ENV = {
    "PI_CLUSTER_NM_CONNECTION": "Wired connection 1",
    "PI_CLUSTER_DNS_SERVERS": "1.1.1.1 8.8.8.8",
    "PI_CLUSTER_DNS_MODE": "static",
}


@pytest.fixture
def dhcp_pi(tmp_path: Path) -> Host:
    nm = {"Wired connection 1": {"ipv4.dns": "", "ipv4.ignore-auto-dns": "no", "GENERAL.DEVICES": "eth0"}}
    return Host(tmp_path, {"nm": nm})


def test_dns_first_run_sets_resolvers_second_changes_nothing(dhcp_pi: Host) -> None:
    calls, _ = dhcp_pi.run("node-dns.sh", DNS_ENV)
    assert changes(calls) == [
        [
            "nmcli",
            "connection",
            "modify",
            "Wired connection 1",
            "ipv4.dns",
            "1.1.1.1,8.8.8.8",
            "ipv4.ignore-auto-dns",
            "yes",
        ],
        ["nmcli", "device", "reapply", "eth0"],
    ]
    conn = dhcp_pi.state["nm"]["Wired connection 1"]
    assert conn["ipv4.dns"] == "1.1.1.1,8.8.8.8" and conn["ipv4.ignore-auto-dns"] == "yes"
    calls, out = dhcp_pi.run("node-dns.sh", DNS_ENV)
    assert changes(calls) == [] and "unchanged" in out


def test_dns_changed_resolvers_change_only_dns(dhcp_pi: Host) -> None:
    dhcp_pi.run("node-dns.sh", DNS_ENV)
    calls, _ = dhcp_pi.run("node-dns.sh", {**DNS_ENV, "PI_CLUSTER_DNS_SERVERS": "9.9.9.9"})
    assert changes(calls)[0][4:6] == ["ipv4.dns", "9.9.9.9"]
    assert dhcp_pi.state["nm"]["Wired connection 1"]["ipv4.dns"] == "9.9.9.9"


def test_dns_auto_mode_hands_dns_back_to_dhcp(dhcp_pi: Host) -> None:
    dhcp_pi.run("node-dns.sh", DNS_ENV)
    dhcp_pi.run("node-dns.sh", {**DNS_ENV, "PI_CLUSTER_DNS_MODE": "auto"})
    conn = dhcp_pi.state["nm"]["Wired connection 1"]
    assert conn["ipv4.dns"] == "" and conn["ipv4.ignore-auto-dns"] == "no"


def test_dns_unknown_connection_fails_clearly(dhcp_pi: Host) -> None:
    calls, _ = dhcp_pi.run("node-dns.sh", {**DNS_ENV, "PI_CLUSTER_NM_CONNECTION": "eth0"}, ok=False)
    assert "no NetworkManager connection 'eth0'" in dhcp_pi.stderr
    assert changes(calls) == []


# -- k3s-install.sh / k3s-read.sh -------------------------------------------------------------

SERVER_ENV = {
    "PI_CLUSTER_ROLE": "server",
    "INSTALL_K3S_VERSION": "v1.33.6+k3s1",
    "PI_CLUSTER_K3S_CONFIG": "disable:\n- traefik\nwrite-kubeconfig-mode: '0600'",
    "PI_CLUSTER_INSTALLER_URL": "https://get.k3s.io",
    "PI_CLUSTER_WAIT_SECONDS": "4",
}
AGENT_ENV = {
    **SERVER_ENV,
    "PI_CLUSTER_ROLE": "agent",
    "PI_CLUSTER_K3S_CONFIG": "node-ip: 192.168.1.53",
    "K3S_URL": "https://192.168.1.55:6443",
    "K3S_TOKEN": "K10secret-token::server:abc",
}


def _installs(calls: list[list[str]]) -> list[list[str]]:
    return [c for c in changes(calls) if c[0] == "installer"]


def test_server_install_then_nothing_then_restart_then_upgrade(tmp_path: Path) -> None:
    host = Host(tmp_path)
    calls, out = host.run("k3s-install.sh", SERVER_ENV)
    assert _installs(calls) == [["installer", "server"]]
    assert calls[[c[0] for c in calls].index("curl")][:4] == ["curl", "-sfL", "https://get.k3s.io", "-o"]
    assert host.file("etc/rancher/k3s/config.yaml") == SERVER_ENV["PI_CLUSTER_K3S_CONFIG"] + "\n"
    assert oct((host.root / "etc/rancher/k3s/config.yaml").stat().st_mode & 0o777) == "0o600"
    assert "installed v1.33.6+k3s1 (was none)" in out
    # The installer saw the pinned version through sudo.
    assert any("--preserve-env=INSTALL_K3S_VERSION" in c for c in calls if c[0] == "sudo")

    before = host.files()
    calls, out = host.run("k3s-install.sh", SERVER_ENV)
    assert changes(calls) == [] and host.files() == before and "unchanged" in out

    calls, _ = host.run(
        "k3s-install.sh", {**SERVER_ENV, "PI_CLUSTER_K3S_CONFIG": "disable:\n- traefik\n- servicelb"}
    )
    made = changes(calls)
    assert ["systemctl", "restart", "k3s"] in made and _installs(calls) == []

    calls, out = host.run("k3s-install.sh", {**SERVER_ENV, "INSTALL_K3S_VERSION": "v1.33.7+k3s1"})
    assert _installs(calls) == [["installer", "server"]]
    assert "was v1.33.6+k3s1" in out


def test_agent_join_gets_url_and_token_but_never_prints_it(tmp_path: Path) -> None:
    host = Host(tmp_path)
    calls, out = host.run("k3s-install.sh", AGENT_ENV)
    assert _installs(calls) == [["installer", "agent"]]
    env = [json.loads(line) for line in (host.root / ".fake/calls.jsonl").read_text().splitlines()]
    seen = next(c["env"] for c in env if c["argv"][0] == "installer")
    assert seen == {
        "INSTALL_K3S_VERSION": "v1.33.6+k3s1",
        "K3S_URL": AGENT_ENV["K3S_URL"],
        "K3S_TOKEN": AGENT_ENV["K3S_TOKEN"],
    }
    assert AGENT_ENV["K3S_TOKEN"] not in out + host.stderr
    assert AGENT_ENV["K3S_TOKEN"] not in json.dumps(host.files())  # only a digest is kept

    calls, _ = host.run("k3s-install.sh", AGENT_ENV)
    assert changes(calls) == []
    calls, _ = host.run("k3s-install.sh", {**AGENT_ENV, "K3S_TOKEN": "K10rotated::server:def"})
    assert _installs(calls) == [["installer", "agent"]]  # a new token means a rejoin


def test_server_without_files_times_out_clearly(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.run("k3s-install.sh", SERVER_ENV)
    (host.root / "var/lib/rancher/k3s/server/node-token").unlink()
    host.run("k3s-install.sh", {**SERVER_ENV, "PI_CLUSTER_K3S_CONFIG": "x: y"}, ok=False)
    assert "node-token did not appear within 4s" in host.stderr


def test_read_prints_the_file_and_refuses_unknown_names(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.run("k3s-install.sh", SERVER_ENV)
    _, out = host.run("k3s-read.sh", {"PI_CLUSTER_FILE": "token"})
    assert out.strip() == "K10fake::server:token"
    _, out = host.run("k3s-read.sh", {"PI_CLUSTER_FILE": "kubeconfig"})
    assert "https://127.0.0.1:6443" in out
    host.run("k3s-read.sh", {"PI_CLUSTER_FILE": "/etc/shadow"}, ok=False)


# -- node-labels.sh ---------------------------------------------------------------------------


@pytest.fixture
def cluster(tmp_path: Path) -> Host:
    node = {
        "labels": {"kubernetes.io/hostname": "pi3-worker-1", "other/owner": "x"},
        "annotations": {},
        "taints": [],
    }
    return Host(tmp_path, {"nodes": {"pi3-worker-1": node}})


LABEL_ENV = {
    "PI_CLUSTER_NODE": "pi3-worker-1",
    "PI_CLUSTER_LABELS": "pi-cluster/class=pi3\npi-cluster/role=dns",
    "PI_CLUSTER_TAINTS": "dedicated=dns:NoSchedule",
    "PI_CLUSTER_WAIT_SECONDS": "4",
}


LABEL = ["kubectl", "label", "node", "pi3-worker-1"]


def test_labels_first_run_second_run_and_removal(cluster: Host) -> None:
    calls, _ = cluster.run("node-labels.sh", LABEL_ENV)
    made = changes(calls)
    assert made[0] == [
        *("kubectl", "label", "node", "pi3-worker-1", "--overwrite"),
        *("pi-cluster/class=pi3", "pi-cluster/role=dns"),
    ]  # fmt: skip
    assert ["kubectl", "taint", "node", "pi3-worker-1", "dedicated=dns:NoSchedule", "--overwrite"] in made
    node = cluster.state["nodes"]["pi3-worker-1"]
    assert node["annotations"] == {
        "pi-cluster/managed-labels": "pi-cluster/class,pi-cluster/role",
        "pi-cluster/managed-taints": "dedicated:NoSchedule",
    }

    calls, _ = cluster.run("node-labels.sh", LABEL_ENV)
    assert changes(calls) == []

    # Drop a label and the taint, change a value: exactly those changes, foreign labels kept.
    calls, _ = cluster.run(
        "node-labels.sh", {**LABEL_ENV, "PI_CLUSTER_LABELS": "pi-cluster/class=pi3b", "PI_CLUSTER_TAINTS": ""}
    )
    assert changes(calls) == [
        [*LABEL, "--overwrite", "pi-cluster/class=pi3b", "pi-cluster/role-"],
        ["kubectl", "taint", "node", "pi3-worker-1", "dedicated:NoSchedule-"],
        [
            "kubectl", "annotate", "node", "pi3-worker-1", "--overwrite",
            "pi-cluster/managed-labels=pi-cluster/class", "pi-cluster/managed-taints=",
        ],
    ]  # fmt: skip
    node = cluster.state["nodes"]["pi3-worker-1"]
    assert node["labels"] == {
        "kubernetes.io/hostname": "pi3-worker-1",
        "other/owner": "x",
        "pi-cluster/class": "pi3b",
    }
    assert node["taints"] == []


def test_labels_wait_for_the_node_then_fail_clearly(cluster: Host) -> None:
    calls, _ = cluster.run("node-labels.sh", {**LABEL_ENV, "PI_CLUSTER_NODE": "pi3-worker-9"}, ok=False)
    assert "node pi3-worker-9 did not register within 4s" in cluster.stderr
    assert changes(calls) == []


# -- node-remove.sh ---------------------------------------------------------------------------


def test_drain_deletes_the_node_once(cluster: Host) -> None:
    env = {"PI_CLUSTER_STEP": "drain", "PI_CLUSTER_NODE": "pi3-worker-1"}
    calls, _ = cluster.run("node-remove.sh", env)
    assert changes(calls) == [
        [
            "kubectl",
            "drain",
            "pi3-worker-1",
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=180s",
        ],
        ["kubectl", "delete", "node", "pi3-worker-1"],
    ]
    assert cluster.state["nodes"] == {}
    calls, out = cluster.run("node-remove.sh", env)
    assert changes(calls) == [] and "nothing to drain" in out


def test_uninstall_only_when_allowed(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.run("k3s-install.sh", AGENT_ENV)
    env = {
        "PI_CLUSTER_STEP": "uninstall",
        "PI_CLUSTER_NODE": "pi3-worker-1",
        "PI_CLUSTER_UNINSTALLER": "k3s-agent-uninstall.sh",
        "PI_CLUSTER_ALLOW": "no",
    }
    calls, out = host.run("node-remove.sh", env)
    assert changes(calls) == [] and "left installed" in out
    assert (host.root / "usr/local/bin/k3s").exists()
    calls, out = host.run("node-remove.sh", {**env, "PI_CLUSTER_ALLOW": "yes"})
    assert [str(host.root / "usr/local/bin/k3s-agent-uninstall.sh")] in changes(calls)
    assert not (host.root / "usr/local/bin/k3s").exists()
    calls, out = host.run("node-remove.sh", {**env, "PI_CLUSTER_ALLOW": "yes"})
    assert changes(calls) == [] and "not installed" in out


def test_scripts_honour_an_empty_root(tmp_path: Path) -> None:
    """The test seam is also the real path: with PI_CLUSTER_ROOT unset, paths are absolute."""
    for name in ("node-prepare.sh", "k3s-install.sh", "k3s-read.sh", "node-remove.sh", "node-wait.sh"):
        text = (SCRIPTS / name).read_text()
        assert 'root="${PI_CLUSTER_ROOT:-}"' in text, name
    assert os.environ.get("PI_CLUSTER_ROOT") is None

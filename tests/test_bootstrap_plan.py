"""The rendered plan of pi-k3s: the bootstrap commands of all three nodes, ordered by their
dependencies, every connection checking the node's host key, no command fed its previous output,
secrets hidden, a new card running exactly its node's commands again, and bad node settings
refused naming the node."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
import yaml

from components.cluster import (
    agent_config,
    cluster_identifier,
    rewrite_kubeconfig,
    server_config,
)
from config.settings import SettingsError, parse
from tests.conftest import raw_config
from tools import mockrun

CMD = "command:remote:Command"
NODES = ("pi-k3s", "pi3-worker-1", "pi3-worker-2")
AGENTS = NODES[1:]
ADDRESS = {"pi-k3s": "192.168.1.55", "pi3-worker-1": "192.168.1.53", "pi3-worker-2": "192.168.1.51"}


def _cmd(run: mockrun.Result, name: str) -> mockrun.Registration:
    return run.get(CMD, f"k3s-{name}")


def _after(run: mockrun.Result, later: str, earlier: str) -> bool:
    """``later`` depends (directly or transitively) on ``earlier``."""
    deps = {r.key: r.depends_on for r in run.registrations}
    start, target = f"{CMD}::k3s-{later}", f"{CMD}::k3s-{earlier}"
    seen: set[str] = set()
    todo = list(deps[start])
    while todo:
        key = todo.pop()
        if key not in seen:
            seen.add(key)
            todo += deps.get(key, [])
    return target in seen


def host_key(name: str, kind: bytes = b"ssh-ed25519") -> str:
    """A host key line as `ssh-keyscan -t <kind> <address>` prints it (a key blob of the right
    type for the plan, not a real key; real ones come from the nodes)."""
    point = hashlib.sha256(name.encode()).digest()
    blob = len(kind).to_bytes(4, "big") + kind + len(point).to_bytes(4, "big") + point
    return f"{ADDRESS[name]} {kind.decode()} {base64.b64encode(blob).decode()}"


def _with_host_keys() -> dict[str, Any]:
    raw = raw_config()
    for node in raw["nodes"]:
        node.pop("skipHostKeyCheck", None)
        node["hostKey"] = host_key(node["name"])
    return raw


@pytest.fixture(scope="module")
def keyed() -> mockrun.Result:
    """pi-k3s with every node's host key recorded, as the guide has the owner do."""
    return mockrun.run(overrides={"pi-cluster:nodes": _with_host_keys()["nodes"]})


def test_every_node_has_its_commands(pi_k3s: mockrun.Result) -> None:
    names = {r.name for r in pi_k3s.by_type(CMD)}
    for node in NODES:
        assert {f"k3s-{node}-{s}" for s in ("prepare", "wait", "dns", "labels", "uninstall")} <= names
    assert {"k3s-pi-k3s-install", "k3s-pi-k3s-token", "k3s-pi-k3s-kubeconfig"} <= names
    for agent in AGENTS:
        assert {f"k3s-{agent}-join", f"k3s-{agent}-drain"} <= names
    for reg in pi_k3s.by_type(CMD):
        assert reg.parent == "pi-cluster:cluster:K3sCluster::k3s"


@pytest.mark.parametrize(
    ("later", "earlier"),
    [
        *[(f"{n}-wait", f"{n}-prepare") for n in NODES],
        *[(f"{n}-dns", f"{n}-wait") for n in NODES],
        ("pi-k3s-install", "pi-k3s-dns"),
        ("pi-k3s-token", "pi-k3s-install"),
        ("pi-k3s-kubeconfig", "pi-k3s-install"),
        *[(f"{a}-join", f"{a}-dns") for a in AGENTS],
        *[(f"{a}-join", "pi-k3s-token") for a in AGENTS],
        *[(f"{a}-labels", f"{a}-join") for a in AGENTS],
        ("pi-k3s-labels", "pi-k3s-install"),
        *[(f"{a}-drain", f"{a}-uninstall") for a in AGENTS],  # deleted first: drain, then uninstall
        *[(f"{a}-drain", "pi-k3s-uninstall") for a in AGENTS],  # drains before any server wipe
    ],
)
def test_commands_are_ordered_by_dependencies(pi_k3s: mockrun.Result, later: str, earlier: str) -> None:
    assert _after(pi_k3s, later, earlier)
    assert not _after(pi_k3s, earlier, later)


def test_agents_join_in_parallel(pi_k3s: mockrun.Result) -> None:
    assert not _after(pi_k3s, "pi3-worker-1-join", "pi3-worker-2-join")
    assert not _after(pi_k3s, "pi3-worker-2-join", "pi3-worker-1-join")


# -- what every command carries ---------------------------------------------------------------


def _runs_on(reg: mockrun.Registration) -> str:
    host = reg.plain_inputs["connection"]["host"]
    return next(n for n, a in ADDRESS.items() if a == host)


def test_every_command_checks_the_host_key_and_gets_no_previous_output(keyed: mockrun.Result) -> None:
    commands = keyed.by_type(CMD)
    assert len(commands) == 22  # 5 per node, install, token, kubeconfig, 2 joins, 2 drains
    for reg in commands:
        inputs = reg.plain_inputs
        node = _runs_on(reg)
        assert inputs["connection"]["hostKey"] == host_key(node).split(" ", 1)[1], reg.name
        assert inputs["addPreviousOutputInEnv"] is False, reg.name
        assert inputs["connection"]["user"] == "pi"
    identities = [i for i in keyed.invokes if i.token == "command:local:run"]
    assert sorted(i.args["environment"]["PI_CLUSTER_NODE"] for i in identities) == sorted(NODES)
    for call in identities:
        env = call.args["environment"]
        assert env["PI_CLUSTER_HOST_KEY"] == host_key(env["PI_CLUSTER_NODE"]).split(" ", 1)[1]
        assert call.args["addPreviousOutputInEnv"] is False
        assert call.args["stdin"] == "stand-in-for-sshPrivateKey"  # the key goes in on stdin only
        assert "stand-in-for-sshPrivateKey" not in str(env)


def test_the_shipped_stacks_say_why_they_skip_host_keys(pi_k3s: mockrun.Result, dev: mockrun.Result) -> None:
    """Until the owner records the keys, every node states it and gets no hostKey."""
    for run in (pi_k3s, dev):
        for reg in run.by_type(CMD):
            assert reg.plain_inputs["connection"].get("hostKey") is None
    for node in raw_config()["nodes"]:
        assert len(node["skipHostKeyCheck"]) >= 10


def _id(node: str) -> str:
    return mockrun.stand_in_machine_id(ADDRESS[node])


def test_every_command_carries_the_identity_of_its_host(pi_k3s: mockrun.Result) -> None:
    for reg in pi_k3s.by_type(CMD):
        inputs = reg.plain_inputs
        if reg.name.endswith("-prepare"):  # takes no environment: the identity is its trigger
            assert inputs["triggers"] == [_id(_runs_on(reg))] and "environment" not in inputs
            continue
        assert inputs["environment"]["PI_CLUSTER_HOST_ID"] == _id(_runs_on(reg)), reg.name
        if reg.name.endswith(("-labels", "-drain")):  # about another node: its identity too
            node = reg.name.removeprefix("k3s-").rsplit("-", 1)[0]
            assert inputs["environment"]["PI_CLUSTER_NODE_ID"] == _id(node), reg.name


def _inputs(run: mockrun.Result) -> dict[str, Any]:
    return {
        r.name: (r.plain_inputs.get("environment"), r.plain_inputs.get("triggers")) for r in run.by_type(CMD)
    }


@pytest.mark.parametrize("node", NODES)
def test_a_new_card_runs_exactly_its_nodes_commands_again(pi_k3s: mockrun.Result, node: str) -> None:
    run = mockrun.run(machine_ids={ADDRESS[node]: "0123456789abcdef0123456789abcdef"})
    before, after = _inputs(pi_k3s), _inputs(run)
    changed = {name for name in before if before[name] != after[name]}
    own = {r.name for r in pi_k3s.by_type(CMD) if _runs_on(r) == node or r.name.startswith(f"k3s-{node}-")}
    assert changed == own
    # Only node-prepare.sh is replaced; every other command is updated, which reruns its create
    # step without running the old delete step (a drain, an uninstall) on the new card.
    replaced = {name for name in before if before[name][1] != after[name][1]}
    assert replaced == {f"k3s-{node}-prepare"}


def test_the_wait_is_bounded_in_seconds_not_dials(pi_k3s: mockrun.Result) -> None:
    for node in NODES:
        wait = _cmd(pi_k3s, f"{node}-wait")
        assert wait.plain_inputs["connection"]["dialErrorLimit"] == -1
        assert wait.custom_timeouts == {"create": "300s", "update": "300s"}
        env = wait.plain_inputs["environment"]
        assert env == {
            "PI_CLUSTER_NODE": node,
            "PI_CLUSTER_PREPARED": f"stand-in stdout of k3s-{node}-prepare",
            "PI_CLUSTER_HOST_ID": _id(node),
        }
        assert wait.plain_inputs["triggers"] == [f"stand-in stdout of k3s-{node}-prepare"]
    prepare = _cmd(pi_k3s, "pi-k3s-prepare")
    assert "environment" not in prepare.plain_inputs  # sshd does not accept any yet


def test_provider_from_kubeconfig_after_labels_with_a_cluster_identifier(pi_k3s: mockrun.Result) -> None:
    provider = pi_k3s.get("pulumi:providers:kubernetes", "k3s-provider")
    assert f"{CMD}::k3s-pi-k3s-kubeconfig" in provider.depends_on
    for node in NODES:
        assert f"{CMD}::k3s-{node}-labels" in provider.depends_on
    assert mockrun.contains_secret(provider.inputs["kubeconfig"])
    assert provider.plain_inputs["clusterIdentifier"] == "pi-cluster/lab.mtgibbs.dev/pi-k3s"
    assert "kubeconfig" in pi_k3s.secret_outputs
    server = yaml.safe_load(provider.plain_inputs["kubeconfig"])["clusters"][0]["cluster"]["server"]
    assert server == "https://192.168.1.55:6443"


def test_a_k3s_upgrade_keeps_the_provider_identity(pi_k3s: mockrun.Result) -> None:
    run = mockrun.run(overrides={"pi-cluster:k3s": {**raw_config()["k3s"], "version": "v1.33.7+k3s1"}})
    provider = run.get("pulumi:providers:kubernetes", "k3s-provider")
    before = pi_k3s.get("pulumi:providers:kubernetes", "k3s-provider")
    assert provider.plain_inputs["clusterIdentifier"] == before.plain_inputs["clusterIdentifier"]


def test_secrets_are_hidden(pi_k3s: mockrun.Result) -> None:
    for what in ("token", "kubeconfig"):
        read = _cmd(pi_k3s, f"pi-k3s-{what}")
        assert read.inputs["logging"] == "none"
        assert read.plain_inputs["environment"] == {
            "PI_CLUSTER_FILE": what,
            "PI_CLUSTER_HOST_ID": _id("pi-k3s"),
        }
        assert "stdout" in read.additional_secret_outputs
    for agent in AGENTS:
        join = _cmd(pi_k3s, f"{agent}-join")
        assert mockrun.contains_secret(join.inputs["environment"])  # carries the token
        assert join.plain_inputs["environment"]["K3S_TOKEN"] == "stand-in stdout of k3s-pi-k3s-token"
        assert join.plain_inputs["environment"]["K3S_URL"] == "https://192.168.1.55:6443"
    for reg in pi_k3s.by_type(CMD):
        assert mockrun.contains_secret(reg.inputs["connection"]), reg.name  # the SSH key


def test_parameters_go_through_environment_and_scripts_are_files(pi_k3s: mockrun.Result) -> None:
    from components.cluster import SCRIPTS, script

    texts = {script(p.name) for p in SCRIPTS.glob("*.sh")}  # as the program sends them
    for reg in pi_k3s.by_type(CMD):
        for step in ("create", "delete"):
            body = reg.plain_inputs.get(step)
            if body:
                assert body in texts, (reg.name, step)
    for call in pi_k3s.invokes:
        assert call.args["command"] == script("host-identity.sh")
    install = _cmd(pi_k3s, "pi-k3s-install").plain_inputs["environment"]
    assert install["INSTALL_K3S_VERSION"] == "v1.33.6+k3s1"
    assert install["PI_CLUSTER_K3S_CONFIG"] == server_config(_settings())
    assert install["PI_CLUSTER_INSTALLER_URL"] == (
        "https://raw.githubusercontent.com/k3s-io/k3s/v1.33.6%2Bk3s1/install.sh"
    )
    assert install["PI_CLUSTER_INSTALLER_SHA256"] == raw_config()["k3s"]["installerSha256"]
    assert install["PI_CLUSTER_START_SECONDS"] == "300"


def test_every_config_yaml_names_its_node(pi_k3s: mockrun.Result) -> None:
    for node in NODES:
        step = "install" if node == "pi-k3s" else "join"
        config = yaml.safe_load(
            _cmd(pi_k3s, f"{node}-{step}").plain_inputs["environment"]["PI_CLUSTER_K3S_CONFIG"]
        )
        assert config["node-name"] == node
        assert config["node-ip"] == ADDRESS[node]
    assert agent_config(_settings().node("pi3-worker-1")).endswith("\n")  # the bytes the host gets


def test_version_change_reinstalls_server_then_agents() -> None:
    run = mockrun.run(overrides={"pi-cluster:k3s": {**raw_config()["k3s"], "version": "v1.33.7+k3s1"}})
    for name in ("pi-k3s-install", *[f"{a}-join" for a in AGENTS]):
        reg = _cmd(run, name)
        assert reg.plain_inputs["environment"]["INSTALL_K3S_VERSION"] == "v1.33.7+k3s1"
        assert reg.plain_inputs["triggers"] == ["v1.33.7+k3s1"]
        assert "delete" not in reg.plain_inputs  # a replacement never uninstalls
    for agent in AGENTS:
        assert _after(run, f"{agent}-join", "pi-k3s-install")


def test_dns_and_removal_settings_reach_the_commands() -> None:
    raw = raw_config()
    raw["nodes"][2]["staticDns"] = False
    raw["nodes"][1]["dnsResolvers"] = ["9.9.9.9"]
    raw["k3s"]["allowUninstall"] = True
    run = mockrun.run(overrides={"pi-cluster:nodes": raw["nodes"], "pi-cluster:k3s": raw["k3s"]})
    assert _cmd(run, "pi3-worker-2-dns").plain_inputs["environment"]["PI_CLUSTER_DNS_MODE"] == "auto"
    dns = _cmd(run, "pi3-worker-1-dns").plain_inputs
    assert dns["environment"]["PI_CLUSTER_DNS_SERVERS"] == "9.9.9.9"
    assert dns["environment"]["PI_CLUSTER_NM_CONNECTION"] == ""  # found from the device
    assert dns["environment"]["PI_CLUSTER_NM_DEVICE"] == "eth0"
    for node in NODES:
        assert "delete" not in _cmd(run, f"{node}-dns").plain_inputs  # removal never needs the node
    agent_guard = _cmd(run, "pi3-worker-1-uninstall").plain_inputs
    assert agent_guard["environment"]["PI_CLUSTER_ALLOW"] == "yes" and "delete" in agent_guard
    server_guard = _cmd(run, "pi-k3s-uninstall").plain_inputs
    assert server_guard["environment"]["PI_CLUSTER_ALLOW"] == "no" and "delete" not in server_guard


def test_removing_a_dead_agent_needs_only_the_server(pi_k3s: mockrun.Result) -> None:
    raw = raw_config()
    # The secondary Pi-hole lives on pi3-worker-2: it goes with the node.
    dns = {**raw["dns"], "instances": [i for i in raw["dns"]["instances"] if i["node"] != "pi3-worker-2"]}
    run = mockrun.run(overrides={"pi-cluster:nodes": raw["nodes"][:2], "pi-cluster:dns": dns})
    gone = {r.name for r in pi_k3s.by_type(CMD)} - {r.name for r in run.by_type(CMD)}
    assert {"k3s-pi3-worker-2-drain", "k3s-pi3-worker-2-uninstall", "k3s-pi3-worker-2-join"} <= gone
    # Of what is deleted, only the drain has a delete step, and it runs on the server.
    with_delete = [n for n in gone if "delete" in pi_k3s.get(CMD, n).plain_inputs]
    assert with_delete == ["k3s-pi3-worker-2-drain"]
    drain = _cmd(pi_k3s, "pi3-worker-2-drain").plain_inputs
    assert "create" not in drain and drain["environment"]["PI_CLUSTER_STEP"] == "drain"
    assert drain["connection"]["host"] == "192.168.1.55"
    assert drain["environment"]["PI_CLUSTER_NODE_ID"] == mockrun.stand_in_machine_id("192.168.1.51")
    assert drain["environment"]["PI_CLUSTER_WAIT_SECONDS"] == "180"


def test_labels_environment(pi_k3s: mockrun.Result) -> None:
    env = _cmd(pi_k3s, "pi3-worker-1-labels").plain_inputs["environment"]
    assert env["PI_CLUSTER_NODE"] == "pi3-worker-1"
    assert env["PI_CLUSTER_LABELS"] == "pi-cluster/class=pi3"


def test_kubeconfig_server_is_rewritten_by_parsing() -> None:
    raw = mockrun.K3S_KUBECONFIG
    out = yaml.safe_load(rewrite_kubeconfig(raw, "192.168.1.55"))
    original = yaml.safe_load(raw)
    assert out["clusters"][0]["cluster"]["server"] == "https://192.168.1.55:6443"
    original["clusters"][0]["cluster"]["server"] = "https://192.168.1.55:6443"
    assert out == original  # nothing else touched
    indented = raw.replace("    server: https://127.0.0.1:6443", "    server:   'https://127.0.0.1:6443'")
    assert "127.0.0.1" not in rewrite_kubeconfig(indented, "192.168.1.55")  # a string replace misses this
    with pytest.raises(ValueError, match="no clusters"):
        rewrite_kubeconfig("error: permission denied\n", "192.168.1.55")


def test_cluster_identifier_differs_between_the_stacks(pi_k3s: mockrun.Result, dev: mockrun.Result) -> None:
    ids = {
        run.get("pulumi:providers:kubernetes", "k3s-provider").plain_inputs["clusterIdentifier"]
        for run in (pi_k3s, dev)
    }
    assert ids == {cluster_identifier(_settings()), "pi-cluster/dev.lab.mtgibbs.dev/pi-dev"}


# -- bad input names the node -------------------------------------------------------------


def _settings() -> Any:
    return parse(raw_config())


def _edit(mutate: Any) -> str:
    raw = raw_config()
    mutate(raw)
    with pytest.raises(SettingsError) as info:
        parse(raw)
    return str(info.value)


def _keyed(i: int, value: str) -> Any:
    def mutate(r: dict[str, Any]) -> None:
        r["nodes"][i].pop("skipHostKeyCheck")
        r["nodes"][i]["hostKey"] = value

    return mutate


BAD = [
    (
        "no-server",
        lambda r: r["nodes"][0].update(role="agent"),
        ["found 0", "pi-k3s, pi3-worker-1, pi3-worker-2"],
    ),
    ("two-servers", lambda r: r["nodes"][2].update(role="server"), ["found 2 (pi-k3s, pi3-worker-2)"]),
    (
        "agent-without-address",
        lambda r: r["nodes"][2].pop("address"),
        ["pi-cluster:nodes[2].address: required key is missing (node 'pi3-worker-2')"],
    ),
    (
        "bad-label-key",
        lambda r: r["nodes"][1]["labels"].update({"pi-cluster/-class": "x"}),
        ["'pi-cluster/-class' is not a valid Kubernetes label key", "(node 'pi3-worker-1')"],
    ),
    (
        "resolver-not-ip",
        lambda r: r["nodes"][1].update(dnsResolvers=["1.1.1.1", "dns.google"]),
        [
            "pi-cluster:nodes[1].dnsResolvers[1]",
            "'dns.google' is not an IPv4 address",
            "(node 'pi3-worker-1')",
        ],
    ),
    (
        "no-resolvers",
        lambda r: r["nodes"][0].update(dnsResolvers=[]),
        ["nodes[0].dnsResolvers", "(node 'pi-k3s')"],
    ),
    (
        "connection-with-quote",
        lambda r: r["nodes"][0].update(nmConnection="it's"),
        ["nodes[0].nmConnection", "(node 'pi-k3s')"],
    ),
    (
        "bad-device",
        lambda r: r["nodes"][0].update(nmDevice="eth 0"),
        ["nodes[0].nmDevice", "(node 'pi-k3s')"],
    ),
    (
        "no-host-key",
        lambda r: r["nodes"][1].pop("skipHostKeyCheck"),
        [
            "pi-cluster:nodes[1].hostKey: required (node 'pi3-worker-1')",
            "`ssh-keyscan -t ed25519 192.168.1.53`",
            "skipHostKeyCheck",
        ],
    ),
    (
        "host-key-and-skip",
        lambda r: r["nodes"][0].update(hostKey=host_key("pi-k3s")),
        ["pi-cluster:nodes[0].skipHostKeyCheck: node 'pi-k3s' sets hostKey too"],
    ),
    (
        "host-key-of-another-node",
        _keyed(2, host_key("pi3-worker-1")),
        ["pi-cluster:nodes[2].hostKey", "names host '192.168.1.53', not the node's address '192.168.1.51'"],
    ),
    (
        "host-key-not-a-key",
        _keyed(0, "192.168.1.55 ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAAAgQ=="),
        ["pi-cluster:nodes[0].hostKey", "not a ssh-ed25519 key", "(node 'pi-k3s')"],
    ),
    ("host-key-garbage", _keyed(0, "SHA256:abc"), ["pi-cluster:nodes[0].hostKey", "what ssh-keyscan prints"]),
    (
        "host-key-rsa",
        _keyed(0, host_key("pi-k3s", b"ssh-rsa")),
        [
            "pi-cluster:nodes[0].hostKey",
            "is an ssh-rsa key",
            "OpenSSH 8.8",
            "`ssh-keyscan -t ed25519 192.168.1.55`",
            "(node 'pi-k3s')",
        ],
    ),
    (
        "empty-skip-reason",
        lambda r: r["nodes"][0].update(skipHostKeyCheck="no"),
        ["nodes[0].skipHostKeyCheck"],
    ),
    (
        "managed-server-flag",
        lambda r: r["k3s"].update(extraServerConfig={"disable": ["servicelb"]}),
        ["pi-cluster:k3s.extraServerConfig.disable", "cannot be overridden"],
    ),
    (
        "node-name-is-managed",
        lambda r: r["k3s"].update(extraServerConfig={"node-name": "other"}),
        ["pi-cluster:k3s.extraServerConfig.node-name", "cannot be overridden"],
    ),
    (
        "http-installer",
        lambda r: r["k3s"].update(installerUrl="http://get.k3s.io"),
        ["pi-cluster:k3s.installerUrl"],
    ),
    ("no-installer-digest", lambda r: r["k3s"].pop("installerSha256"), ["pi-cluster:k3s.installerSha256"]),
    (
        "short-installer-digest",
        lambda r: r["k3s"].update(installerSha256="9ca7"),
        ["pi-cluster:k3s.installerSha256"],
    ),
    (
        "short-reboot",
        lambda r: r["k3s"].update(rebootTimeoutSeconds=5),
        ["pi-cluster:k3s.rebootTimeoutSeconds"],
    ),
    ("short-start", lambda r: r["k3s"].update(startTimeoutSeconds=1), ["pi-cluster:k3s.startTimeoutSeconds"]),
    (
        "endless-drain",
        lambda r: r["k3s"].update(drainTimeoutSeconds=0),
        ["pi-cluster:k3s.drainTimeoutSeconds"],
    ),
]


@pytest.mark.parametrize(("mutate", "fragments"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_node_settings_are_refused_naming_the_node(mutate: Any, fragments: list[str]) -> None:
    message = _edit(mutate)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"


def test_bad_node_settings_register_nothing() -> None:
    raw = raw_config()
    raw["nodes"][1].pop("skipHostKeyCheck")
    with pytest.raises(SettingsError):
        mockrun.run(overrides={"pi-cluster:nodes": raw["nodes"]})


def test_good_node_settings_pass() -> None:
    raw = _with_host_keys()
    raw["nodes"][1].update(dnsResolvers=["9.9.9.9"], nmConnection="preconfigured", staticDns=False)
    raw["nodes"][2]["hostKey"] = (
        host_key("pi3-worker-2").split(" ", 1)[1] + " root@pi3-worker-2"
    )  # a .pub line
    raw["k3s"].update(extraServerConfig={"kubelet-arg": ["max-pods=60"]}, allowUninstall=True)
    s = parse(raw)
    assert s.node("pi3-worker-1").dns_resolvers == ["9.9.9.9"]
    assert s.node("pi-k3s").dns_resolvers == ["1.1.1.1", "8.8.8.8"]
    assert s.node("pi-k3s").nm_connection is None and s.node("pi-k3s").nm_device == "eth0"
    assert s.node("pi3-worker-2").host_key_line == host_key("pi3-worker-2").split(" ", 1)[1]
    assert "kubelet-arg:\n- max-pods=60" in server_config(s)
    assert s.k3s.installer().endswith("/v1.33.6%2Bk3s1/install.sh")


def test_host_keys_pulumi_command_can_check_pass_and_rsa_does_not() -> None:
    """ed25519 and ECDSA keys are accepted; the same node with its RSA key is refused."""
    for kind in (b"ssh-ed25519", b"ecdsa-sha2-nistp256"):
        raw = _with_host_keys()
        raw["nodes"][0]["hostKey"] = host_key("pi-k3s", kind)
        assert parse(raw).node("pi-k3s").host_key_line == host_key("pi-k3s", kind).split(" ", 1)[1]
    raw = _with_host_keys()
    raw["nodes"][0]["hostKey"] = host_key("pi-k3s", b"ssh-rsa")
    with pytest.raises(SettingsError, match=r"pi-cluster:nodes\[0\]\.hostKey: .* is an ssh-rsa key"):
        parse(raw)


def test_labels_wait_for_the_install_and_an_agents_for_its_join(pi_k3s: mockrun.Result) -> None:
    """Exactly these dependencies, each once (the server's install is its join)."""
    install = f"{CMD}::k3s-pi-k3s-install"
    assert _cmd(pi_k3s, "pi-k3s-labels").depends_on == [install]
    for agent in AGENTS:
        assert sorted(_cmd(pi_k3s, f"{agent}-labels").depends_on) == sorted(
            [f"{CMD}::k3s-{agent}-join", install]
        )

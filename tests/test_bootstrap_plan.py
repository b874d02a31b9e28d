"""The rendered plan of pi-k3s: the bootstrap commands of all three nodes, ordered by their
dependencies, secrets hidden, and bad node settings refused naming the node."""

from __future__ import annotations

from typing import Any

import pytest

from components.cluster import reboot_dial_limit, rewrite_kubeconfig, server_config
from config.settings import SettingsError, parse
from tests.conftest import raw_config
from tools import mockrun

CMD = "command:remote:Command"
NODES = ("pi-k3s", "pi3-worker-1", "pi3-worker-2")
AGENTS = NODES[1:]


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


def test_provider_from_kubeconfig_after_labels(pi_k3s: mockrun.Result) -> None:
    provider = pi_k3s.get("pulumi:providers:kubernetes", "k3s-provider")
    assert f"{CMD}::k3s-pi-k3s-kubeconfig" in provider.depends_on
    for node in NODES:
        assert f"{CMD}::k3s-{node}-labels" in provider.depends_on
    assert mockrun.contains_secret(provider.inputs["kubeconfig"])
    assert "kubeconfig" in pi_k3s.secret_outputs


def test_secrets_are_hidden(pi_k3s: mockrun.Result) -> None:
    for what in ("token", "kubeconfig"):
        read = _cmd(pi_k3s, f"pi-k3s-{what}")
        assert read.inputs["logging"] == "none"
        assert read.plain_inputs["environment"] == {"PI_CLUSTER_FILE": what}
    for agent in AGENTS:
        join = _cmd(pi_k3s, f"{agent}-join")
        assert mockrun.contains_secret(join.inputs["environment"])  # carries the token
        assert join.plain_inputs["environment"]["K3S_TOKEN"] == "stand-in stdout of k3s-pi-k3s-token"
        assert join.plain_inputs["environment"]["K3S_URL"] == "https://192.168.1.55:6443"
    for reg in pi_k3s.by_type(CMD):
        assert mockrun.contains_secret(reg.inputs["connection"]), reg.name  # the SSH key


def test_token_and_kubeconfig_stdout_are_secret_outputs() -> None:
    """additional_secret_outputs is an engine option the mock monitor cannot see: check the code."""
    import inspect

    from components import cluster

    source = inspect.getsource(cluster.K3sCluster._read)
    assert 'additional_secret_outputs=["stdout"]' in source and "Logging.NONE" in source


def test_parameters_go_through_environment_and_scripts_are_files(pi_k3s: mockrun.Result) -> None:
    from components.cluster import SCRIPTS

    texts = {p.read_text() for p in SCRIPTS.glob("*.sh")}
    for reg in pi_k3s.by_type(CMD):
        for step in ("create", "delete"):
            body = reg.plain_inputs.get(step)
            if body:
                assert body in texts or body.split("\n", 1)[1] in texts, (reg.name, step)
    install = _cmd(pi_k3s, "pi-k3s-install").plain_inputs["environment"]
    assert install["INSTALL_K3S_VERSION"] == "v1.33.6+k3s1"
    assert install["PI_CLUSTER_K3S_CONFIG"] == server_config(_settings())


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
    names = {r.name for r in run.by_type(CMD)}
    assert "k3s-pi3-worker-2-dns" not in names
    dns = _cmd(run, "pi3-worker-1-dns").plain_inputs
    assert dns["environment"]["PI_CLUSTER_DNS_SERVERS"] == "9.9.9.9"
    assert dns["environment"]["PI_CLUSTER_NM_CONNECTION"] == "Wired connection 1"
    assert dns["delete"].startswith("export PI_CLUSTER_DNS_MODE=auto\n")
    assert _cmd(run, "pi3-worker-1-uninstall").plain_inputs["environment"]["PI_CLUSTER_ALLOW"] == "yes"
    assert _cmd(run, "pi-k3s-uninstall").plain_inputs["environment"]["PI_CLUSTER_ALLOW"] == "no"


def test_removing_an_agent_leaves_only_its_removal_to_the_engine(pi_k3s: mockrun.Result) -> None:
    raw = raw_config()
    # The secondary Pi-hole lives on pi3-worker-2: it goes with the node.
    dns = {**raw["dns"], "instances": [i for i in raw["dns"]["instances"] if i["node"] != "pi3-worker-2"]}
    run = mockrun.run(overrides={"pi-cluster:nodes": raw["nodes"][:2], "pi-cluster:dns": dns})
    gone = {r.name for r in pi_k3s.by_type(CMD)} - {r.name for r in run.by_type(CMD)}
    assert {"k3s-pi3-worker-2-drain", "k3s-pi3-worker-2-uninstall", "k3s-pi3-worker-2-join"} <= gone
    drain = _cmd(pi_k3s, "pi3-worker-2-drain").plain_inputs
    assert "create" not in drain and drain["environment"]["PI_CLUSTER_STEP"] == "drain"
    assert drain["connection"]["host"] == "192.168.1.55"  # kubectl runs on the server


def test_labels_environment(pi_k3s: mockrun.Result) -> None:
    env = _cmd(pi_k3s, "pi3-worker-1-labels").plain_inputs["environment"]
    assert env["PI_CLUSTER_NODE"] == "pi3-worker-1"
    assert env["PI_CLUSTER_LABELS"] == "pi-cluster/class=pi3"


def test_kubeconfig_rewrite_and_reboot_bound() -> None:
    raw = "clusters:\n- cluster:\n    server: https://127.0.0.1:6443\n"
    assert "https://192.168.1.55:6443" in rewrite_kubeconfig(raw, "192.168.1.55")
    assert "127.0.0.1" not in rewrite_kubeconfig(raw, "192.168.1.55")
    assert reboot_dial_limit(300) == 30 and reboot_dial_limit(5) == 1


# -- bad input names the node -------------------------------------------------------------


def _settings() -> Any:
    return parse(raw_config())


def _edit(mutate: Any) -> str:
    raw = raw_config()
    mutate(raw)
    with pytest.raises(SettingsError) as info:
        parse(raw)
    return str(info.value)


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
        "managed-server-flag",
        lambda r: r["k3s"].update(extraServerConfig={"disable": ["servicelb"]}),
        ["pi-cluster:k3s.extraServerConfig.disable", "cannot be overridden"],
    ),
    (
        "http-installer",
        lambda r: r["k3s"].update(installerUrl="http://get.k3s.io"),
        ["pi-cluster:k3s.installerUrl"],
    ),
    (
        "short-reboot",
        lambda r: r["k3s"].update(rebootTimeoutSeconds=5),
        ["pi-cluster:k3s.rebootTimeoutSeconds"],
    ),
]


@pytest.mark.parametrize(("mutate", "fragments"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_node_settings_are_refused_naming_the_node(mutate: Any, fragments: list[str]) -> None:
    message = _edit(mutate)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"


def test_good_node_settings_pass() -> None:
    raw = raw_config()
    raw["nodes"][1].update(dnsResolvers=["9.9.9.9"], nmConnection="preconfigured", staticDns=False)
    raw["k3s"].update(extraServerConfig={"kubelet-arg": ["max-pods=60"]}, allowUninstall=True)
    s = parse(raw)
    assert s.node("pi3-worker-1").dns_resolvers == ["9.9.9.9"]
    assert s.node("pi-k3s").dns_resolvers == ["1.1.1.1", "8.8.8.8"]
    assert s.node("pi-k3s").nm_connection == "Wired connection 1"
    assert "kubelet-arg:\n- max-pods=60" in server_config(s)

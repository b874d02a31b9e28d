"""DnsStack: what the program registers for Pi-hole, Unbound, the exporter and the list Job."""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.dns import (
    SEED_DIR,
    UNBOUND_IANA,
    UNBOUND_IMAGE_TOOLS,
    UNBOUND_ROOT,
    content_hash,
    lists_data,
    unbound_conf,
)
from config.settings import MiB, Settings, SettingsError, parse
from config.types import memory_bytes
from tests.conftest import raw_config, require_tool
from tools import mockrun

NS = "pihole"


def _container(obj: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in obj["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


# --- unbound.conf, checked by Unbound's own tool --------------------------------------------------


# madnuttah/unbound 1.26.0-0 as built by unbound/release.Dockerfile at that tag: iana.d holds
# root.hints and root.zone (their .md5/.sig removed), no root.key. The hints are data the image
# downloads from InterNIC; two records are enough for the tools here.
IMAGE_ROOT_HINTS = ".  3600000  NS  A.ROOT-SERVERS.NET.\nA.ROOT-SERVERS.NET.  3600000  A  198.41.0.4\n"
# Unbound's built-in anchor (unbound-anchor -l): the root KSK-2017 DS.
BUILTIN_ANCHOR = ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D"


def _image(tmp_path: Path) -> Path:
    """The image's /usr/local/unbound, and a bin/ with only the tools the image ships."""
    root = tmp_path / "image" / UNBOUND_ROOT.lstrip("/")
    (root / "iana.d").mkdir(parents=True)
    (root / "iana.d" / "root.hints").write_text(IMAGE_ROOT_HINTS)
    (root / "iana.d" / "root.zone").write_text(
        ". 86400 IN SOA a.root-servers.net. nstld.verisign-grs.com. 1 2 3 4 5\n"
    )
    busybox = require_tool("busybox")
    applets = set(
        subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    )
    bin_dir = tmp_path / "image-bin"
    bin_dir.mkdir()
    for tool in set(UNBOUND_IMAGE_TOOLS) & applets:
        (bin_dir / tool).symlink_to(busybox)
    return root


def _init_command(result: mockrun.Result) -> list[str]:
    pod = result.manifest("Deployment", "unbound", NS)["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert {"name": "iana", "mountPath": SEED_DIR} in init["volumeMounts"]
    return init["command"]


def _run_init(command: list[str], tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The init container's command under the image's sh, the emptyDir at tmp_path/volume."""
    image = _image(tmp_path)
    volume = tmp_path / "volume"
    volume.mkdir()
    assert command[:2] == ["sh", "-c"]
    script = command[2].replace(UNBOUND_ROOT, str(image)).replace(f"{SEED_DIR}/", f"{volume}/")
    env = {"PATH": str(tmp_path / "image-bin")}
    run = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, check=False)
    return run, volume


def _anchor_offline(key: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """What the image's unbound.sh runs at start (unbound-anchor -a iana.d/root.key), with
    Debian's unbound-anchor in a network namespace of its own: it can reach nothing, and its
    resolver and certificate server are loopback (-f, -u), so it falls back to its built-in
    anchor exactly as on a first start that cannot update."""
    anchor = require_tool("unbound-anchor")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\n")
    isolate = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--net"]
    return subprocess.run(
        [*isolate, anchor, "-a", str(key), "-f", str(resolv), "-u", "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _first_start(result: mockrun.Result, conf: str, tmp_path: Path) -> Path:
    """Init container, then the main container's anchor step; the conf as the container sees it."""
    run, volume = _run_init(_init_command(result), tmp_path)
    assert run.returncode == 0, run.stderr
    _anchor_offline(volume / "root.key", tmp_path)
    path = tmp_path / "unbound.conf"
    path.write_text(
        conf.replace(UNBOUND_IANA, str(volume)).replace(
            UNBOUND_ROOT, str(tmp_path / "image" / UNBOUND_ROOT.lstrip("/"))
        )
    )
    return path


def test_unbound_init_copies_what_the_image_ships(pi_k3s: mockrun.Result, tmp_path: Path) -> None:
    """Under the image's sh and tools, against iana.d as the pinned tag ships it (no root.key)."""
    run, volume = _run_init(_init_command(pi_k3s), tmp_path)
    assert run.returncode == 0, run.stderr
    image = tmp_path / "image" / UNBOUND_ROOT.lstrip("/") / "iana.d"
    assert (volume / "root.hints").read_text() == (image / "root.hints").read_text()
    assert not (volume / "root.key").exists()


def test_init_check_fails_for_a_command_that_reads_root_key(tmp_path: Path) -> None:
    """The old init command (sed of iana.d/root.key) fails on the image's layout."""
    old = [
        "sh",
        "-c",
        f"sed -n p {UNBOUND_IANA}/root.key > {SEED_DIR}/root.key"
        f" && sed -n p {UNBOUND_IANA}/root.hints > {SEED_DIR}/root.hints",
    ]
    run, _ = _run_init(old, tmp_path)
    assert run.returncode != 0 and "root.key" in run.stderr
    no_cp = ["sh", "-c", f"cp {UNBOUND_IANA}/root.hints {SEED_DIR}/root.hints"]
    assert _run_init(no_cp, tmp_path / "cp")[0].returncode != 0  # the image has no cp


def test_unbound_first_start_writes_the_trust_anchor(pi_k3s: mockrun.Result, tmp_path: Path) -> None:
    """After the init container, root.key is missing and Unbound's own check refuses the conf;
    the start script's unbound-anchor writes it into the writable iana.d and the check passes."""
    tool = require_tool("unbound-checkconf")
    conf = pi_k3s.manifest("ConfigMap", "unbound-config", NS)["data"]["unbound.conf"]
    run, volume = _run_init(_init_command(pi_k3s), tmp_path)
    assert run.returncode == 0, run.stderr
    path = tmp_path / "unbound.conf"
    image_root = str(tmp_path / "image" / UNBOUND_ROOT.lstrip("/"))
    path.write_text(conf.replace(UNBOUND_IANA, str(volume)).replace(UNBOUND_ROOT, image_root))
    before = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
    assert before.returncode != 0 and "root.key" in before.stderr
    anchor = _anchor_offline(volume / "root.key", tmp_path)
    assert anchor.returncode == 1, anchor.stderr  # unbound-anchor(8): 1 = the built-in anchor was used
    assert (volume / "root.key").read_text().strip() == BUILTIN_ANCHOR
    after = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
    assert after.returncode == 0, after.stdout + after.stderr


def _option(tool: str, conf: Path, option: str) -> list[str]:
    out = subprocess.run([tool, "-o", option, str(conf)], capture_output=True, text=True, check=True)
    return out.stdout.split("\n")[:-1]


def test_rendered_unbound_conf_passes_checkconf(pi_k3s: mockrun.Result, tmp_path: Path) -> None:
    tool = require_tool("unbound-checkconf")
    conf = pi_k3s.manifest("ConfigMap", "unbound-config", NS)["data"]["unbound.conf"]
    path = _first_start(pi_k3s, conf, tmp_path)
    result = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no errors" in result.stdout


def test_unbound_effective_values(pi_k3s: mockrun.Result, settings: Settings, tmp_path: Path) -> None:
    tool = require_tool("unbound-checkconf")
    conf = pi_k3s.manifest("ConfigMap", "unbound-config", NS)["data"]["unbound.conf"]
    path = _first_start(pi_k3s, conf, tmp_path)
    expect = {
        "port": ["5335"],
        "do-ip6": ["no"],
        "do-ip4": ["yes"],
        "do-udp": ["yes"],
        "do-tcp": ["yes"],
        "hide-identity": ["yes"],
        "hide-version": ["yes"],
        "harden-glue": ["yes"],
        "harden-dnssec-stripped": ["yes"],
        "harden-referral-path": ["no"],  # experimental (unbound.conf(5)); the default
        "qname-minimisation": ["yes"],
        "prefetch": ["yes"],
        "prefetch-key": ["yes"],
        "aggressive-nsec": ["yes"],
        "serve-expired": ["yes"],
        "deny-any": ["yes"],
        "edns-buffer-size": ["1232"],
        "num-threads": ["2"],
        "module-config": ["validator iterator"],
        "root-hints": [f"{tmp_path}/volume/root.hints"],
        "auto-trust-anchor-file": [f"{tmp_path}/volume/root.key"],
    }
    for option, value in expect.items():
        assert _option(tool, path, option) == value, option
    acl = set(_option(tool, path, "access-control"))
    assert acl == {
        "0.0.0.0/0 refuse",
        "127.0.0.0/8 allow",
        "10.42.0.0/16 allow",
        "10.43.0.0/16 allow",
        "192.168.1.0/24 allow",
    }
    private = set(_option(tool, path, "private-address"))
    assert {
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "fd00::/8",
        "fe80::/10",
    } <= private
    # no forwarder anywhere: recursive from the root
    assert "forward-zone" not in conf and "forward-addr" not in conf


def test_unbound_caches_fit_the_memory_limit(
    pi_k3s: mockrun.Result, settings: Settings, tmp_path: Path
) -> None:
    tool = require_tool("unbound-checkconf")
    conf = pi_k3s.manifest("ConfigMap", "unbound-config", NS)["data"]["unbound.conf"]
    path = _first_start(pi_k3s, conf, tmp_path)
    u = settings.dns.unbound
    caches = sum(
        int(_option(tool, path, o)[0])
        for o in ("msg-cache-size", "rrset-cache-size", "key-cache-size", "neg-cache-size")
    )
    threads = int(_option(tool, path, "num-threads")[0])
    fixed = memory_bytes(u.base_overhead) + threads * memory_bytes(u.thread_overhead)
    limit = memory_bytes(u.resources.memory_limit)
    assert fixed + caches * u.cache_overhead_factor <= limit
    assert caches * u.cache_overhead_factor >= (limit - fixed) * 0.9  # and uses what it has
    assert int(_option(tool, path, "rrset-cache-size")[0]) == 2 * int(
        _option(tool, path, "msg-cache-size")[0]
    )
    assert int(_option(tool, path, "msg-cache-slabs")[0]) >= threads


@pytest.mark.parametrize(("limit", "threads"), [("128Mi", 1), ("256Mi", 4), ("512Mi", 2)])
def test_unbound_sizing_scales_with_the_limit(
    limit: str, threads: int, pi_k3s: mockrun.Result, tmp_path: Path
) -> None:
    tool = require_tool("unbound-checkconf")
    raw = raw_config()
    raw["dns"]["unbound"]["resources"]["memoryLimit"] = limit
    raw["dns"]["unbound"]["threads"] = threads
    s = parse(raw)
    z = s.dns.unbound.sizing()
    assert z.estimated_peak <= memory_bytes(limit)
    path = _first_start(pi_k3s, unbound_conf(s), tmp_path)
    assert subprocess.run([tool, str(path)], capture_output=True, check=False).returncode == 0
    assert int(_option(tool, path, "msg-cache-size")[0]) == z.msg_cache
    slabs = int(_option(tool, path, "msg-cache-slabs")[0])
    assert slabs >= threads and slabs & (slabs - 1) == 0


def test_unbound_deployment(pi_k3s: mockrun.Result, settings: Settings) -> None:
    d = pi_k3s.manifest("Deployment", "unbound", NS)
    pod = d["spec"]["template"]["spec"]
    if settings.dns.unbound_count == 1:
        assert pod["nodeSelector"] == {"kubernetes.io/hostname": "pi3-worker-1"}
    else:  # spread one per node (tests/test_dns_ha.py)
        assert "nodeSelector" not in pod and pod["affinity"]["podAntiAffinity"]
    c = _container(d, "unbound")
    assert c["image"] == settings.dns.unbound.image
    assert c["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["resources"]["limits"]["memory"] == "256Mi"
    assert {(p["containerPort"], p["protocol"]) for p in c["ports"]} == {(5335, "UDP"), (5335, "TCP")}
    # probes resolve through Unbound itself, not just a port check
    assert "drill" in " ".join(c["readinessProbe"]["exec"]["command"])
    assert "-p 5335" in " ".join(c["readinessProbe"]["exec"]["command"])
    assert "drill" in " ".join(c["livenessProbe"]["exec"]["command"])
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {f"{UNBOUND_ROOT}/unbound.conf", f"{UNBOUND_ROOT}/iana.d"} <= mounts
    # a new unbound.conf rolls the pods
    assert d["spec"]["template"]["metadata"]["annotations"]["pi-cluster/config-sha256"]


def test_unbound_limit_fits_a_pi3(settings: Settings) -> None:
    node = settings.node(settings.placement.unbound)
    assert node.hardware.model == "pi3"
    limit = memory_bytes(settings.dns.unbound.resources.memory_limit)
    assert limit <= memory_bytes(node.hardware.memory) // 2


def test_unbound_service(pi_k3s: mockrun.Result) -> None:
    svc = pi_k3s.manifest("Service", "unbound", NS)
    assert svc["spec"]["type"] == "ClusterIP"
    assert {(p["port"], p["protocol"]) for p in svc["spec"]["ports"]} == {(5335, "UDP"), (5335, "TCP")}


# --- Pi-hole ---------------------------------------------------------------------------------------


def test_pihole_upstream_is_an_output_of_the_unbound_service(pi_k3s: mockrun.Result) -> None:
    reg = pi_k3s.get("kubernetes:apps/v1:Deployment", "dns-pihole-deployment")
    assert "kubernetes:core/v1:Service::dns-unbound-service" in reg.depends_on
    env = _env(_container(reg.plain_inputs, "pihole"))
    assert env["FTLCONF_dns_upstreams"] == f"{mockrun.fake_cluster_ip('pihole/unbound')}#5335"


def test_pihole_deployment(pi_k3s: mockrun.Result, settings: Settings) -> None:
    d = pi_k3s.manifest("Deployment", "pihole", NS)
    pod = d["spec"]["template"]["spec"]
    assert d["spec"]["strategy"] == {"type": "Recreate"}
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": settings.placement.pihole}
    c = _container(d, "pihole")
    assert {(p["containerPort"], p["protocol"]) for p in c["ports"]} == {
        (53, "UDP"),
        (53, "TCP"),
        (80, "TCP"),
    }
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]}
    assert claims == {"pihole-etc"}
    # nothing at /etc/dnsmasq.d: FTL reads it only with misc.etc_dnsmasq_d, which stays off
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/etc/pihole"}
    assert "FTLCONF_misc_etc_dnsmasq_d" not in _env(c)
    # readiness answers a DNS query
    assert "dig -p 53" in " ".join(c["readinessProbe"]["exec"]["command"])


def test_pihole_ftlconf(pi_k3s: mockrun.Result, settings: Settings) -> None:
    env = _env(_container(pi_k3s.manifest("Deployment", "pihole", NS), "pihole"))
    assert env["FTLCONF_dns_dnssec"] == "false"
    assert env["FTLCONF_misc_dnsmasq_lines"] == f"address=/{settings.domain}/{settings.server.address}"
    assert env["TZ"] == settings.timezone
    assert env["FTLCONF_webserver_api_password"] == {
        "secretKeyRef": {"name": "pihole-secret", "key": "password"}
    }
    assert env["FTLCONF_webserver_port"] == "80"  # 443 on the node is the ingress controller's
    # FTL redirects / to /admin/ only for Host == webserver.domain: the route's host
    assert f"https://{env['FTLCONF_webserver_domain']}" == pi_k3s.outputs["urls"]["pihole"]
    # the v5 variables Pi-hole v6 ignores are not used
    assert not {"WEBPASSWORD", "PIHOLE_DNS_", "DNSSEC"} & set(env)


def test_pihole_capabilities_only_what_it_needs(pi_k3s: mockrun.Result) -> None:
    c = _container(pi_k3s.manifest("Deployment", "pihole", NS), "pihole")
    caps = c["securityContext"]["capabilities"]
    assert caps["drop"] == ["ALL"]
    assert "NET_ADMIN" not in caps["add"] and "SYS_ADMIN" not in caps["add"]
    assert "NET_BIND_SERVICE" in caps["add"]


def test_dhcp_setting_adds_net_admin(stack_values: dict[str, Any]) -> None:
    dns = copy.deepcopy(stack_values["pi-cluster:dns"])
    dns["pihole"]["dhcp"] = True
    result = mockrun.run(overrides={"pi-cluster:dns": dns})
    c = _container(result.manifest("Deployment", "pihole", NS), "pihole")
    assert "NET_ADMIN" in c["securityContext"]["capabilities"]["add"]
    assert _env(c)["FTLCONF_dhcp_active"] == "true"


def test_pihole_pvcs_are_protected_local_path(pi_k3s: mockrun.Result) -> None:
    sizes = {}
    for reg in pi_k3s.by_type("kubernetes:core/v1:PersistentVolumeClaim"):
        obj = reg.plain_inputs
        if obj["metadata"]["namespace"] != NS:
            continue
        assert reg.protect, reg.name
        assert obj["spec"]["storageClassName"] == "local-path"
        assert obj["spec"]["accessModes"] == ["ReadWriteOnce"]
        sizes[obj["metadata"]["name"]] = obj["spec"]["resources"]["requests"]["storage"]
    assert sizes == {"pihole-etc": "1Gi", "pihole-2-etc": "1Gi"}


def test_pihole_web_service_and_route(pi_k3s: mockrun.Result, settings: Settings) -> None:
    svc = pi_k3s.manifest("Service", "pihole-web", NS)
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(80, 80)]
    assert svc["spec"]["selector"] == {"app.kubernetes.io/name": "pihole"}
    assert pi_k3s.outputs["urls"]["pihole"] == f"https://pihole.{settings.domain}"


def test_password_comes_from_the_external_secret(pi_k3s: mockrun.Result, settings: Settings) -> None:
    es = pi_k3s.manifest("ExternalSecret", "pihole-secret", NS)
    assert es["spec"]["data"] == [{"secretKey": "password", "remoteRef": {"key": settings.dns.password_ref}}]
    assert es["spec"]["secretStoreRef"]["name"] == "onepassword"


def test_no_latest_and_every_container_has_limits(pi_k3s: mockrun.Result) -> None:
    for kind in ("Deployment", "Job"):
        for obj in pi_k3s.manifests(kind):
            if obj["metadata"]["namespace"] != NS:
                continue
            spec = obj["spec"]["template"]["spec"]
            for c in spec["containers"] + spec.get("initContainers", []):
                tag = c["image"].rpartition(":")[2]
                assert tag and tag != "latest" and "/" not in tag, c["image"]
                assert c["resources"]["limits"]["memory"], c["name"]
                assert c["resources"]["requests"]["cpu"], c["name"]


# --- exporter --------------------------------------------------------------------------------------


def test_exporter(pi_k3s: mockrun.Result, settings: Settings) -> None:
    d = pi_k3s.manifest("Deployment", "pihole-exporter", NS)
    c = _container(d, "exporter")
    env = _env(c)
    assert env["PIHOLE_HOSTNAME"] == settings.node(settings.placement.pihole).address
    assert env["PORT"] == "9617"
    assert c["readinessProbe"]["httpGet"] == {"path": "/readiness", "port": 9617}
    svc = pi_k3s.manifest("Service", "pihole-exporter", NS)
    assert svc["spec"]["ports"][0]["port"] == 9617 and svc["spec"]["ports"][0]["name"] == "metrics"


def test_exporter_is_a_scrape_target() -> None:
    """The component declares the target; the monitoring component derives the ServiceMonitor."""
    import components.dns as dns_module

    source = Path(dns_module.__file__).read_text()
    assert "ScrapeTarget(" in source and "ServiceMonitor" not in source
    # The registry content is checked through a fresh run: the monitoring helper reads it.
    from components.metrics import MetricsRegistry

    captured: list[MetricsRegistry] = []
    original = MetricsRegistry.__init__

    def spy(self: MetricsRegistry) -> None:
        original(self)
        captured.append(self)

    MetricsRegistry.__init__ = spy  # type: ignore[method-assign]
    try:
        mockrun.run()
    finally:
        MetricsRegistry.__init__ = original  # type: ignore[method-assign]
    targets = [t for reg in captured for t in reg.targets() if t.namespace == NS]
    assert [(t.name, t.port, t.interval) for t in targets] == [
        ("pihole-exporter", "metrics", "30s"),
        ("pihole-2-exporter", "metrics", "30s"),
    ]
    assert dict(targets[0].selector) == {"app.kubernetes.io/name": "pihole-exporter"}


# --- list reconciler Job ---------------------------------------------------------------------------


def _job(result: mockrun.Result) -> dict[str, Any]:
    """The primary's list Job (the secondary's is built by the same code: tests/test_dns_ha.py)."""
    jobs = [
        j
        for j in result.manifests("Job")
        if j["metadata"]["namespace"] == NS and j["metadata"]["name"].startswith("pihole-lists-")
    ]
    assert len(jobs) == 1
    return jobs[0]


def test_reconciler_job_name_follows_list_content(
    pi_k3s: mockrun.Result, settings: Settings, tmp_path: Path
) -> None:
    job = _job(pi_k3s)
    digest = content_hash(lists_data(settings))
    assert job["metadata"]["name"] == f"pihole-lists-{digest[:10]}"
    assert job["metadata"]["annotations"]["pi-cluster/lists-sha256"] == digest
    # a different list gives a different Job
    shorter = tmp_path / "adlists.txt"
    shorter.write_text("\n".join(settings.dns.adlists[1:]) + "\n")
    raw = raw_config()
    raw["dns"]["adlistsFile"] = str(shorter)
    assert content_hash(lists_data(parse(raw))) != digest
    # a comment-only edit does not
    commented = tmp_path / "commented.txt"
    commented.write_text("# a new comment\n" + "\n".join(settings.dns.adlists) + "\n")
    raw["dns"]["adlistsFile"] = str(commented)
    assert content_hash(lists_data(parse(raw))) == digest


def test_reconciler_job_runs_the_script_against_pihole(pi_k3s: mockrun.Result, settings: Settings) -> None:
    job = _job(pi_k3s)
    c = job["spec"]["template"]["spec"]["containers"][0]
    env = _env(c)
    assert env["PIHOLE_URL"] == f"http://{settings.node(settings.placement.pihole).address}"
    assert env["PIHOLE_PASSWORD"] == {"secretKeyRef": {"name": "pihole-secret", "key": "password"}}
    assert c["command"] == ["bash", "/lists/pihole-lists.sh"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    cm = pi_k3s.manifest("ConfigMap", "pihole-lists", NS)
    assert cm["data"]["adlists.txt"].splitlines() == settings.dns.adlists
    assert len(settings.dns.adlists) == 25
    reg = pi_k3s.get("kubernetes:batch/v1:Job", "dns-pihole-lists-job")
    assert "kubernetes:apps/v1:Deployment::dns-pihole-deployment" in reg.depends_on


# --- bad input -------------------------------------------------------------------------------------


def _with_adlists(tmp_path: Path, text: str) -> dict[str, Any]:
    f = tmp_path / "adlists.txt"
    f.write_text(text)
    raw = raw_config()
    raw["dns"]["adlistsFile"] = str(f)
    return raw


def test_adlist_line_that_is_not_a_url_is_rejected_with_file_and_line(tmp_path: Path) -> None:
    raw = _with_adlists(tmp_path, "# lists\nhttps://example.org/a.txt\n\nftp://example.org/b.txt\n")
    with pytest.raises(SettingsError) as info:
        parse(raw)
    assert (
        f"pi-cluster:dns: {tmp_path}/adlists.txt:4: 'ftp://example.org/b.txt' is not an http(s) URL"
        in str(info.value)
    )


def test_adlist_bare_word_rejected(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"adlists.txt:1: 'example.org/list' is not an http\(s\) URL"):
        parse(_with_adlists(tmp_path, "example.org/list\n"))


def test_duplicate_adlist_url_is_reported(tmp_path: Path) -> None:
    raw = _with_adlists(
        tmp_path, "https://example.org/a.txt\nhttps://example.org/b.txt\nhttps://example.org/a.txt\n"
    )
    with pytest.raises(
        SettingsError, match=r"adlists.txt:3: duplicate URL 'https://example.org/a.txt' \(first on line 1\)"
    ):
        parse(raw)


def test_bad_allowlist_domain_is_rejected(tmp_path: Path) -> None:
    f = tmp_path / "allow.txt"
    f.write_text("good.example.com\nNot A Domain\n")
    raw = raw_config()
    raw["dns"]["allowlistFile"] = str(f)
    with pytest.raises(SettingsError, match=r"allow.txt:2: 'Not A Domain' is not a lowercase domain name"):
        parse(raw)


def test_missing_list_file_is_rejected(tmp_path: Path) -> None:
    raw = raw_config()
    raw["dns"]["adlistsFile"] = str(tmp_path / "nope.txt")
    with pytest.raises(SettingsError, match=r"nope.txt: cannot read"):
        parse(raw)


def test_bad_adlist_registers_nothing(tmp_path: Path, stack_values: dict[str, Any]) -> None:
    dns = copy.deepcopy(stack_values["pi-cluster:dns"])
    f = tmp_path / "adlists.txt"
    f.write_text("not a url\n")
    dns["adlistsFile"] = str(f)
    with pytest.raises(SettingsError, match=r"adlists.txt:1"):
        mockrun.run(overrides={"pi-cluster:dns": dns})


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (
            ("unbound", "resources", "memoryLimit", "64Mi"),
            "pi-cluster:dns.unbound.resources.memoryLimit: memoryLimit 64Mi leaves no room",
        ),
        (("unbound", "resources", "memoryLimit", "768Mi"), "768Mi is more than half of node 'pi3-worker-1'"),
        (
            ("unbound", "threads", None, 8),
            "pi-cluster:dns.unbound.threads: 8 threads on node 'pi3-worker-1', which has 4 cores",
        ),
        (("pihole", "image", None, "pihole/pihole:latest"), "pi-cluster:dns.pihole.image"),
        (("unbound", "image", None, "madnuttah/unbound"), "has no tag"),
    ],
    ids=["unbound-too-small", "unbound-too-big", "too-many-threads", "latest", "no-tag"],
)
def test_bad_dns_settings_rejected(edit: tuple[str, str, str | None, Any], fragment: str) -> None:
    raw = raw_config()
    section, key, sub, value = edit
    if sub is None:
        raw["dns"][section][key] = value
    else:
        raw["dns"][section][key][sub] = value
    with pytest.raises(SettingsError) as info:
        parse(raw)
    assert fragment in str(info.value)


def test_sizing_numbers(settings: Settings) -> None:
    z = settings.dns.unbound.sizing()
    assert z.threads == 2 and z.slabs == 2
    assert z.rrset_cache == 2 * z.msg_cache and z.msg_cache % MiB == 0


def test_each_pihole_serves_its_own_host(pi_k3s: mockrun.Result) -> None:
    for name in ("pihole", "pihole-2"):
        env = _env(_container(pi_k3s.manifest("Deployment", name, NS), "pihole"))
        assert f"https://{env['FTLCONF_webserver_domain']}" == pi_k3s.outputs["urls"][name]


def test_root_pihole_waives_the_uid_check_for_its_real_reason(pi_k3s: mockrun.Result) -> None:
    """CKV_K8S_40's waiver on the root Pi-hole states the root exception, not a non-root UID."""
    d = pi_k3s.manifest("Deployment", "pihole", NS)
    notes = d["spec"]["template"]["metadata"]["annotations"]
    waivers = dict(
        v.split("=", 1) for k, v in d["metadata"]["annotations"].items() if k.startswith("checkov.io/skip")
    )
    assert waivers["CKV_K8S_40"] == waivers["CKV_K8S_23"]
    assert "non-root" not in waivers["CKV_K8S_40"]
    assert "runs as root" in notes["pi-cluster/security-exceptions"]
    unbound = pi_k3s.manifest("Deployment", "unbound", NS)  # non-root, UID 1000
    plain = dict(
        v.split("=", 1)
        for k, v in unbound["metadata"]["annotations"].items()
        if k.startswith("checkov.io/skip")
    )
    assert "non-root" in plain["CKV_K8S_40"]


def test_pihole_security_exceptions_are_explained(pi_k3s: mockrun.Result) -> None:
    d = pi_k3s.manifest("Deployment", "pihole", NS)
    notes = d["spec"]["template"]["metadata"]["annotations"]
    assert "pihole-FTL" in notes["pi-cluster/security-exceptions"]
    assert "port 53" in notes["pi-cluster/host-network"]
    ns = pi_k3s.manifest("Namespace", NS)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert ns["metadata"]["annotations"]["pi-cluster/pod-security-reason"]

"""Status (Uptime Kuma + AutoKuma) and Homepage: everything derived from the frozen routes."""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from components import homepage as hp
from components import k8s as kb
from components import status as st
from components.capacity import WorkloadRegistry
from components.monitoring import grafana_route
from components.routes import Dashboard, Route, RouteError, RouteRegistry
from config.settings import Settings
from tools import mockrun

JELLYFIN = Route(
    name="jellyfin",
    host_prefix="jellyfin",
    namespace="jellyfin",
    service="jellyfin",
    port=8096,
    health_path="/health",
    dashboard=Dashboard(
        group="Media", icon="jellyfin.png", description="Films and series", widget="jellyfin"
    ),
)


ORIGINAL_FREEZE = RouteRegistry.freeze
ORIGINAL_WORKLOADS_INIT = WorkloadRegistry.__init__


def run_with(monkeypatch: pytest.MonkeyPatch, *extra: Route, **overrides: Any) -> mockrun.Result:
    """Run the stack as if other components had declared ``extra`` routes before the freeze,
    each creating its route's namespace when no component does (as an app component would)."""
    original = ORIGINAL_FREEZE
    registries: list[WorkloadRegistry] = []

    def init(self: WorkloadRegistry) -> None:
        ORIGINAL_WORKLOADS_INIT(self)
        registries.append(self)

    def freeze(self: RouteRegistry) -> tuple[Route, ...]:
        if not self.frozen:
            for route in extra:
                self.add(route)
                try:
                    registries[-1].namespace_resource(route.namespace)
                except KeyError:
                    kb.namespace(
                        route.namespace,
                        resource_name=f"{route.namespace}-namespace",
                        opts=pulumi.ResourceOptions(),
                        workloads=registries[-1],
                    )
        return original(self)

    monkeypatch.setattr(WorkloadRegistry, "__init__", init)
    monkeypatch.setattr(RouteRegistry, "freeze", freeze)
    return mockrun.run("pi-k3s", overrides=overrides)


def homepage_files(run: mockrun.Result) -> dict[str, Any]:
    data = run.manifest("ConfigMap", hp.CONFIG_MAP, hp.NAMESPACE)["data"]
    return {name: yaml.safe_load(text) for name, text in data.items()}


def tiles(run: mockrun.Result) -> list[tuple[str, str, dict[str, Any]]]:
    """(group, name, entry) for every service in services.yaml, checking Homepage's shape."""
    out = []
    services = homepage_files(run)["services.yaml"]
    assert isinstance(services, list)
    for group in services:
        assert isinstance(group, dict) and len(group) == 1
        (name, entries), *_ = group.items()
        for entry in entries:
            assert isinstance(entry, dict) and len(entry) == 1
            (title, body), *_ = entry.items()
            assert {"href", "icon"} <= set(body)
            out.append((name, title, body))
    return out


def autokuma_entities(run: mockrun.Result) -> dict[str, dict[str, Any]]:
    data = run.manifest("ConfigMap", st.MONITORS_CONFIGMAP, st.NAMESPACE)["data"]
    return {name.removesuffix(".json"): json.loads(text) for name, text in data.items()}


def _flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(item, dict):
            out.update(_flatten(item, name))
        elif isinstance(item, list):
            out[name] = json.dumps(item, separators=(",", ":"))
        else:
            out[name] = item
    return out


def autokuma_parse(text: str, env: dict[str, str]) -> dict[str, Any]:
    """Read a static monitor file the way AutoKuma 2.0.0 does (file_source.rs, entity.rs):
    JSON object with ``type``, flattened to ``key = <json>`` lines, Tera's ``get_env`` filled
    (only AUTOKUMA__ENV__ variables), then parsed as TOML."""
    value = json.loads(text)
    assert isinstance(value, dict) and isinstance(value.get("type"), str)
    lines = []
    for key, item in sorted(_flatten(value).items()):
        raw = (
            item
            if isinstance(item, str) and item.startswith('"') and item.endswith('"')
            else json.dumps(item)
        )
        lines.append(f"{key} = {raw}")
    rendered = "\n".join(lines)

    def get_env(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name.startswith("AUTOKUMA__ENV__"), name
        return env[name]

    rendered = re.sub(r"\{\{\s*get_env\(name='([A-Za-z0-9_]+)'\)\s*\}\}", get_env, rendered)
    assert "{{" not in rendered and "{%" not in rendered
    return tomllib.loads(rendered)


REQUIRED = {
    "http": {"name", "url"},
    "dns": {"name", "hostname", "dns_resolve_server", "port"},
    "port": {"name", "hostname", "port"},
    "notification": {"name", "config"},
}


def test_every_route_once_among_tiles_and_monitors(pi_k3s: mockrun.Result) -> None:
    urls = pi_k3s.outputs["urls"]
    assert {"grafana", "status", "home"} <= set(urls)
    hrefs = Counter(body["href"] for _, _, body in tiles(pi_k3s))
    assert hrefs == Counter(urls.values())
    entities = autokuma_entities(pi_k3s)
    route_monitors = {k: v for k, v in entities.items() if k.startswith("route-")}
    assert sorted(route_monitors) == sorted(f"route-{name}" for name in urls)
    for name, url in urls.items():
        assert route_monitors[f"route-{name}"]["url"].startswith(url + "/")


def test_adding_one_route_adds_one_tile_and_one_monitor(
    pi_k3s: mockrun.Result, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Media off, so that the Jellyfin route is the one this test adds.
    no_media: dict[str, Any] = {"pi-cluster:media": None, "pi-cluster:backups": None}
    base = run_with(monkeypatch, **no_media)
    grown = run_with(monkeypatch, JELLYFIN, **no_media)
    before, after = tiles(base), tiles(grown)
    added = [t for t in after if t not in before]
    assert len(after) == len(before) + 1 and [(g, n) for g, n, _ in added] == [("Media", "Jellyfin")]
    widget = added[0][2]["widget"]
    assert widget == {
        "type": "jellyfin",
        "url": "http://jellyfin.jellyfin.svc.cluster.local:8096",
        "enableBlocks": True,
        "key": "{{HOMEPAGE_VAR_JELLYFIN_KEY}}",
    }
    monitors_before, monitors_after = autokuma_entities(base), autokuma_entities(grown)
    assert set(monitors_after) - set(monitors_before) == {"route-jellyfin"}
    assert {k: monitors_after[k] for k in monitors_before} == monitors_before
    assert monitors_after["route-jellyfin"]["url"] == "https://jellyfin.lab.mtgibbs.dev/health"

    # Nothing else changed by hand: one new ExternalSecret for the widget's key, the route's own
    # Ingress, and only the two generated ConfigMaps and Homepage's Deployment (its env and
    # config hash) differ.
    # (The guardrails derive the new namespace's NetworkPolicies, quota and limits; checked there.)
    def own(run: mockrun.Result) -> dict[str, Any]:
        guard = "pi-cluster:guardrails:Guardrails::guardrails"
        return {r.key: r.plain_inputs for r in run.registrations if r.parent != guard and r.key != guard}

    old, new = own(base), own(grown)
    new_ingresses = [
        k for k in set(new) - set(old) if k.startswith("kubernetes:networking.k8s.io/v1:Ingress::")
    ]
    assert len(new_ingresses) == 1 and new[new_ingresses[0]]["metadata"]["name"] == "jellyfin"
    assert set(new) - set(old) - set(new_ingresses) == {
        "kubernetes:external-secrets.io/v1:ExternalSecret::homepage-homepage-jellyfin-key-externalsecret",
        "kubernetes:core/v1:Namespace::jellyfin-namespace",  # made by the app component, as it would
    }
    changed = sorted(k for k in old if old[k] != new.get(k))
    assert changed == [
        "kubernetes:apps/v1:Deployment::homepage-deployment",
        "kubernetes:core/v1:ConfigMap::homepage-config",
        "kubernetes:core/v1:ConfigMap::status-monitors",
    ]
    env = grown.manifest("Deployment", "homepage", "homepage")["spec"]["template"]["spec"]["containers"][0][
        "env"
    ]
    ref = next(e for e in env if e["name"] == "HOMEPAGE_VAR_JELLYFIN_KEY")["valueFrom"]["secretKeyRef"]
    secret = grown.manifest("ExternalSecret", ref["name"], "homepage")
    assert [(d["secretKey"], d["remoteRef"]["key"]) for d in secret["spec"]["data"]] == [
        ("HOMEPAGE_VAR_JELLYFIN_KEY", "jellyfin/api-key")
    ]


def test_unknown_widget_is_rejected_naming_the_route(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = Route(
        name="plex",
        host_prefix="plex",
        namespace="media",
        service="plex",
        port=32400,
        dashboard=Dashboard(group="Media", icon="plex.png", widget="plexx"),
    )
    with pytest.raises(RouteError, match=r"route 'plex': dashboard widget type 'plexx' is unknown"):
        run_with(monkeypatch, bad)


def test_widget_credential_without_externalsecret_key_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    photos = Route(
        name="photos",
        host_prefix="photos",
        namespace="immich",
        service="immich-server",
        port=2283,
        dashboard=Dashboard(group="Media", icon="immich.png", widget="immich"),
    )
    with pytest.raises(RouteError, match=r"route 'photos'.*HOMEPAGE_VAR_PHOTOS_KEY.*homepage.credentials"):
        run_with(monkeypatch, photos)
    # With the key declared in settings the same route is accepted.
    values, _ = mockrun.stack_config("pi-k3s")
    homepage = values["pi-cluster:homepage"]
    creds = {**homepage["credentials"], "HOMEPAGE_VAR_PHOTOS_KEY": "immich/api-key"}
    run = run_with(monkeypatch, photos, **{"pi-cluster:homepage": {**homepage, "credentials": creds}})
    photos_tile = next(body for _, name, body in tiles(run) if name == "Photos")
    assert (
        photos_tile["widget"]["key"] == "{{HOMEPAGE_VAR_PHOTOS_KEY}}"
        and photos_tile["widget"]["version"] == 2
    )


def test_literal_credentials_and_missing_fields_are_rejected(settings: Settings) -> None:
    leaky = Route(
        name="pihole",
        host_prefix="pihole",
        namespace="pihole",
        service="pihole",
        port=80,
        dashboard=Dashboard(
            group="DNS", icon="pi-hole.png", widget="pihole", widget_fields={"key": "hunter2"}
        ),
    )
    with pytest.raises(RouteError, match=r"route 'pihole'.*not a literal credential"):
        hp.tile(leaky, settings.domain, settings.homepage.credentials)
    kuma = Route(
        name="kuma",
        host_prefix="kuma",
        namespace="x",
        service="x",
        port=1,
        dashboard=Dashboard(group="g", icon="i", widget="uptimekuma", widget_fields={"slug": "home"}),
    )
    with pytest.raises(RouteError, match=r"route 'kuma'.*'uptimekuma' cannot be used: .*status page"):
        hp.tile(kuma, settings.domain, settings.homepage.credentials)


def grants_on(rules: list[dict[str, Any]], resource: str) -> list[dict[str, Any]]:
    return [r for r in rules if resource in r.get("resources", []) or "*" in r.get("resources", [])]


def test_homepage_role_reads_only_what_it_shows(pi_k3s: mockrun.Result) -> None:
    role = pi_k3s.manifest("ClusterRole", hp.ROLE)
    rules = role["rules"]
    assert grants_on(rules, "secrets") == [] and grants_on(rules, "configmaps") == []
    assert {v for r in rules for v in r["verbs"]} <= {"get", "list", "watch"}
    granted = {(g, res) for r in rules for g in r["apiGroups"] for res in r["resources"]}
    assert granted == {
        ("", "nodes"),
        ("", "pods"),
        ("", "namespaces"),
        ("networking.k8s.io", "ingresses"),
        ("metrics.k8s.io", "nodes"),
        ("metrics.k8s.io", "pods"),
    }
    binding = pi_k3s.manifest("ClusterRoleBinding", hp.ROLE)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "homepage", "namespace": "homepage"}]


def test_role_check_catches_secret_access() -> None:
    seed_like = [{"apiGroups": [""], "resources": ["*"], "verbs": ["get", "list"]}]
    assert grants_on(seed_like, "secrets") and grants_on(seed_like, "configmaps")


def test_homepage_files_parse_as_homepage_reads_them(pi_k3s: mockrun.Result, settings: Settings) -> None:
    files = homepage_files(pi_k3s)
    assert set(files) >= {"services.yaml", "settings.yaml", "widgets.yaml", "kubernetes.yaml"}
    groups = [next(iter(g)) for g in files["services.yaml"]]
    assert files["settings.yaml"]["theme"] == "dark"
    assert list(files["settings.yaml"]["layout"]) == groups
    widgets = {next(iter(w)): next(iter(w.values())) for w in files["widgets.yaml"]}
    assert set(widgets) == {"kubernetes", "datetime", "search", "openmeteo"}
    assert widgets["kubernetes"]["nodes"]["show"] and widgets["kubernetes"]["cluster"]["show"]
    weather = settings.homepage.weather
    assert (widgets["openmeteo"]["latitude"], widgets["openmeteo"]["longitude"]) == (
        weather.latitude,
        weather.longitude,
    )
    assert files["kubernetes.yaml"]["mode"] == "cluster"
    grafana = next(body for _, name, body in tiles(pi_k3s) if name == "Grafana")
    assert grafana["widget"]["type"] == "prometheus"
    # No uptimekuma widget: it would read a status page nothing creates (components/status.py).
    kuma = next(body for _, name, body in tiles(pi_k3s) if name == "Status")
    assert "widget" not in kuma and kuma["siteMonitor"].startswith("http://uptime-kuma.uptime-kuma.svc")
    assert not [b for _, _, b in tiles(pi_k3s) if (b.get("widget") or {}).get("type") == "uptimekuma"]
    pod = pi_k3s.manifest("Deployment", "homepage", "homepage")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["HOMEPAGE_ALLOWED_HOSTS"].split(",") == [
        "home.lab.mtgibbs.dev",
        "homepage.homepage.svc.cluster.local:3000",
    ]
    assert pod["serviceAccountName"] == "homepage"
    assert pod["containers"][0]["image"] == settings.homepage.image


def test_autokuma_files_parse_as_autokuma_reads_them(pi_k3s: mockrun.Result) -> None:
    data = pi_k3s.manifest("ConfigMap", st.MONITORS_CONFIGMAP, st.NAMESPACE)["data"]
    env = {st.DISCORD_ENV: "https://discord.invalid/api/webhooks/1/test"}
    parsed = {name.removesuffix(".json"): autokuma_parse(text, env) for name, text in data.items()}
    for key, entity in parsed.items():
        kind = entity["type"]
        assert REQUIRED[kind] <= set(entity), key
        if kind != "notification":
            assert json.loads(entity["notification_name_list"]) == [st.NOTIFICATION_ID], key
    assert parsed["discord"]["config"]["discordWebhookUrl"] == env[st.DISCORD_ENV]
    # one DNS monitor per Pi-hole the LAN uses
    assert parsed["dns-pihole"]["dns_resolve_server"] == "192.168.1.55" and parsed["dns-pihole"]["port"] == 53
    assert parsed["dns-pihole-2"]["dns_resolve_server"] == "192.168.1.51"
    assert parsed["dns-pihole-2"]["port"] == 53 and parsed["dns-pihole-2"]["type"] == "dns"
    assert sorted(k for k, v in parsed.items() if v["type"] == "dns") == ["dns-pihole", "dns-pihole-2"]
    assert (parsed["dns-unbound"]["hostname"], parsed["dns-unbound"]["port"]) == (
        "unbound.pihole.svc.cluster.local",
        5335,
    )
    assert (parsed["k3s-api"]["hostname"], parsed["k3s-api"]["port"]) == ("192.168.1.55", 6443)
    assert parsed["prometheus"]["url"].endswith(":9090/-/healthy")


def test_autokuma_parse_catches_a_broken_file() -> None:
    with pytest.raises(AssertionError):
        autokuma_parse('{"name": "no type"}', {})
    with pytest.raises(KeyError):
        autokuma_parse('{"type": "http", "url": "{{ get_env(name=\'AUTOKUMA__ENV__MISSING\') }}"}', {})


def test_autokuma_gets_its_secrets_from_externalsecrets(pi_k3s: mockrun.Result) -> None:
    pod = pi_k3s.manifest("Deployment", "autokuma", st.NAMESPACE)["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    for var in ("AUTOKUMA__KUMA__USERNAME", "AUTOKUMA__KUMA__PASSWORD", st.DISCORD_ENV):
        ref = env[var]["valueFrom"]["secretKeyRef"]
        secret = pi_k3s.manifest("ExternalSecret", ref["name"], st.NAMESPACE)
        assert ref["key"] in {d["secretKey"] for d in secret["spec"]["data"]}
    assert env["AUTOKUMA__STATIC_MONITORS"]["value"] == "/monitors"
    assert env["AUTOKUMA__DATA_PATH"]["value"] == "/data"
    assert pi_k3s.manifest("Deployment", "autokuma", st.NAMESPACE)["spec"]["strategy"] == {"type": "Recreate"}
    webhook_text = json.dumps(pi_k3s.manifest("ConfigMap", st.MONITORS_CONFIGMAP, st.NAMESPACE))
    assert "discord.com" not in webhook_text


def test_status_volumes_are_protected_and_sized(pi_k3s: mockrun.Result) -> None:
    pvcs = {r.name: r for r in pi_k3s.by_type("kubernetes:core/v1:PersistentVolumeClaim")}
    kuma, autokuma = pvcs["status-data"], pvcs["status-autokuma-data"]
    assert kuma.protect and autokuma.protect
    assert kuma.plain_inputs["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert "status" in pi_k3s.outputs["urls"]
    deploy = pi_k3s.manifest("Deployment", "uptime-kuma", st.NAMESPACE)
    assert (
        deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "louislam/uptime-kuma:2.0.2-rootless"
    )


def test_seed_routes_give_at_least_the_seed_twelve_monitors(settings: Settings) -> None:
    def web(name: str, port: int) -> Route:
        return Route(name=name, host_prefix=name, namespace=name, service=name, port=port)

    seed = [
        grafana_route(),
        st.status_route(settings),
        hp.homepage_route(),
        web("pihole", 80),
        JELLYFIN,
        web("immich", 2283),
        web("unifi", 8443),
        web("nas", 5000),
    ]
    entities = st.monitors(seed, settings)
    monitors = [k for k, v in entities.items() if v["type"] != "notification"]
    assert len(monitors) >= 12
    assert len(hp.tiles(seed, settings.domain, settings.homepage.credentials)) == len(seed)


# --- AutoKuma reads the ConfigMap as the kubelet mounts it ----------------------------------------


def kubelet_configmap_volume(root: Path, data: dict[str, str]) -> None:
    """A ConfigMap volume as the kubelet's atomic writer lays it out: the files in a hidden
    timestamped directory, ``..data`` a symlink to it, and each key a symlink into ``..data``."""
    stamp = root / "..2026_07_07_10_00_00.000000001"
    stamp.mkdir(parents=True)
    for key, text in data.items():
        (stamp / key).write_text(text)
    (root / "..data").symlink_to(stamp.name)
    for key in data:
        (root / key).symlink_to(f"..data/{key}")


def autokuma_static_files(root: Path, follow_symlinks: bool) -> dict[str, Path]:
    """The files AutoKuma 2.0.0's file source reads (autokuma/src/sources/file_source.rs):
    walkdir from the folder, following links only with files.follow_symlinks; entries whose
    name starts with '.' pruned (filter_entry); regular files kept, symlinks only when followed;
    only .json and .toml read; the id is the relative path with the file's stem."""
    found: dict[str, Path] = {}

    def walk(directory: Path, prefix: tuple[str, ...]) -> None:
        for entry in sorted(directory.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_symlink() and not follow_symlinks:
                continue  # file_type() is a symlink: neither is_file() nor followed
            if entry.is_dir():
                walk(entry, (*prefix, entry.name))
            elif entry.is_file() and entry.suffix in (".json", ".toml"):
                found["/".join((*prefix, entry.stem))] = entry

    walk(root, ())
    return found


def _autokuma_env(run: mockrun.Result) -> dict[str, Any]:
    pod = run.manifest("Deployment", "autokuma", st.NAMESPACE)["spec"]["template"]["spec"]
    return {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}


def _follow_symlinks(env: dict[str, Any]) -> bool:
    # config-rs reads AUTOKUMA__FILES__FOLLOW_SYMLINKS into files.follow_symlinks (default false)
    return str(env.get("AUTOKUMA__FILES__FOLLOW_SYMLINKS", "false")).lower() == "true"


def test_autokuma_finds_every_monitor_in_the_mounted_configmap(
    pi_k3s: mockrun.Result, tmp_path: Path
) -> None:
    data = pi_k3s.manifest("ConfigMap", st.MONITORS_CONFIGMAP, st.NAMESPACE)["data"]
    pod = pi_k3s.manifest("Deployment", "autokuma", st.NAMESPACE)["spec"]["template"]["spec"]
    env = _autokuma_env(pi_k3s)
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "monitors")
    assert env["AUTOKUMA__STATIC_MONITORS"] == mount["mountPath"]
    root = tmp_path / mount["mountPath"].lstrip("/")
    kubelet_configmap_volume(root, data)
    found = autokuma_static_files(root, _follow_symlinks(env))
    assert sorted(found) == sorted(key.removesuffix(".json") for key in data)
    secrets = {st.DISCORD_ENV: "https://discord.invalid/api/webhooks/1/test"}
    for entity_id, path in found.items():
        assert autokuma_parse(path.read_text(), secrets)["type"], entity_id


def test_autokuma_without_follow_symlinks_reads_nothing(pi_k3s: mockrun.Result, tmp_path: Path) -> None:
    """The old Deployment (no AUTOKUMA__FILES__FOLLOW_SYMLINKS): every key is a symlink and the
    real files sit under '..'-prefixed directories, so AutoKuma finds no monitor at all."""
    data = pi_k3s.manifest("ConfigMap", st.MONITORS_CONFIGMAP, st.NAMESPACE)["data"]
    kubelet_configmap_volume(tmp_path / "monitors", data)
    assert autokuma_static_files(tmp_path / "monitors", follow_symlinks=False) == {}
    env = _autokuma_env(pi_k3s)
    assert _follow_symlinks(env), "the program must set AUTOKUMA__FILES__FOLLOW_SYMLINKS=true"
    old_env = {k: v for k, v in env.items() if k != "AUTOKUMA__FILES__FOLLOW_SYMLINKS"}
    assert not _follow_symlinks(old_env)  # config-rs default: false
    assert autokuma_static_files(tmp_path / "monitors", _follow_symlinks(old_env)) == {}
    # plain files are read either way, and other extensions never
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "a.json").write_text("{}")
    (plain / "b.txt").write_text("")
    assert sorted(autokuma_static_files(plain, follow_symlinks=False)) == ["a"]


# --- Homepage credentials: one Secret per variable -----------------------------------------------


def test_one_external_secret_per_homepage_variable(pi_k3s: mockrun.Result) -> None:
    pod = pi_k3s.manifest("Deployment", "homepage", "homepage")["spec"]["template"]["spec"]
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in pod["containers"][0]["env"]
        if e["name"].startswith("HOMEPAGE_VAR_")
    }
    assert sorted(refs) == sorted(
        [
            "HOMEPAGE_VAR_PIHOLE_KEY",
            "HOMEPAGE_VAR_PIHOLE_2_KEY",
            "HOMEPAGE_VAR_JELLYFIN_KEY",
            "HOMEPAGE_VAR_IMMICH_KEY",
        ]
    )
    assert len({r["name"] for r in refs.values()}) == len(refs)  # no Secret shared
    for var, ref in refs.items():
        secret = pi_k3s.manifest("ExternalSecret", ref["name"], "homepage")
        assert [d["secretKey"] for d in secret["spec"]["data"]] == [var] == [ref["key"]]
    keys = {body["widget"]["key"] for _, name, body in tiles(pi_k3s) if name.startswith("Pihole")}
    assert keys == {"{{HOMEPAGE_VAR_PIHOLE_KEY}}", "{{HOMEPAGE_VAR_PIHOLE_2_KEY}}"}
    for secret in pi_k3s.manifests("ExternalSecret"):
        if secret["metadata"]["namespace"] == "homepage":
            assert len(secret["spec"]["data"]) == 1, secret["metadata"]["name"]


def test_two_tiles_reading_one_variable_are_refused(settings: Settings) -> None:
    def pihole(name: str) -> Route:
        return Route(
            name=name,
            host_prefix=name,
            namespace="pihole",
            service=f"{name}-web",
            port=80,
            dashboard=Dashboard(
                group="Network",
                icon="pi-hole.svg",
                widget="pihole",
                widget_fields={"key": "{{HOMEPAGE_VAR_PIHOLE_KEY}}"},
            ),
        )

    creds = {"HOMEPAGE_VAR_PIHOLE_KEY": "pihole/password"}
    with pytest.raises(RouteError, match=r"routes 'pihole' and 'pihole-2' both read HOMEPAGE_VAR_PIHOLE_KEY"):
        hp.tiles([pihole("pihole"), pihole("pihole-2")], settings.domain, creds)
    assert len(hp.tiles([pihole("pihole")], settings.domain, creds)) == 1


def test_every_credential_of_a_stack_feeds_a_tile(any_stack: mockrun.Result) -> None:
    """No dead credential in the stack files (the UniFi ones fed no widget): each
    homepage.credentials key is an environment variable some tile's widget reads."""
    values, _ = mockrun.stack_config(any_stack.stack)
    declared = set(values["pi-cluster:homepage"].get("credentials", {}))
    services = yaml.safe_load(
        any_stack.manifest("ConfigMap", hp.CONFIG_MAP, hp.NAMESPACE)["data"]["services.yaml"]
    )
    read = set(re.findall(r"\{\{(HOMEPAGE_VAR_[A-Z0-9_]+)\}\}", json.dumps(services)))
    media_off = any_stack.stack == "dev"  # media apps are off there: their keys go unread
    assert declared - read == set(), f"{any_stack.stack}: credentials no tile reads"
    assert media_off or read == declared
    assert not {v for v in declared if "UNIFI" in v}


# --- Uptime Kuma's first admin -----------------------------------------------------------------------


def test_first_admin_step_is_a_stack_output(pi_k3s: mockrun.Result, settings: Settings) -> None:
    note = pi_k3s.outputs["uptimeKumaSetup"]
    assert f"https://status.{settings.domain}/setup" in note
    ref = st.CREDENTIAL_REFS["username"].split("/")[0]
    assert f"item '{settings.onepassword.item_prefix}{ref}'" in note and "'username' and 'password'" in note
    pod = pi_k3s.manifest("Deployment", "autokuma", st.NAMESPACE)["spec"]["template"]["spec"]
    env = {e["name"]: e.get("valueFrom") for e in pod["containers"][0]["env"]}
    assert env["AUTOKUMA__KUMA__USERNAME"]["secretKeyRef"]["name"] == st.CREDENTIALS_SECRET
    secret = pi_k3s.manifest("ExternalSecret", st.CREDENTIALS_SECRET, st.NAMESPACE)
    assert {d["remoteRef"]["key"] for d in secret["spec"]["data"]} == {f"{ref}/username", f"{ref}/password"}


def test_dev_stack_names_its_own_item(dev: mockrun.Result) -> None:
    assert "item 'dev-uptime-kuma'" in dev.outputs["uptimeKumaSetup"]

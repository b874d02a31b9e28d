"""Monitoring: chart values under the keys the chart reads, rules checked by promtool, the
Alertmanager configuration by amtool, dashboards, and ServiceMonitors derived from targets."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import monitoring as mon
from components.metrics import MetricsRegistry, ScrapeTarget
from components.secrets import METRICS_TARGET
from config.settings import SettingsError, parse
from tests.conftest import crd_schema_dir, require_tool
from tools import mockrun

RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
RULES_TEST = mon.RULES_FILE.parent / "rules.test.yaml"


def _values(run: mockrun.Result) -> dict[str, Any]:
    return run.get(RELEASE_TYPE, "monitoring-kube-prometheus-stack").plain_inputs["values"]


def _dig(values: dict[str, Any], path: str) -> Any:
    node: Any = values
    for part in path.split("/"):
        assert isinstance(node, dict) and part in node, f"values have no {path!r} (stopped at {part!r})"
        node = node[part]
    return node


# Every workload of kube-prometheus-stack 80.6.0 and the key its template reads for resources
# (checked in charts/kube-prometheus-stack/values.yaml and the subcharts' values.yaml).
RESOURCE_KEYS = {
    "prometheus/prometheusSpec/resources": "prometheus",
    "alertmanager/alertmanagerSpec/resources": "alertmanager",
    "prometheusOperator/resources": "operator",
    "prometheusOperator/prometheusConfigReloader/resources": "configReloader",
    "prometheusOperator/admissionWebhooks/patch/resources": "admissionWebhooks",
    "prometheusOperator/admissionWebhooks/deployment/resources": "admissionWebhooks",
    "grafana/resources": "grafana",
    "grafana/sidecar/resources": "grafanaSidecar",
    "kube-state-metrics/resources": "kubeStateMetrics",
    "prometheus-node-exporter/resources": "nodeExporter",
}


def test_release_is_pinned_with_a_fixed_name(pi_k3s: mockrun.Result) -> None:
    release = pi_k3s.get(RELEASE_TYPE, "monitoring-kube-prometheus-stack").plain_inputs
    assert release["name"] == "kube-prometheus-stack"
    assert release["chart"] == "kube-prometheus-stack"
    assert release["version"] == "80.6.0"
    assert release["namespace"] == "monitoring"
    assert mon.PROMETHEUS_URL.startswith("http://kube-prometheus-stack-prometheus.monitoring.svc")


@pytest.mark.parametrize("path,setting", sorted(RESOURCE_KEYS.items()))
def test_resources_sit_under_keys_the_chart_reads(
    pi_k3s: mockrun.Result, stack_values: dict[str, Any], path: str, setting: str
) -> None:
    expected = stack_values["pi-cluster:monitoring"]["resources"][setting]
    got = _dig(_values(pi_k3s), path)
    assert got["requests"] == {"cpu": expected["cpuRequest"], "memory": expected["memoryRequest"]}
    assert got["limits"]["memory"] == expected["memoryLimit"]


def test_resources_at_a_wrong_key_are_caught() -> None:
    """The check above fails for a key the chart does not read (the subchart's own key)."""
    with pytest.raises(AssertionError, match="nodeExporter"):
        _dig({"nodeExporter": {}}, "nodeExporter/resources")


def test_k3s_tuning_and_retention(pi_k3s: mockrun.Result) -> None:
    values = _values(pi_k3s)
    for part in ("kubeEtcd", "kubeScheduler", "kubeControllerManager", "kubeProxy"):
        assert values[part] == {"enabled": False}, part
    spec = values["prometheus"]["prometheusSpec"]
    assert (spec["retention"], spec["retentionSize"]) == ("7d", "2GB")
    claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim["resources"]["requests"]["storage"] == "5Gi"
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert spec["ruleSelectorNilUsesHelmValues"] is False


def test_node_exporter_alone_gets_the_privileged_namespace(pi_k3s: mockrun.Result) -> None:
    levels = {
        ns["metadata"]["name"]: ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        for ns in pi_k3s.manifests("Namespace")
    }
    assert levels["node-exporter"] == "privileged"
    assert levels["monitoring"] == "baseline"
    assert _values(pi_k3s)["prometheus-node-exporter"]["namespaceOverride"] == "node-exporter"


def test_grafana_admin_persistence_and_strategy(pi_k3s: mockrun.Result) -> None:
    grafana = _values(pi_k3s)["grafana"]
    assert grafana["deploymentStrategy"] == {"type": "Recreate"}
    admin = grafana["admin"]
    secret = pi_k3s.manifest("ExternalSecret", admin["existingSecret"], "monitoring")
    keys = {d["secretKey"] for d in secret["spec"]["data"]}
    assert {admin["userKey"], admin["passwordKey"]} == keys
    assert grafana["persistence"]["enabled"] is True
    pvc = pi_k3s.manifest("PersistentVolumeClaim", grafana["persistence"]["existingClaim"], "monitoring")
    reg = next(
        r
        for r in pi_k3s.by_type("kubernetes:core/v1:PersistentVolumeClaim")
        if r.name == "monitoring-grafana-pvc"
    )
    assert reg.protect and pvc["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert "grafana" in pi_k3s.outputs["urls"]


def test_dashboards_ship_as_configmaps_the_sidecar_loads(pi_k3s: mockrun.Result) -> None:
    sidecar = _values(pi_k3s)["grafana"]["sidecar"]["dashboards"]
    boards = [
        cm
        for cm in pi_k3s.manifests("ConfigMap")
        if cm["metadata"]["labels"].get(sidecar["label"]) == sidecar["labelValue"]
    ]
    assert sorted(cm["metadata"]["name"] for cm in boards) == ["dashboard-cluster", "dashboard-pihole"]
    for cm in boards:
        assert cm["metadata"]["namespace"] == sidecar["searchNamespace"]
        for text in cm["data"].values():
            board = json.loads(text)
            assert board["panels"] and all(p["targets"] for p in board["panels"])
    pihole_cm = next(cm for cm in boards if cm["metadata"]["name"] == "dashboard-pihole")
    pihole = json.loads(pihole_cm["data"]["pihole.json"])
    assert any("pihole_" in t["expr"] for p in pihole["panels"] for t in p["targets"])


def test_a_broken_dashboard_is_rejected_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{\n  "uid": "x",\n  "title": oops\n}\n')
    with pytest.raises(mon.DataFileError, match=r"bad\.json:3"):
        mon.load_dashboards(tmp_path)
    (tmp_path / "bad.json").write_text('{"uid": "x", "title": "t"}')
    with pytest.raises(mon.DataFileError, match="no 'panels'"):
        mon.load_dashboards(tmp_path)


def test_prometheus_rule_is_the_rules_file_and_waits_for_the_crds(pi_k3s: mockrun.Result) -> None:
    rule = pi_k3s.manifest("PrometheusRule", "pi-cluster-alerts", "monitoring")
    assert rule["spec"] == yaml.safe_load(mon.RULES_FILE.read_text())
    reg = pi_k3s.get("kubernetes:monitoring.coreos.com/v1:PrometheusRule", "monitoring-alert-rules")
    assert "kubernetes:helm.sh/v3:Release::monitoring-kube-prometheus-stack" in reg.depends_on


def test_every_required_alert_exists() -> None:
    names = {r["alert"] for g in mon.load_rules()["groups"] for r in g["rules"]}
    assert {
        "PiholeDown",
        "UnboundDown",
        "DnsQueriesFailing",
        "BackupJobFailed",
        "BackupStale",
        "ExternalSecretNotSynced",
        "CertificateExpiringSoon",
        "NodeMemoryPressure",
        "PodCrashLooping",
    } <= names


def test_rules_pass_promtool_check() -> None:
    promtool = require_tool("promtool")
    out = subprocess.run([promtool, "check", "rules", str(mon.RULES_FILE)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_check_catches_a_bad_expression(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    bad = tmp_path / "rules.yaml"
    bad.write_text("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: up ==\n")
    out = subprocess.run([promtool, "check", "rules", str(bad)], capture_output=True, text=True)
    assert out.returncode != 0


def test_rule_unit_tests_fire_and_stay_quiet() -> None:
    promtool = require_tool("promtool")
    out = subprocess.run(
        [promtool, "test", "rules", RULES_TEST.name], cwd=RULES_TEST.parent, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    tests = yaml.safe_load(RULES_TEST.read_text())["tests"]
    checks = [c for t in tests for c in t["alert_rule_test"]]
    assert any(c["exp_alerts"] for c in checks) and any(not c["exp_alerts"] for c in checks)


def test_rule_unit_test_fails_when_an_alert_would_not_fire(tmp_path: Path) -> None:
    """A healthy Pi-hole must not satisfy an expectation that PiholeDown fires."""
    promtool = require_tool("promtool")
    (tmp_path / "rules.yaml").write_text(mon.RULES_FILE.read_text())
    (tmp_path / "t.yaml").write_text(
        yaml.safe_dump(
            {
                "rule_files": ["rules.yaml"],
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": [
                            {
                                "series": 'kube_deployment_status_replicas_available{namespace="pihole", '
                                'deployment="pihole"}',
                                "values": "1x10",
                            }
                        ],
                        "alert_rule_test": [
                            {
                                "eval_time": "8m",
                                "alertname": "PiholeDown",
                                "exp_alerts": [{"exp_labels": {"severity": "critical"}}],
                            }
                        ],
                    }
                ],
            }
        )
    )
    out = subprocess.run([promtool, "test", "rules", "t.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode != 0


def _amtool_check(amtool: str, config: dict[str, Any], path: Path) -> subprocess.CompletedProcess[str]:
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True)


# --- Alertmanager's configuration, as prometheus-operator v0.87.1 reads it ----------------------

OPERATOR_MODULE = "github.com/prometheus-operator/prometheus-operator"
TEST_WEBHOOK = "https://discord.invalid/api/webhooks/0/amcfg-check"


def _config_secret(run: mockrun.Result) -> dict[str, Any]:
    values = _values(run)["alertmanager"]["alertmanagerSpec"]
    return run.manifest("ExternalSecret", values["configSecret"], "monitoring")


def _rendered_template(run: mockrun.Result) -> str:
    return _config_secret(run)["spec"]["target"]["template"]["data"][mon.ALERTMANAGER_CONFIG_KEY]


@pytest.fixture(scope="module")
def amcfg_check() -> Path:
    """prometheus-operator's own configuration loader (tests/tools/amcfg-check), built once."""
    from tests import gotools

    return gotools.build("amcfg-check")


def _operator_load(
    tool: Path, text: str, tmp_path: Path, webhook: str | None = TEST_WEBHOOK
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "alertmanager.yaml"
    path.write_text(text)
    data = ["-data", f"{mon.DISCORD_KEY}={webhook}"] if webhook else []
    return subprocess.run(
        [str(tool), "-version", mon.ALERTMANAGER_VERSION, *data, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_alertmanager_reads_its_config_from_the_external_secret(pi_k3s: mockrun.Result) -> None:
    am = _values(pi_k3s)["alertmanager"]
    assert "config" not in am  # the chart's own configuration Secret is not rendered
    assert am["alertmanagerSpec"]["useExistingSecret"] is True
    assert am["alertmanagerSpec"]["configSecret"] == mon.ALERTMANAGER_CONFIG_SECRET
    es = _config_secret(pi_k3s)["spec"]
    assert es["target"]["name"] == mon.ALERTMANAGER_CONFIG_SECRET
    assert es["target"]["template"]["engineVersion"] == "v2"
    assert list(es["target"]["template"]["data"]) == ["alertmanager.yaml"]
    assert es["data"] == [{"secretKey": "webhook", "remoteRef": {"key": mon.DISCORD_WEBHOOK_REF}}]
    text = _rendered_template(pi_k3s)
    assert "webhook_url_file" not in text and "discord.com" not in text
    reg = pi_k3s.get(RELEASE_TYPE, "monitoring-kube-prometheus-stack")
    assert any(d.endswith("monitoring-alertmanager-config-externalsecret") for d in reg.depends_on)


@pytest.mark.charts
def test_chart_runs_the_operator_and_alertmanager_the_checker_models(
    pi_k3s: mockrun.Result, tmp_path: Path
) -> None:
    """kube-prometheus-stack 80.6.0 ships prometheus-operator v0.87.1 (Chart.yaml appVersion) and
    Alertmanager v0.30.0 (values.yaml): the versions tests/tools/amcfg-check pins and passes."""
    import tarfile

    from tools import helm

    chart = pi_k3s.program["settings"].monitoring.chart
    package = helm.package(chart.chart, chart.version, chart.repo, tmp_path)
    with tarfile.open(package) as tar:
        meta = yaml.safe_load(tar.extractfile(f"{chart.chart}/Chart.yaml").read())  # type: ignore[union-attr]
        values = yaml.safe_load(tar.extractfile(f"{chart.chart}/values.yaml").read())  # type: ignore[union-attr]
    go_mod = (mon.CONFIG_DIR.parent / "tests" / "tools" / "amcfg-check" / "go.mod").read_text()
    assert f"{OPERATOR_MODULE} {meta['appVersion']}\n" in go_mod
    assert values["alertmanager"]["alertmanagerSpec"]["image"]["tag"] == mon.ALERTMANAGER_VERSION


def test_operator_accepts_the_rendered_config(
    pi_k3s: mockrun.Result, amcfg_check: Path, tmp_path: Path
) -> None:
    """The template as ESO fills it, through the operator's loader; then amtool on the
    configuration the operator generates (the file Alertmanager reads)."""
    out = _operator_load(amcfg_check, _rendered_template(pi_k3s), tmp_path)
    assert out.returncode == 0, out.stderr
    generated = yaml.safe_load(out.stdout)
    discord = next(r for r in generated["receivers"] if r["name"] == "discord")["discord_configs"][0]
    assert discord == {"webhook_url": TEST_WEBHOOK, "send_resolved": True}
    assert generated["route"]["receiver"] == "discord"
    amtool = require_tool("amtool")
    check = _amtool_check(amtool, generated, tmp_path / "generated.yaml")
    assert check.returncode == 0, check.stdout + check.stderr


def test_operator_rejects_a_field_it_does_not_know(
    pi_k3s: mockrun.Result, amcfg_check: Path, tmp_path: Path
) -> None:
    """The old receiver (webhook_url_file) fails in the operator exactly as on a cluster."""
    config = yaml.safe_load(_rendered_template(pi_k3s))
    discord = next(r for r in config["receivers"] if r["name"] == "discord")["discord_configs"][0]
    del discord["webhook_url"]
    discord["webhook_url_file"] = "/etc/alertmanager/secrets/alertmanager-discord/webhook-url"
    out = _operator_load(amcfg_check, yaml.safe_dump(config), tmp_path, webhook=None)
    assert out.returncode == 1
    assert "field webhook_url_file not found in type alertmanager.discordConfig" in out.stderr
    assert out.stdout == ""


def test_operator_checker_fails_on_a_missing_template_value(
    pi_k3s: mockrun.Result, amcfg_check: Path, tmp_path: Path
) -> None:
    path = tmp_path / "alertmanager.yaml"
    path.write_text(_rendered_template(pi_k3s))
    out = subprocess.run(
        [str(amcfg_check), "-version", mon.ALERTMANAGER_VERSION, "-data", "other=x", str(path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and 'map has no entry for key "webhook"' in out.stderr


def test_template_holds_no_action_but_the_webhook() -> None:
    config = mon.alertmanager_config()
    config["receivers"][1]["discord_configs"][0]["title"] = "{{ .CommonLabels.alertname }}"
    with pytest.raises(ValueError, match="no template action but the webhook"):
        mon.alertmanager_template(config)


def test_amtool_rejects_a_route_to_a_missing_receiver(tmp_path: Path) -> None:
    amtool = require_tool("amtool")
    config = mon.alertmanager_config()
    config["route"]["receiver"] = "nobody"
    assert _amtool_check(amtool, config, tmp_path / "bad.yaml").returncode != 0


def test_amtool_rejects_the_old_receiver(tmp_path: Path) -> None:
    """Debian's amtool complained about webhook_url_file too; the program changed, not the test."""
    amtool = require_tool("amtool")
    config = mon.alertmanager_config()
    config["receivers"][1]["discord_configs"][0] = {"webhook_url_file": "/x", "send_resolved": True}
    out = _amtool_check(amtool, config, tmp_path / "old.yaml")
    assert out.returncode != 0 and "webhook_url_file" in out.stdout + out.stderr


def test_one_service_monitor_per_target_after_the_release(pi_k3s: mockrun.Result) -> None:
    monitors = pi_k3s.by_type("kubernetes:monitoring.coreos.com/v1:ServiceMonitor")
    assert "scrape-external-secrets-external-secrets" in [m.name for m in monitors]
    for reg in monitors:
        assert "kubernetes:helm.sh/v3:Release::monitoring-kube-prometheus-stack" in reg.depends_on
        assert reg.parent == "pi-cluster:monitoring:ServiceMonitors::scrape"
    eso = pi_k3s.manifest("ServiceMonitor", "external-secrets", "external-secrets")
    assert eso["spec"]["selector"]["matchLabels"] == dict(METRICS_TARGET.selector)
    assert eso["spec"]["endpoints"][0]["port"] == "metrics"


def test_service_monitor_derivation_for_synthetic_targets() -> None:
    registry = MetricsRegistry()
    registry.add(METRICS_TARGET)
    exporter = registry.add(
        ScrapeTarget(
            name="pihole-exporter",
            namespace="pihole",
            selector={"app.kubernetes.io/name": "pihole-exporter"},
            port="metrics",
            interval="60s",
            labels={"service": "dns"},
        )
    )
    targets = registry.freeze()
    manifests = [mon.service_monitor(t) for t in targets]
    assert [(m["metadata"]["namespace"], m["metadata"]["name"]) for m in manifests] == [
        ("external-secrets", "external-secrets"),
        ("pihole", "pihole-exporter"),
    ]
    endpoint = manifests[1]["spec"]["endpoints"][0]
    assert endpoint["interval"] == "60s" and manifests[1]["spec"]["namespaceSelector"] == {
        "matchNames": ["pihole"]
    }
    labels = {r["targetLabel"]: r["replacement"] for r in endpoint["relabelings"]}
    assert labels == {"service": "dns", "job": exporter.name}
    with pytest.raises(ValueError, match="after the ServiceMonitors were derived"):
        registry.add(ScrapeTarget(name="late", namespace="x", selector={"a": "b"}, port="m"))


def test_synthetic_service_monitor_matches_the_crd_schema() -> None:
    from tests.test_manifests import validate_custom

    schemas = crd_schema_dir()
    target = ScrapeTarget(name="unbound", namespace="pihole", selector={"app": "unbound"}, port="metrics")
    validate_custom(mon.service_monitor(target), schemas)


def test_retention_size_larger_than_the_volume_is_rejected(stack_values: dict[str, Any]) -> None:
    raw = {k.split(":", 1)[1]: v for k, v in stack_values.items()}
    raw["monitoring"] = {**raw["monitoring"], "retentionSize": "6GB"}
    with pytest.raises(SettingsError, match=r"pi-cluster:monitoring.retentionSize: '6GB'"):
        parse(raw)
    raw["monitoring"] = {**raw["monitoring"], "retentionSize": "2 gigs"}
    with pytest.raises(SettingsError, match=r"pi-cluster:monitoring.retentionSize: .*'2 gigs'"):
        parse(raw)

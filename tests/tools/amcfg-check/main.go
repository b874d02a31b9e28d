// Command amcfg-check loads an Alertmanager configuration with prometheus-operator's own code,
// the way the operator of kube-prometheus-stack 80.6.0 (prometheus-operator v0.87.1) does
// before it provisions Alertmanager, and fails on what the operator rejects.
//
// The chart always sets alertmanagerConfigSelector (templates/alertmanager/alertmanager.yaml),
// so the operator takes the path of pkg/alertmanager/operator.go provisionAlertmanagerConfiguration
// that builds the configuration: NewConfigBuilder, InitializeFromRawConfiguration (upstream
// config.Load, then yaml.UnmarshalStrict into the operator's own types: pkg/alertmanager/amcfg.go
// alertmanagerConfigFromBytes), AddAlertmanagerConfigs (no AlertmanagerConfig objects here,
// then sanitize for the Alertmanager version), MarshalJSON. The operator logs the error and
// never writes the generated configuration: Alertmanager does not start.
//
// The input may be an External Secrets template (its keys filled like ESO's v2 engine:
// text/template with missingkey=error) when -data gives the values.
//
// Usage: amcfg-check -version v0.30.0 [-data key=value]... alertmanager.yaml
// Prints the configuration the operator would generate; exits 1 when the operator rejects it.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"text/template"

	"github.com/blang/semver/v4"
	"github.com/prometheus-operator/prometheus-operator/pkg/alertmanager"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	monitoringv1alpha1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1alpha1"
	"github.com/prometheus-operator/prometheus-operator/pkg/assets"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

type values map[string]string

func (v values) String() string { return fmt.Sprint(map[string]string(v)) }

func (v values) Set(s string) error {
	key, value, ok := strings.Cut(s, "=")
	if !ok || key == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	v[key] = value
	return nil
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "amcfg-check: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	version := flag.String("version", "", "Alertmanager version the operator runs (Alertmanager spec.version)")
	namespace := flag.String("namespace", "monitoring", "namespace of the Alertmanager object")
	name := flag.String("name", "alertmanager", "name of the Alertmanager object")
	data := values{}
	flag.Var(data, "data", "ESO template value key=value (repeatable); the input is then a template")
	flag.Parse()
	if flag.NArg() != 1 || *version == "" {
		fmt.Fprintln(os.Stderr, "usage: amcfg-check -version vX.Y.Z [-data key=value]... alertmanager.yaml")
		os.Exit(2)
	}
	raw, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		fail("%v", err)
	}
	if len(data) > 0 {
		t, err := template.New(flag.Arg(0)).Option("missingkey=error").Parse(string(raw))
		if err != nil {
			fail("template: %v", err)
		}
		var out bytes.Buffer
		if err := t.Execute(&out, map[string]string(data)); err != nil {
			fail("template: %v", err)
		}
		raw = out.Bytes()
	}

	// provisionAlertmanagerConfiguration: the version the operator accepts.
	amVersion, err := semver.ParseTolerant(*version)
	if err != nil {
		fail("failed to parse alertmanager version: %v", err)
	}
	if amVersion.LT(semver.MustParse("0.15.0")) || amVersion.Major > 0 {
		fail("unsupported Alertmanager version %q", *version)
	}

	kclient := fake.NewClientset() // a raw configuration reads no Secret or ConfigMap
	am := &monitoringv1.Alertmanager{
		ObjectMeta: metav1.ObjectMeta{Name: *name, Namespace: *namespace},
		Spec: monitoringv1.AlertmanagerSpec{
			Version:                    *version,
			AlertmanagerConfigSelector: &metav1.LabelSelector{},
		},
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cb := alertmanager.NewConfigBuilder(logger, amVersion, assets.NewStoreBuilder(kclient.CoreV1(), kclient.CoreV1()), am)
	if err := cb.InitializeFromRawConfiguration(raw); err != nil {
		fail("failed to initialize from secret: %v", err)
	}
	if err := cb.AddAlertmanagerConfigs(context.Background(), map[string]*monitoringv1alpha1.AlertmanagerConfig{}); err != nil {
		fail("failed to generate Alertmanager configuration: %v", err)
	}
	generated, err := cb.MarshalJSON()
	if err != nil {
		fail("failed to marshal configuration: %v", err)
	}
	os.Stdout.Write(generated)
}

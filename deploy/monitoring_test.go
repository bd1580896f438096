// Package deploy_test checks what deploy/ gives Prometheus and Grafana:
// the alert rules and the dashboard name only metrics cafe exports, and
// the rules fire as their unit tests (cafe-alerts.test.yml) say, when
// promtool is at hand.
package deploy_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

var metricName = regexp.MustCompile(`cafe_[a-z0-9_]+`)

// exported is every cafe_* metric name in the code (string literals
// outside tests), with a histogram's _bucket, _sum and _count.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	lit := regexp.MustCompile(`"(cafe_[a-z0-9_]+)"`)
	names := map[string]bool{}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "tools" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		for _, m := range lit.FindAllSubmatch(src, -1) {
			n := string(m[1])
			names[n] = true
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[n+suffix] = true
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !names["cafe_queue_messages"] || !names["cafe_barista_breakers_open"] {
		t.Fatalf("found %d metric names, not the ones expected; is the walk looking in the right place?", len(names))
	}
	return names
}

func checkNames(t *testing.T, where, expr string, known map[string]bool) {
	t.Helper()
	names := metricName.FindAllString(expr, -1)
	if len(names) == 0 {
		t.Errorf("%s: %q names no cafe metric", where, expr)
	}
	for _, n := range names {
		if !known[n] {
			t.Errorf("%s: %s is not a metric cafe exports", where, n)
		}
	}
}

type rules struct {
	Groups []struct {
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func TestAlertRulesNameExportedMetrics(t *testing.T) {
	known := exported(t)
	data, err := os.ReadFile("prometheus/cafe-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var r rules
	if err := yaml.Unmarshal(data, &r); err != nil {
		t.Fatalf("cafe-alerts.yml: %v", err)
	}
	want := map[string]bool{"CafeBacklogGrowing": true, "CafeOldestCommandTooOld": true, "CafeDeadLettersRising": true,
		"CafeNoConsumers": true, "CafeBreakersOpening": true, "CafeResultsUndeliverable": true}
	for _, g := range r.Groups {
		for _, rule := range g.Rules {
			delete(want, rule.Alert)
			checkNames(t, rule.Alert, rule.Expr, known)
			if rule.Labels["severity"] == "" || rule.Annotations["summary"] == "" || rule.Annotations["description"] == "" {
				t.Errorf("%s: want a severity label and a summary and description saying what to do", rule.Alert)
			}
		}
	}
	if len(want) > 0 {
		t.Errorf("alerts missing: %v", want)
	}
}

func TestDashboardNamesExportedMetrics(t *testing.T) {
	known := exported(t)
	data, err := os.ReadFile("grafana/cafe-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil || d.Title == "" || len(d.Panels) < 10 {
		t.Fatalf("cafe-dashboard.json: %v (%d panels)", err, len(d.Panels))
	}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			checkNames(t, "panel "+p.Title, q.Expr, known)
		}
	}
}

// TestAlertRulesFireOnRecordedSeries runs promtool (Debian's prometheus
// package has it; $CAFE_PROMTOOL names another). It is not pinned in
// deploy/tools: building it from source pulls in Prometheus' service
// discovery (cloud and Kubernetes SDKs) and took over ten minutes here.
func TestAlertRulesFireOnRecordedSeries(t *testing.T) {
	tool := os.Getenv("CAFE_PROMTOOL")
	if tool == "" {
		p, err := exec.LookPath("promtool")
		if err != nil {
			t.Skip("promtool is not on PATH (apt-get install prometheus, or set CAFE_PROMTOOL): the rules' unit tests cannot run")
		}
		tool = p
	}
	for _, args := range [][]string{{"check", "rules", "cafe-alerts.yml"}, {"test", "rules", "cafe-alerts.test.yml"}} {
		cmd := exec.Command(tool, args...)
		cmd.Dir = "prometheus"
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

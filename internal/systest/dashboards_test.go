package systest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tributary-io/tributary/internal/testkit"
)

var metricName = regexp.MustCompile(`\btributary_[a-z0-9_]+`)

// decodeFile reads the file at path into v with unmarshal (JSON or YAML).
func decodeFile(t *testing.T, path string, unmarshal func([]byte, any) error, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// dashboardExprs collects every PromQL expression of a Grafana dashboard
// (panel targets, also inside rows) and its variable queries.
func dashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	var d struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Query any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	decodeFile(t, path, json.Unmarshal, &d)
	type panel struct {
		Title   string            `json:"title"`
		Panels  []json.RawMessage `json:"panels"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	}
	var out []string
	var walk func([]json.RawMessage)
	walk = func(ps []json.RawMessage) {
		for _, raw := range ps {
			var p panel
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if len(p.Targets) == 0 && len(p.Panels) == 0 {
				t.Errorf("%s: panel %q has no queries", path, p.Title)
			}
			for _, tg := range p.Targets {
				out = append(out, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			if s, ok := q["query"].(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

func alertExprs(t *testing.T, path string) []string {
	t.Helper()
	var f struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	decodeFile(t, path, yaml.Unmarshal, &f)
	var out []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: rule %q in %s lacks a name, expression or summary", path, r.Alert, g.Name)
			}
			out = append(out, r.Expr)
		}
	}
	return out
}

// TestDashboardAndAlertMetricsExist: every tributary_* metric named by
// the Grafana dashboards and the alert rules is on the /metrics of the
// daemon that exports it (tributary_core_* on the core, tributary_edge_*
// and tributary_bridge_* on the edge, which runs the bridge,
// tributary_storage_* on both) while the
// system runs with traffic, a consumer group, a refused and a dead-lettered
// publish, and bridge retries from starting before the core.
func TestDashboardAndAlertMetricsExist(t *testing.T) {
	t.Parallel()
	sys := Start(t, Options{MaxPayloadBytes: 4096})
	sys.Traffic([]string{"sensors", "machines"}, []string{"d1", "d2"}, 20)
	sys.ConsumeAndCommit("analytics", "sensors", 40)
	sys.Traffic([]string{"sensors"}, []string{"d1"}, 5) // lag for the group
	if err := sys.Publish("sensors/d9/env", []byte("\xff\xfe not a reading")); err != nil {
		t.Fatalf("publish garbage: %v", err) // kept in sensors.dlq and acknowledged
	}
	sys.PublishQoS0("sensors/d1/env", []byte(strings.Repeat("x", 5000))) // over max_payload_bytes: refused
	testkit.Eventually(t, 10*time.Second, "a refused and a dead-lettered publish counted", func() bool {
		c := sys.Edge.Ingest().Counts()
		return c.DeadLetters >= 1 && c.Refused["oversized"] >= 1
	})
	testkit.Eventually(t, 10*time.Second, "the group's lag on the core", func() bool {
		for _, l := range sys.Core.GroupLags() {
			if l.Group == "analytics" && l.Lag > 0 {
				return true
			}
		}
		return false
	})

	core := Scrape(t, sys.Core.HTTPAddr())
	edge := Scrape(t, sys.Edge.HTTPAddr())
	deploy := filepath.Join("..", "..", "deploy")
	files := map[string][]string{}
	dashboards, _ := filepath.Glob(filepath.Join(deploy, "grafana", "*.json"))
	if len(dashboards) < 3 {
		t.Fatalf("dashboards: %v, want core, edge and bridge", dashboards)
	}
	for _, p := range dashboards {
		files[p] = dashboardExprs(t, p)
	}
	alerts := filepath.Join(deploy, "prometheus", "alerts.yaml")
	files[alerts] = alertExprs(t, alerts)

	scraped := map[string]map[string]bool{"core": core, "edge": edge}
	checked := map[string]bool{}
	for path, exprs := range files {
		for _, e := range exprs {
			for _, name := range metricName.FindAllString(e, -1) {
				var daemons []string
				switch {
				case strings.HasPrefix(name, "tributary_core_"):
					daemons = []string{"core"}
				case strings.HasPrefix(name, "tributary_storage_"):
					daemons = []string{"core", "edge"}
				default:
					daemons = []string{"edge"}
				}
				for _, daemon := range daemons {
					if !scraped[daemon][name] {
						t.Errorf("%s: %s is not on the %s's /metrics (in %s)", filepath.Base(path), name, daemon, e)
					}
				}
				checked[name] = true
			}
		}
	}
	names := make([]string, 0, len(checked))
	for n := range checked {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("%d metrics referenced and present: %s", len(names), strings.Join(names, " "))
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/gen"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/pipeline"
)

// describing is a Registerer that keeps the descriptors of everything registered through it,
// so the metrics of vectors that have no series yet are known too.
type describing struct {
	*prometheus.Registry
	descs []*prometheus.Desc
}

func (d *describing) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	for desc := range ch {
		d.descs = append(d.descs, desc)
	}
	return d.Registry.Register(c)
}

func (d *describing) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := d.Register(c); err != nil {
			panic(err)
		}
	}
}

// exported is one metric sluice registers: its labels (variable and constant, sorted) and, when
// a series of it was gathered, its type.
type exported struct {
	labels []string
	typ    string
}

var descRE = regexp.MustCompile(`fqName: "([^"]*)".*constLabels: \{([^}]*)\}, variableLabels: \{([^}]*)\}`)

// exportedMetrics runs a pipeline once, the way `sluice run` wires it (newOps, every stage, the
// output bucket, an S3 bucket), and returns every sluice_* metric registered.
func exportedMetrics(t *testing.T) map[string]exported {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := bustest.New(t)
	reg := &describing{Registry: prometheus.NewRegistry()}
	if _, err := newOps(b, reg, reg.Registry); err != nil {
		t.Fatal(err)
	}
	env, err := pipeline.NewEnv(ctx, b, nil, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	dir := t.TempDir()
	cfg := gen.DefaultConfig()
	cfg.Out, cfg.Days, cfg.Archives, cfg.Tables, cfg.RowsPerMember = filepath.Join(dir, "landing"), 1, 1, 2, 50
	if _, err := gen.Generate(cfg); err != nil {
		t.Fatal(err)
	}
	o := pipeline.Options{Landing: cfg.Out, Out: filepath.Join(dir, "out"), Once: true, SpillDir: t.TempDir(), MemoryBudget: 64 << 20}
	res, err := pipeline.Run(ctx, env, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Code != 0 {
		t.Fatalf("run --once: code %d %v", res.Code, res.Findings)
	}
	// An S3 location registers the S3 retry counter when it is opened (no request is made).
	if _, err := env.Bucket(ctx, "s3://sluice-metrics-doc/x", objstore.Options{Endpoint: "http://127.0.0.1:1", PathStyle: true}); err != nil {
		t.Fatal(err)
	}

	out := map[string]exported{}
	for _, d := range reg.descs {
		m := descRE.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("descriptor %s: unexpected form", d)
		}
		if !strings.HasPrefix(m[1], "sluice_") {
			continue
		}
		var labels []string
		for _, kv := range strings.Split(m[2], ",") {
			if name, _, ok := strings.Cut(kv, "="); ok {
				labels = append(labels, name)
			}
		}
		for _, l := range strings.Split(m[3], ",") {
			if l != "" {
				labels = append(labels, l)
			}
		}
		slices.Sort(labels)
		out[m[1]] = exported{labels: labels}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		e, ok := out[mf.GetName()]
		if !ok {
			if strings.HasPrefix(mf.GetName(), "sluice_") {
				t.Errorf("%s is exported but was registered without a descriptor", mf.GetName())
			}
			continue
		}
		e.typ = strings.ToLower(mf.GetType().String())
		out[mf.GetName()] = e
	}
	return out
}

// documented are the rows of the metric tables of docs/OPERATIONS.md.
type documented struct {
	typ    string
	labels []string
}

func documentedMetrics(t *testing.T) map[string]documented {
	t.Helper()
	raw, err := os.ReadFile("../../docs/OPERATIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]documented{}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "| `sluice_") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 5 {
			t.Fatalf("OPERATIONS.md: metric row without name, type, labels, meaning: %s", line)
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if _, dup := out[name]; dup {
			t.Errorf("OPERATIONS.md: %s documented twice", name)
		}
		var labels []string
		for _, l := range strings.Split(cells[3], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" {
				labels = append(labels, l)
			}
		}
		slices.Sort(labels)
		if strings.TrimSpace(cells[4]) == "" {
			t.Errorf("OPERATIONS.md: %s has no meaning", name)
		}
		out[name] = documented{typ: strings.TrimSpace(cells[2]), labels: labels}
	}
	if len(out) == 0 {
		t.Fatal("OPERATIONS.md: no metric table")
	}
	return out
}

// TestMetricsDocumentedAndDeployed: every sluice_* metric a running pipeline registers is in
// docs/OPERATIONS.md with its type and labels, every documented metric is registered, and every
// metric the alert rules and the Grafana dashboard under deploy/ query is one sluice exports.
func TestMetricsDocumentedAndDeployed(t *testing.T) {
	exp := exportedMetrics(t)
	doc := documentedMetrics(t)

	t.Run("docs", func(t *testing.T) {
		// The pipeline ran: the JetStream collector read the consumers, the stages counted.
		for _, name := range []string{"sluice_consumer_pending_messages", "sluice_dlq_messages", "sluice_build_info",
			"sluice_extractor_csv_bytes_total", "sluice_summarizer_last_commit_timestamp_seconds", "sluice_merger_commit_seconds"} {
			if exp[name].typ == "" {
				t.Errorf("%s has no series after a run", name)
			}
		}
		for name, e := range exp {
			d, ok := doc[name]
			switch {
			case !ok:
				t.Errorf("%s (labels %v) is exported but not documented in docs/OPERATIONS.md", name, e.labels)
			case !slices.Equal(d.labels, e.labels):
				t.Errorf("%s: documented labels %v, exported %v", name, d.labels, e.labels)
			case e.typ != "" && d.typ != e.typ:
				t.Errorf("%s: documented as %s, exported as %s", name, d.typ, e.typ)
			}
		}
		for name := range doc {
			if _, ok := exp[name]; !ok {
				t.Errorf("%s is documented in docs/OPERATIONS.md but sluice does not export it", name)
			}
		}
	})

	// known resolves a name a query uses to the metric sluice exports.
	known := func(name string) bool {
		if _, ok := exp[name]; ok {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && doc[base].typ == "histogram" {
				_, ok := exp[base]
				return ok
			}
		}
		return false
	}

	t.Run("alerts", func(t *testing.T) {
		var rules struct {
			Groups []struct {
				Name  string `yaml:"name"`
				Rules []struct {
					Alert       string            `yaml:"alert"`
					Expr        string            `yaml:"expr"`
					For         string            `yaml:"for"`
					Labels      map[string]string `yaml:"labels"`
					Annotations map[string]string `yaml:"annotations"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		readYAML(t, "../../deploy/prometheus/alerts.yml", &rules)
		alerts := map[string]bool{}
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" || alerts[r.Alert] {
					t.Errorf("group %s: alert name %q empty or repeated", g.Name, r.Alert)
				}
				alerts[r.Alert] = true
				if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
					t.Errorf("%s: wants a severity label, a summary and a description", r.Alert)
				}
				if r.For != "" {
					if _, err := time.ParseDuration(r.For); err != nil {
						t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
					}
				}
				checkQuery(t, r.Alert, r.Expr, known)
			}
		}
		// The conditions the operators asked for (issue #13).
		for _, want := range []string{"SluicePartitionStalled", "SluiceLagGrowing", "SluiceDeadLetters", "SluiceArchivesFailed",
			"SluiceMissingSources", "SluiceDataQualityFailed"} {
			if !alerts[want] {
				t.Errorf("alerts.yml has no %s", want)
			}
		}
	})

	t.Run("dashboard", func(t *testing.T) {
		raw, err := os.ReadFile("../../deploy/grafana/dashboards/sluice.json")
		if err != nil {
			t.Fatal(err)
		}
		type panel struct {
			ID         int    `json:"id"`
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource *struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
			Panels []json.RawMessage `json:"panels"`
		}
		var dash struct {
			UID    string  `json:"uid"`
			Panels []panel `json:"panels"`
		}
		if err := json.Unmarshal(raw, &dash); err != nil {
			t.Fatalf("sluice.json: %v", err)
		}
		var ds struct {
			Datasources []struct {
				UID string `yaml:"uid"`
			} `yaml:"datasources"`
		}
		readYAML(t, "../../deploy/grafana/provisioning/datasources/prometheus.yml", &ds)
		if dash.UID == "" || len(ds.Datasources) != 1 {
			t.Fatalf("dashboard uid %q, %d provisioned datasources", dash.UID, len(ds.Datasources))
		}
		ids, queries := map[int]bool{}, 0
		var exprs []string
		for _, p := range dash.Panels {
			if ids[p.ID] {
				t.Errorf("panel id %d repeated", p.ID)
			}
			ids[p.ID] = true
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != ds.Datasources[0].UID {
				t.Errorf("panel %q: datasource is not the provisioned %q", p.Title, ds.Datasources[0].UID)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, q := range p.Targets {
				queries++
				checkQuery(t, p.Title, q.Expr, known)
				exprs = append(exprs, strings.ReplaceAll(q.Expr, "$__rate_interval", "5m"))
			}
		}
		if queries == 0 {
			t.Fatal("no queries in the dashboard")
		}
		// promtool, where installed, parses every query (as recording rules of a scratch file).
		if promtool := lookPromtool(t); promtool != "" {
			type rule struct {
				Record string `yaml:"record"`
				Expr   string `yaml:"expr"`
			}
			var rules []rule
			for i, e := range exprs {
				rules = append(rules, rule{Record: fmt.Sprintf("dashboard:query_%d", i), Expr: e})
			}
			raw, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
			if err := os.WriteFile(path, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
				t.Errorf("promtool check rules (dashboard queries): %v\n%s", err, out)
			}
		}
	})

	t.Run("prometheus", func(t *testing.T) {
		var cfg struct {
			RuleFiles     []string `yaml:"rule_files"`
			ScrapeConfigs []struct {
				StaticConfigs []struct {
					Targets []string `yaml:"targets"`
				} `yaml:"static_configs"`
				DNSSDConfigs []struct {
					Names []string `yaml:"names"`
					Type  string   `yaml:"type"`
					Port  int      `yaml:"port"`
				} `yaml:"dns_sd_configs"`
			} `yaml:"scrape_configs"`
		}
		readYAML(t, "../../deploy/prometheus/prometheus.yml", &cfg)
		if !slices.Contains(cfg.RuleFiles, "/etc/prometheus/alerts.yml") {
			t.Errorf("rule_files %v: want /etc/prometheus/alerts.yml", cfg.RuleFiles)
		}
		var targets []string
		for _, sc := range cfg.ScrapeConfigs {
			for _, s := range sc.StaticConfigs {
				targets = append(targets, s.Targets...)
			}
			for _, d := range sc.DNSSDConfigs { // every replica of a scaled service
				for _, n := range d.Names {
					if d.Type == "A" {
						targets = append(targets, fmt.Sprintf("%s:%d", n, d.Port))
					}
				}
			}
		}
		for _, stage := range []string{"producer", "extractor", "merger", "summarizer"} {
			if !slices.Contains(targets, stage+":9090") {
				t.Errorf("no scrape target %s:9090 in %v", stage, targets)
			}
		}
		// promtool, where installed, checks the PromQL itself (this test's tokenizer only knows
		// names and brackets).
		if promtool := lookPromtool(t); promtool != "" {
			if out, err := exec.Command(promtool, "check", "rules", "../../deploy/prometheus/alerts.yml").CombinedOutput(); err != nil {
				t.Errorf("promtool check rules: %v\n%s", err, out)
			}
			// The alerts' unit tests: synthetic series in, the alerts (labels, annotations) out.
			test := exec.Command(promtool, "test", "rules", "alerts_test.yml")
			test.Dir = "../../deploy/prometheus"
			if out, err := test.CombinedOutput(); err != nil {
				t.Errorf("promtool test rules: %v\n%s", err, out)
			}
		}
	})
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

var (
	quotedRE = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	nameRE   = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
)

// checkQuery checks a PromQL expression's brackets and that every sluice_* metric it names is
// exported. Quoted strings (label values, regexes) are dropped first; a sluice_ identifier
// elsewhere is a metric name (sluice's label names never start with sluice_).
func checkQuery(t *testing.T, where, expr string, known func(string) bool) {
	t.Helper()
	if strings.TrimSpace(expr) == "" {
		t.Errorf("%s: empty query", where)
		return
	}
	bare := quotedRE.ReplaceAllString(expr, `""`)
	var stack []rune
	for _, r := range bare {
		switch r {
		case '(', '{', '[':
			stack = append(stack, r)
		case ')', '}', ']':
			open := map[rune]rune{')': '(', '}': '{', ']': '['}[r]
			if len(stack) == 0 || stack[len(stack)-1] != open {
				t.Errorf("%s: unbalanced %q in %s", where, r, expr)
				return
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		t.Errorf("%s: unclosed %q in %s", where, stack, expr)
	}
	names := 0
	for _, name := range nameRE.FindAllString(bare, -1) {
		if !strings.HasPrefix(name, "sluice_") {
			continue
		}
		names++
		if !known(name) {
			t.Errorf("%s: %s is not a metric sluice exports", where, name)
		}
	}
	if names == 0 && !strings.Contains(expr, "up{") {
		t.Errorf("%s: the query names no sluice metric: %s", where, expr)
	}
}

// lookPromtool returns promtool's path, or "" when it is not installed; with
// SLUICE_REQUIRE_PROMTOOL=1 (make test, which installs it) a missing promtool fails the test.
func lookPromtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("SLUICE_REQUIRE_PROMTOOL") == "1" {
			t.Fatalf("promtool is required (SLUICE_REQUIRE_PROMTOOL=1): %v", err)
		}
		return ""
	}
	return p
}

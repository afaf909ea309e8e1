package main

import (
	"flag"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"go.yaml.in/yaml/v3"
)

// No Docker engine runs here, so compose.yaml is checked with the parsers its services use:
// nats-server's own command-line and config parsing for the NATS nodes, sluice's flag sets for
// the stages. A flag or option that does not exist fails these tests.

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	User        string            `yaml:"user"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Profiles    []string          `yaml:"profiles"`
	DependsOn   any               `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

const repoRoot = "../.."

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc composeFile
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("compose.yaml is not valid YAML: %v", err)
	}
	return doc
}

func (s composeService) isNATS() bool   { return strings.HasPrefix(s.Image, "nats:") }
func (s composeService) isSluice() bool { return s.Image == "sluice:latest" }

// natsServices returns the names of the NATS nodes, sorted.
func (d composeFile) natsServices() []string {
	var names []string
	for name, s := range d.Services {
		if s.isNATS() {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// mounts maps a service's bind-mounted container paths to host paths (relative to the repo root),
// and lists its named-volume mount points.
func (s composeService) mounts(t *testing.T, named map[string]any) (binds map[string]string, volumes []string) {
	t.Helper()
	binds = map[string]string{}
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		switch {
		case len(parts) == 1: // anonymous volume
			volumes = append(volumes, parts[0])
		case strings.HasPrefix(parts[0], "./"):
			binds[parts[1]] = filepath.Join(repoRoot, parts[0])
		default:
			if _, ok := named[parts[0]]; !ok {
				t.Errorf("volume %q is not declared under volumes:", parts[0])
			}
			volumes = append(volumes, parts[1])
		}
	}
	return binds, volumes
}

// hostPath maps a container path through the service's bind mounts (a file or below a directory).
func hostPath(binds map[string]string, p string) (string, bool) {
	for c, h := range binds {
		if p == c {
			return h, true
		}
		if rel, err := filepath.Rel(c, p); err == nil && !strings.HasPrefix(rel, "..") {
			return filepath.Join(h, rel), true
		}
	}
	return "", false
}

// TestComposeMatchesCLI checks that every sluice service runs a real subcommand with flags it
// defines, that every SLUICE_* variable names a flag of that subcommand and holds a value the flag
// accepts, and that its healthcheck is a real `sluice healthcheck` against its metrics address.
func TestComposeMatchesCLI(t *testing.T) {
	doc := loadCompose(t)
	for _, want := range []string{"minio", "minio-init", "producer", "extractor", "merger", "summarizer", "ui"} {
		if _, ok := doc.Services[want]; !ok {
			t.Errorf("service %q missing", want)
		}
	}
	stages := 0
	for name, svc := range doc.Services {
		if !svc.isSluice() {
			continue
		}
		if len(svc.Command) == 0 {
			t.Errorf("%s: no command", name)
			continue
		}
		sub := svc.Command[0]
		if _, ok := stageWants[sub]; !ok && sub != "ui" {
			t.Errorf("%s: %q is not a stage subcommand or ui", name, sub)
			continue
		}
		if sub != "ui" {
			stages++
		}
		fs := commandFlags(sub)
		fs.SetOutput(io.Discard)
		if err := fs.Parse(svc.Command[1:]); err != nil {
			t.Errorf("%s: flags do not match `sluice %s`: %v", name, sub, err)
		}
		if len(svc.Environment) == 0 {
			t.Errorf("%s: no environment (merge key not applied?)", name)
		}
		for k, v := range svc.Environment {
			if !strings.HasPrefix(k, "SLUICE_") {
				continue
			}
			fl := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, "SLUICE_"), "_", "-"))
			if fs.Lookup(fl) == nil {
				t.Errorf("%s: %s names no flag of `sluice %s`", name, k, sub)
				continue
			}
			if err := fs.Set(fl, v); err != nil {
				t.Errorf("%s: %s=%q: %v", name, k, v, err)
			}
		}
		if uid, _, _ := strings.Cut(svc.User, ":"); uid == "" || uid == "0" || uid == "root" {
			t.Errorf("%s: runs as root (user %q)", name, svc.User)
		}
		checkHealthcheck(t, name, svc)
	}
	if stages != 4 {
		t.Errorf("want 4 sluice stage services, got %d", stages)
	}
}

func checkHealthcheck(t *testing.T, name string, svc composeService) {
	t.Helper()
	if svc.Healthcheck == nil || len(svc.Healthcheck.Test) < 3 {
		t.Errorf("%s: no healthcheck", name)
		return
	}
	test := svc.Healthcheck.Test
	if test[0] != "CMD" || test[1] != "/sluice" || test[2] != "healthcheck" {
		t.Errorf("%s: healthcheck %q is not `/sluice healthcheck`", name, test)
		return
	}
	fs, hurl, _ := healthcheckFlags()
	fs.SetOutput(io.Discard)
	if err := fs.Parse(test[3:]); err != nil {
		t.Errorf("%s: healthcheck flags: %v", name, err)
		return
	}
	u, err := url.Parse(*hurl)
	if err != nil {
		t.Errorf("%s: healthcheck url: %v", name, err)
		return
	}
	_, metricsPort, err := net.SplitHostPort(svc.Environment["SLUICE_METRICS_ADDR"])
	if err != nil || u.Port() != metricsPort || u.Path != "/healthz" {
		t.Errorf("%s: healthcheck asks %s, but the stage serves /healthz on %q", name, *hurl, svc.Environment["SLUICE_METRICS_ADDR"])
	}
}

// TestComposeNATSCluster parses every NATS node's command line with nats-server's own
// ConfigureOptions (which reads the mounted config file) and checks that the nodes form one
// JetStream cluster that can hold the replicas the stages ask for.
func TestComposeNATSCluster(t *testing.T) {
	doc := loadCompose(t)
	nodes := doc.natsServices()
	if len(nodes) != 3 {
		t.Fatalf("want a 3-node NATS cluster, got %d nats services: %v", len(nodes), nodes)
	}
	names := map[string]string{}
	var clusterName string
	var clusterPort int
	clientPorts := map[string]int{}
	for _, node := range nodes {
		svc := doc.Services[node]
		binds, volumes := svc.mounts(t, doc.Volumes)
		args := slices.Clone(svc.Command)
		var confHost string
		for i := range args {
			if i > 0 && (args[i-1] == "--config" || args[i-1] == "-c") {
				h, ok := hostPath(binds, args[i])
				if !ok {
					t.Fatalf("%s: config %s is not mounted from the repository", node, args[i])
				}
				args[i], confHost = h, h
			}
		}
		if confHost == "" {
			t.Fatalf("%s: no --config: max_payload is a config-file option, not a flag", node)
		}
		fs := flag.NewFlagSet("nats-server", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		noop := func() {}
		opts, err := server.ConfigureOptions(fs, args, noop, noop, noop)
		if err != nil {
			t.Fatalf("%s: nats-server refuses its command line %q: %v", node, svc.Command, err)
		}
		fileOpts, err := server.ProcessConfigFile(confHost)
		if err != nil {
			t.Fatalf("%s: nats-server refuses %s: %v", node, confHost, err)
		}
		if fileOpts.MaxPayload < 1<<20 {
			t.Errorf("%s: max_payload %d in the config, want at least 1 MiB (the extractor's chunks)", node, fileOpts.MaxPayload)
		}
		if !opts.JetStream {
			t.Errorf("%s: JetStream is not enabled", node)
		}
		if !slices.Contains(volumes, opts.StoreDir) {
			t.Errorf("%s: JetStream store %q is not on a volume (%v)", node, opts.StoreDir, volumes)
		}
		if opts.ServerName == "" {
			t.Errorf("%s: no server name", node)
		} else if other, dup := names[opts.ServerName]; dup {
			t.Errorf("%s and %s share the server name %q", node, other, opts.ServerName)
		}
		names[opts.ServerName] = node
		if clusterName == "" {
			clusterName, clusterPort = opts.Cluster.Name, opts.Cluster.Port
		}
		if opts.Cluster.Name == "" || opts.Cluster.Name != clusterName || opts.Cluster.Port != clusterPort {
			t.Errorf("%s: cluster %q on port %d, others %q on %d", node, opts.Cluster.Name, opts.Cluster.Port, clusterName, clusterPort)
		}
		routed := map[string]bool{}
		for _, r := range opts.Routes {
			if _, ok := doc.Services[r.Hostname()]; !ok || !doc.Services[r.Hostname()].isNATS() {
				t.Errorf("%s: route %s names no nats service", node, r)
			}
			if p, _ := strconv.Atoi(r.Port()); p != clusterPort {
				t.Errorf("%s: route %s is not the cluster port %d", node, r, clusterPort)
			}
			routed[r.Hostname()] = true
		}
		for _, other := range nodes {
			if other != node && !routed[other] {
				t.Errorf("%s: no route to %s", node, other)
			}
		}
		clientPorts[node] = opts.Port
		if svc.Healthcheck == nil || !strings.Contains(strings.Join(svc.Healthcheck.Test, " "), ":"+strconv.Itoa(opts.HTTPPort)+"/healthz") {
			t.Errorf("%s: healthcheck does not ask the monitoring port %d: %v", node, opts.HTTPPort, svc.Healthcheck)
		}
		if tag := strings.TrimSuffix(strings.TrimPrefix(svc.Image, "nats:"), "-alpine"); tag != natsServerModuleVersion(t) {
			t.Errorf("%s: image %s, but sluice embeds and is tested with nats-server %s", node, svc.Image, natsServerModuleVersion(t))
		}
	}
	for name, svc := range doc.Services {
		if !svc.isSluice() {
			continue
		}
		replicas, err := strconv.Atoi(svc.Environment["SLUICE_REPLICAS"])
		if err != nil || replicas < 1 || replicas > len(nodes) {
			t.Errorf("%s: SLUICE_REPLICAS=%q: want 1..%d", name, svc.Environment["SLUICE_REPLICAS"], len(nodes))
		}
		seen := map[string]bool{}
		for _, u := range strings.Split(svc.Environment["SLUICE_NATS"], ",") {
			pu, err := url.Parse(u)
			if err != nil {
				t.Errorf("%s: SLUICE_NATS %q: %v", name, u, err)
				continue
			}
			if p, _ := strconv.Atoi(pu.Port()); clientPorts[pu.Hostname()] != p {
				t.Errorf("%s: SLUICE_NATS names %s, not a nats node's client port", name, u)
			}
			seen[pu.Hostname()] = true
		}
		if len(seen) != len(nodes) {
			t.Errorf("%s: SLUICE_NATS lists %d of the %d nodes: losing one would stop it", name, len(seen), len(nodes))
		}
		if !dependsOn(svc, nodes) {
			t.Errorf("%s: does not wait for the healthy nats nodes", name)
		}
	}
}

func dependsOn(svc composeService, nodes []string) bool {
	m, ok := svc.DependsOn.(map[string]any)
	if !ok {
		return false
	}
	for _, n := range nodes {
		c, ok := m[n].(map[string]any)
		if !ok || c["condition"] != "service_healthy" {
			return false
		}
	}
	return true
}

func natsServerModuleVersion(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "github.com/nats-io/nats-server/v2" {
			return strings.TrimPrefix(f[1], "v")
		}
	}
	t.Fatal("go.mod does not require nats-server")
	return ""
}

// TestComposeImagesAndMounts checks what a user's `docker compose up` depends on beyond the
// parsers: pinned images, bind mounts that exist in the repository, a build context that leaves
// out the state and output directories, and an image that does not run as root.
func TestComposeImagesAndMounts(t *testing.T) {
	doc := loadCompose(t)
	for name, svc := range doc.Services {
		if svc.isSluice() {
			if svc.Build == nil {
				t.Errorf("%s: sluice:latest is built here, but the service has no build:", name)
			}
		} else if _, tag, ok := strings.Cut(svc.Image, ":"); !ok || tag == "" || tag == "latest" {
			t.Errorf("%s: image %q is not pinned to a version", name, svc.Image)
		}
		binds, _ := svc.mounts(t, doc.Volumes)
		for c, h := range binds {
			if _, err := os.Stat(h); err != nil {
				t.Errorf("%s: bind mount for %s: %v", name, c, err)
			}
		}
	}
	for _, name := range []string{"prometheus", "grafana"} {
		svc, ok := doc.Services[name]
		if !ok {
			t.Errorf("service %q missing", name)
			continue
		}
		if !slices.Contains(svc.Profiles, "monitoring") {
			t.Errorf("%s: not behind the monitoring profile", name)
		}
	}
	ignore, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".git", ".state", "bin", "demo", "bench-out"} {
		if !slices.Contains(strings.Fields(string(ignore)), want) {
			t.Errorf(".dockerignore does not leave out %s", want)
		}
	}
	user := ""
	df, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(df), "\n") {
		if f := strings.Fields(line); len(f) == 2 && strings.EqualFold(f[0], "USER") {
			user = f[1]
		}
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" {
		t.Errorf("Dockerfile: the final image runs as root (USER %q)", user)
	}
}

func TestEnvFillsUnsetFlags(t *testing.T) {
	fs := commandFlags("merger")
	t.Setenv("SLUICE_OUT", "/tmp/x")
	t.Setenv("SLUICE_MEMORY_BUDGET", "1024")
	if err := fs.Parse([]string{"--memory-budget", "2048"}); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv(fs); err != nil {
		t.Fatal(err)
	}
	if got := fs.Lookup("out").Value.String(); got != "/tmp/x" {
		t.Errorf("out = %q", got)
	}
	if got := fs.Lookup("memory-budget").Value.String(); got != "2048" {
		t.Errorf("command line must win over env: %q", got)
	}
}

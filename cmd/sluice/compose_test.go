package main

import (
	"flag"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestComposeMatchesCLI parses compose.yaml (no Docker engine runs here) and checks that every
// sluice service runs a real subcommand with flags it defines, and that every SLUICE_* variable
// names a flag of that subcommand.
func TestComposeMatchesCLI(t *testing.T) {
	raw, err := os.ReadFile("../../compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("compose.yaml is not valid YAML: %v", err)
	}
	for _, want := range []string{"nats", "minio", "minio-init", "producer", "extractor", "merger", "summarizer"} {
		if _, ok := doc.Services[want]; !ok {
			t.Errorf("service %q missing", want)
		}
	}
	if !strings.Contains(strings.Join(doc.Services["nats"].Command, " "), "--jetstream") {
		t.Error("nats service does not enable JetStream")
	}
	stages := 0
	for name, svc := range doc.Services {
		if svc.Image != "sluice:latest" {
			continue
		}
		stages++
		if len(svc.Command) == 0 {
			t.Errorf("%s: no command", name)
			continue
		}
		sub := svc.Command[0]
		if _, ok := stageWants[sub]; !ok {
			t.Errorf("%s: %q is not a stage subcommand", name, sub)
			continue
		}
		fs := commandFlags(sub)
		fs.SetOutput(new(strings.Builder))
		if err := fs.Parse(svc.Command[1:]); err != nil {
			t.Errorf("%s: flags do not match `sluice %s`: %v", name, sub, err)
		}
		for k := range svc.Environment {
			if !strings.HasPrefix(k, "SLUICE_") {
				continue
			}
			fl := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, "SLUICE_"), "_", "-"))
			if fs.Lookup(fl) == nil {
				t.Errorf("%s: %s names no flag of `sluice %s`", name, k, sub)
			}
		}
		if len(svc.Environment) == 0 {
			t.Errorf("%s: no environment (merge key not applied?)", name)
		}
	}
	if stages != 4 {
		t.Errorf("want 4 sluice stage services, got %d", stages)
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
	_ = flag.ErrHelp
}

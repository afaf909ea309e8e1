package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var updateFlagsDoc = flag.Bool("update-flags-doc", false, "rewrite docs/FLAGS.md from the flag sets")

// flagsDocCommands are the long-running commands docs/FLAGS.md lists, in its order.
var flagsDocCommands = []string{"run", "producer", "extractor", "merger", "summarizer", "ui"}

// renderFlagsDoc renders docs/FLAGS.md from the flag sets the commands parse: the flags every
// command shares, then each command's own.
func renderFlagsDoc() string {
	var b strings.Builder
	b.WriteString("# Flags\n\n")
	b.WriteString("Generated from the flag sets `sluice` parses (`go test ./cmd/sluice -run TestFlagsDoc -update-flags-doc`);\n")
	b.WriteString("`TestFlagsDoc` fails when this file and the code disagree. Every flag not given on the command line is\n")
	b.WriteString("read from its environment variable, `SLUICE_` and the flag's name in capitals with `_` for `-`.\n")
	b.WriteString("The one-shot commands (`status`, `dlq`, `replay`, `reextract`, `dq`, `gen`, `healthcheck`) describe\n")
	b.WriteString("theirs with `--help`.\n")
	common := map[string]bool{}
	newCommon("x").fs.VisitAll(func(f *flag.Flag) { common[f.Name] = true })
	table := func(fs *flag.FlagSet, keep func(string) bool) {
		b.WriteString("\n| flag | environment | default | meaning |\n|---|---|---|---|\n")
		fs.VisitAll(func(f *flag.Flag) {
			if !keep(f.Name) {
				return
			}
			def := "`" + f.DefValue + "`"
			if f.DefValue == "" {
				def = ""
			}
			env := "SLUICE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
			fmt.Fprintf(&b, "| `--%s` | `%s` | %s | %s |\n", f.Name, env, def, strings.ReplaceAll(f.Usage, "|", `\|`))
		})
	}
	b.WriteString("\n## Every command above\n")
	table(newCommon("x").fs, func(string) bool { return true })
	for _, name := range flagsDocCommands {
		fmt.Fprintf(&b, "\n## `sluice %s`\n", name)
		table(commandFlags(name), func(n string) bool { return !common[n] })
	}
	return b.String()
}

// TestFlagsDoc: docs/FLAGS.md lists every flag of the long-running commands with its default
// and meaning, as the code has them.
func TestFlagsDoc(t *testing.T) {
	const path = "../../docs/FLAGS.md"
	want := renderFlagsDoc()
	if *updateFlagsDoc {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("docs/FLAGS.md is not what the flag sets say; regenerate it: go test ./cmd/sluice -run TestFlagsDoc -update-flags-doc")
	}
	for _, name := range flagsDocCommands {
		commandFlags(name).VisitAll(func(f *flag.Flag) {
			if !strings.Contains(want, "`--"+f.Name+"`") {
				t.Errorf("sluice %s --%s is not listed", name, f.Name)
			}
		})
	}
}

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
)

// versionString is the module version, VCS revision (and time, and whether the tree was modified)
// and Go version this binary was built from, as the Go toolchain recorded them.
func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "sluice (unknown build) " + runtime.Version()
	}
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	var rev, at, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+dirty"
			}
		}
	}
	out := "sluice " + version
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		out += " " + rev + modified
		if at != "" {
			out += " " + at
		}
	}
	return out + " " + bi.GoVersion + " " + runtime.GOOS + "/" + runtime.GOARCH
}

func printVersion(w io.Writer) { fmt.Fprintln(w, versionString()) }

func cmdVersion(_ context.Context, args []string) error {
	if helpOnly(args) {
		fmt.Println("usage: sluice version (prints the module version and VCS revision)")
		return nil
	}
	if len(args) > 0 {
		return &exitError{code: exitUsage, err: fmt.Errorf("usage: sluice version")}
	}
	printVersion(os.Stdout)
	return nil
}

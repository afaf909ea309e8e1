package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCPUProfile: SLUICE_CPU_PROFILE writes a pprof file (gzip-compressed protobuf) once the command stops; an
// empty value writes nothing; an unwritable path is a usage error.
func TestCPUProfile(t *testing.T) {
	stop, err := startCPUProfile("")
	if err != nil {
		t.Fatal(err)
	}
	stop()
	path := filepath.Join(t.TempDir(), "cpu.prof")
	stop, err = startCPUProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("profile: %d bytes, %v", len(b), err)
	}
	if _, err := startCPUProfile(filepath.Join(t.TempDir(), "missing", "cpu.prof")); err == nil {
		t.Fatal("no error for a path in a missing directory")
	}
}

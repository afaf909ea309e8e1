package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/pipeline"
	"github.com/sluice-dev/sluice/producer"
)

// TestRunSummaryVerdict: a --once run that found nothing to take says so instead of claiming
// everything was ingested; one that took archives keeps the usual verdict.
func TestRunSummaryVerdict(t *testing.T) {
	var empty bytes.Buffer
	printRunSummary(&empty, &pipeline.Result{}, "/lake/")
	if got := empty.String(); !strings.Contains(got, "OK: nothing new to ingest") || strings.Contains(got, "every archive committed") {
		t.Fatalf("empty run summary:\n%s", got)
	}
	var some bytes.Buffer
	printRunSummary(&some, &pipeline.Result{Scan: producer.ScanResult{Landed: []string{"a1"}}, Found: []string{"a1"}, Taken: []string{"a1"}}, "/lake")
	if got := some.String(); !strings.Contains(got, "OK: every archive committed and checked; Parquet under /lake/<table>/") {
		t.Fatalf("run summary:\n%s", got)
	}
}

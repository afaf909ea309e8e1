package bus_test

import (
	"testing"

	"github.com/sluice-dev/sluice/internal/bus"
)

// TestMessageIDFormats pins the string value of every Nats-Msg-Id sluice publishes. These values
// must never change: the stream de-duplicates by them, also between messages stored by an older
// version and their repeat by a newer one (a redelivery across an upgrade, a crash and restart).
func TestMessageIDFormats(t *testing.T) {
	const a = "0123456789abcdef0123"
	for _, c := range []struct {
		name string
		got  bus.MessageID
		want string
	}{
		// rows: <archive>.<attempt>.<table-token>.<kind>.<index>
		{"chunk", bus.ChunkID(a, 2, "orders", 17), a + ".2.orders.c.17"},
		{"chunk table token", bus.ChunkID(a, 0, "a.b c", 0), a + ".0.a~2Eb~20c.c.0"},
		{"marker", bus.MarkerID(a, 1, "orders"), a + ".1.orders.done.0"},
		{"abort", bus.AbortID(a, 1, "orders"), a + ".1.orders.abort.0"},
		{"requeued chunk", bus.RequeuedChunkID(a, 1, "orders", 3, 1700000000123456789), a + ".1.orders.c.3.rq1700000000123456789"},
		{"deprecated rows id", bus.MessageID(bus.MsgID(a, 1, "orders", "c", 3)), a + ".1.orders.c.3"},
		// events
		{"landed", bus.LandedID(a, 0), a + ".0.landed"},
		{"duplicate", bus.DuplicateID(a, "s3://landing/acme/a.tar.gz"), a + ".dup.8bada901c3cd"},
		{"extracted", bus.ExtractedID(a, 3), a + ".3.extracted"},
		{"extraction failed", bus.ExtractFailedID(a, 3), a + ".3.failed"},
		{"merger failed", bus.MergerFailedID(a, 3, "a.b"), a + ".3.a~2Eb.merger-failed"},
		{"committed", bus.CommittedID(a, 0, "orders"), a + ".0.orders.committed"},
		{"replay committed", bus.ReplayCommittedID(a, 0, "orders", "20250102T030405Z-abcdef"), a + ".0.orders.committed.replay.20250102T030405Z-abcdef"},
		{"checked", bus.CheckedID(a, 1, "a b", "fp01", true), "check." + a + ".1.a~20b.fp01.true"},
		{"checked failed", bus.CheckedID(a, 1, "t", "fp01", false), "check." + a + ".1.t.fp01.false"},
		{"summary", bus.SummaryID("2025-01-02", "00112233445566778899aabbccddeeff"), "summary.2025-01-02.00112233445566778899aabb"},
		// dead letters and their retries
		{"extractor dead letter", bus.ExtractorDeadLetterID("SLUICE_EVENTS", 42), "extractor.SLUICE_EVENTS.42"},
		{"merger dead letter", bus.MergerDeadLetterID("SLUICE_ROWS", 42, 5), "merger.SLUICE_ROWS.42.5"},
		{"retry", bus.RetryID("poison-1", "SLUICE_ROWS", 42, 7), "poison-1.retry-7"},
		{"retry of a message without id", bus.RetryID("", "SLUICE_ROWS", 42, 7), "SLUICE_ROWS.42.retry-7"},
	} {
		if string(c.got) != c.want {
			t.Errorf("%s: %q, want %q", c.name, c.got, c.want)
		}
	}
	if !bus.IsMergerFailedID(string(bus.MergerFailedID(a, 0, "t"))) || bus.IsMergerFailedID(string(bus.ExtractFailedID(a, 0))) {
		t.Error("IsMergerFailedID does not tell the merger's failure ids")
	}
}

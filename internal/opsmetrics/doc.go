// Package opsmetrics holds what an operator watches that belongs to no single stage: the
// JetStream view of sluice's streams and durable consumers (lag, un-acked and redelivered
// messages, stream usage, dead letters), the build_info gauge, and the readiness checks behind
// /readyz. Every sluice process with a NATS connection registers them (cmd/sluice), so a
// Prometheus scraping any one of them sees the fleet's consumer lag; the series are the same in
// each (aggregate with max without(instance, job) in PromQL). docs/OPERATIONS.md lists every
// metric.
package opsmetrics

#!/usr/bin/env bash
# How the merger would scale past two cores (issue #15 target 4): one `sluice run --once` on a bench corpus
# under a CPU profile (SLUICE_CPU_PROFILE), split by the labels the merger puts on each partition's work
# (commits and their row-group writers included) and the ones nats-server puts on its own. Prints the CPU of
# each partition and the bound it sets: with unlimited cores the merger's work cannot finish faster than its
# busiest partition (one partition is consumed in order, by one merger), so
#   merger speed-up over one core <= merger CPU / busiest partition's CPU.
# PRESET=100mb (default) | flights | 1gb, as scripts/bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/corpus.sh
rm -rf "$dir/out" "$dir/state"
prof=$dir/cpu.prof
SLUICE_CPU_PROFILE=$prof $bin run --once --progress off --log-level warn --landing "$dir/landing" --out "$dir/out" --state "$dir/state" >/dev/null
go tool pprof -tags "$prof" 2>/dev/null | awk -v preset="$preset" '
  /^ *[a-z]+: Total/ { section = $1; sub(":", "", section); if (section == "stage") { total = $5 } next }
  section == "stage" && /ms|s \(/ { stages = stages sprintf("  stage %s: %s\n", $NF, $1) }
  section == "partition" && /ms|s \(/ {
    v = $1; if (v ~ /ms$/) { sub("ms", "", v); v = v / 1000 } else { sub("s", "", v) }
    part[$NF] = v; sum += v; if (v > max) { max = v; busiest = $NF }
  }
  END {
    printf "preset=%s  process CPU %s (the rest of the stages below: nats-server, runtime)\n%s", preset, total, stages
    printf "merger partitions %.2f CPU-s\n", sum
    for (i = 0; i < 4096; i++) if (i "" in part) printf "  partition %d: %.2f CPU-s\n", i, part[i ""]
    if (max > 0) printf "busiest partition %s: %.2f CPU-s -> merger speed-up bound %.1fx over one core\n", busiest, max, sum / max
  }'

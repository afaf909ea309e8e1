#!/usr/bin/env bash
# Writes a partner configuration with data-quality rules for every table of a benchmark output, as
# `sluice dq suggest` proposes them from the column profiles (usually more than five rules a table):
#   scripts/bench-dq-rules.sh bench-out/100mb/out > bench-out/100mb/rules.yaml
# then: CONFIG=bench-out/100mb/rules.yaml make bench
set -euo pipefail
out=${1:?usage: bench-dq-rules.sh OUT}
bin=${BIN:-./bin/sluice}
echo "partners:"
echo "  - name: default"
echo "    tables:"
for t in $(ls "$out/_dq/profiles/"); do
  echo "      $t:"
  $bin dq suggest --table "$t" --out "$out" | grep -v '^#' | sed 's/^/        /'
done

#!/usr/bin/env bash
# Scaling check (issue #6 and #15 target 4): wall time of `sluice run --once` on the bench corpus with
# its own merger alone, then with a second `sluice merger` process sharing the partitions, alternating
# for ROUNDS rounds (default 1), then the medians. The second process's CPU time is read from /proc
# before it is stopped, the run's with /usr/bin/time. Logs: $dir/main-<mergers>.log (level MAIN_LOG, default warn), $dir/extra.log
# (EXTRA_LOG, default info: the counts of partitions owned and batches committed come from it).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/corpus.sh
port=${PORT:-14222}
rounds=${ROUNDS:-1}
declare -A walls
for round in $(seq "$rounds"); do
  for mergers in 1 2; do
    rm -rf "$dir/out" "$dir/state" "$dir/state2"
    start=$(date +%s.%N)
    /usr/bin/time -o "$dir/time-$mergers.txt" -f "%U %S %M" $bin run --once --progress off --log-level "${MAIN_LOG:-warn}" --nats-listen 127.0.0.1:$port \
      --landing "$dir/landing" --out "$dir/out" --state "$dir/state" > "$dir/scale-$mergers.txt" 2> "$dir/main-$mergers.log" &
    run=$!
    extra=
    if [[ $mergers == 2 ]]; then
      for _ in $(seq 50); do
        if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then break; fi; sleep 0.05
      done
      $bin merger --nats nats://127.0.0.1:$port --out "$dir/out" --state "$dir/state2" --instance extra --log-level "${EXTRA_LOG:-info}" 2>"$dir/extra.log" &
      extra=$!
    fi
    wait $run || true
    end=$(date +%s.%N)
    note=
    if [[ -n $extra ]]; then
      note=$(awk '{printf " (second merger: %.2f CPU-s", ($14+$15)/100}' /proc/$extra/stat)
      note+=", $(grep -c 'partition owned' "$dir/extra.log" || true) partitions owned, $(grep -c 'batch committed' "$dir/extra.log" || true) batches committed)"
      kill $extra 2>/dev/null && wait $extra 2>/dev/null || true
    fi
    wall=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.2f", b-a}')
    walls[$mergers]+="$wall "
    echo "round $round mergers=$mergers wall ${wall}s, run $(awk '{printf "%.2f CPU-s, %d MiB", $1+$2, $3/1024}' "$dir/time-$mergers.txt")$note"
    tail -1 "$dir/scale-$mergers.txt"
  done
done
for mergers in 1 2; do
  echo "mergers=$mergers median $(median "${walls[$mergers]}")s over $rounds rounds"
done

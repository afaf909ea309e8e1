#!/usr/bin/env bash
# Scaling check (issue #6 target 4): wall time of `sluice run --once` on the bench corpus with its
# own merger alone, then with a second `sluice merger` process sharing the partitions.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/corpus.sh
port=${PORT:-14222}
for mergers in 1 2; do
  rm -rf "$dir/out" "$dir/state" "$dir/state2"
  start=$(date +%s.%N)
  $bin run --once --progress off --log-level warn --nats-listen 127.0.0.1:$port \
    --landing "$dir/landing" --out "$dir/out" --state "$dir/state" > "$dir/scale-$mergers.txt" &
  run=$!
  extra=
  if [[ $mergers == 2 ]]; then
    for _ in $(seq 50); do
      if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then break; fi; sleep 0.05
    done
    $bin merger --nats nats://127.0.0.1:$port --out "$dir/out" --state "$dir/state2" --instance extra --log-level ${EXTRA_LOG:-warn} 2>"$dir/extra.log" &
    extra=$!
  fi
  wait $run || true
  end=$(date +%s.%N)
  [[ -n $extra ]] && kill $extra 2>/dev/null && wait $extra 2>/dev/null || true
  awk -v a="$start" -v b="$end" -v m="$mergers" 'BEGIN{printf "mergers=%d wall %.2fs\n", m, b-a}'
  tail -1 "$dir/scale-$mergers.txt"
done

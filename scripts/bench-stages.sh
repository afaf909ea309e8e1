#!/usr/bin/env bash
# Per-stage CPU cost (docs/SCALING.md): every stage as its own process against one nats-server, on the bench
# corpus (PRESET=100mb default | flights | 1gb, scripts/corpus.sh). The server is the embedded one of an
# idle `sluice producer` watching an empty folder (--nats-listen), so its CPU is the server's. Prints CPU seconds
# (user+sys, from /proc) per process and per GB of CSV.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/corpus.sh
csv_bytes=$(csv_size)
run=$dir/stages
rm -rf "$run" && mkdir -p "$run/empty" "$run/logs"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url=nats://127.0.0.1:$port
common=(--log-level info --log-format json ${CONFIG:+--config "$CONFIG"})
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

$bin producer --landing "$run/empty" --state "$run/server" --nats-listen "127.0.0.1:$port" "${common[@]}" 2>"$run/logs/server.log" &
server=$!; pids+=($server)
for _ in $(seq 100); do grep -q '"msg":"started"' "$run/logs/server.log" 2>/dev/null && break; sleep 0.1; done
$bin extractor --nats "$url" --state "$run/x" "${common[@]}" 2>"$run/logs/extractor.log" & extractor=$!; pids+=($extractor)
$bin merger --nats "$url" --state "$run/m" --out "$run/out" "${common[@]}" 2>"$run/logs/merger.log" & merger=$!; pids+=($merger)
$bin summarizer --nats "$url" --state "$run/s" --out "$run/out" "${common[@]}" 2>"$run/logs/summarizer.log" & summarizer=$!; pids+=($summarizer)
for l in extractor merger summarizer; do
  for _ in $(seq 300); do grep -q '"msg":"started"' "$run/logs/$l.log" 2>/dev/null && break; sleep 0.1; done
done
cpu() { awk -v t="$(getconf CLK_TCK)" '{print ($14+$15)/t}' "/proc/$1/stat"; }
base_server=$(cpu $server)
start=$(date +%s.%N)
tfile=$(mktemp)
/usr/bin/time -f '%U %S' -o "$tfile" $bin producer --once --nats "$url" --state "$run/p" --landing "$dir/landing" "${common[@]}" 2>"$run/logs/producer.log"
read -r pu ps < "$tfile"; rm -f "$tfile"
# Done when every archive's summary is written and complete: the summarizer logs one "archive committed" each.
archives=$(ls "$dir"/landing/*.tar.gz | wc -l)
for _ in $(seq 6000); do
  n=$(grep -c '"msg":"archive committed"' "$run/logs/summarizer.log" || true)
  [[ $n -ge $archives ]] && break
  sleep 0.1
done
sleep 1 # the last summary write
end=$(date +%s.%N)
awk -v p="$preset" -v c="$csv_bytes" -v a="$archives" -v s="$start" -v e="$end" \
  'BEGIN{printf "preset=%s csv=%dMB archives=%d wall %.1fs (from the producer start)\n", p, c/1e6, a, e-s}'
report() { awk -v n="$1" -v v="$2" -v c="$csv_bytes" 'BEGIN{printf "%-26s cpu %6.2fs  %6.1f CPU-s/GB of CSV\n", n, v, v/(c/1e9)}'; }
report "producer (--once)" "$(awk -v u="$pu" -v s="$ps" 'BEGIN{print u+s}')"
report "extractor" "$(cpu $extractor)"
report "merger" "$(cpu $merger)"
report "summarizer" "$(cpu $summarizer)"
report "nats-server (+idle poll)" "$(awk -v a="$(cpu $server)" -v b="$base_server" 'BEGIN{print a-b}')"

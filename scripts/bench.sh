#!/usr/bin/env bash
# End-to-end benchmark: generate a corpus with `sluice gen`, run `sluice run --once` on it, print MB/s of CSV,
# rows/s, wall, CPU and peak RSS. PRESET=100mb (default) | 1gb | flights (107 MB in 6 archives, 70% of it one narrow
# numeric table of 3 million flight records, the rest 23 small tables: the shape DuckDB converts fastest). ANCHOR=1 also times the DuckDB anchor on the
# same archives and prints the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/corpus.sh
csv_bytes=$(csv_size)
tgz_bytes=$(cat "$dir"/landing/*.tar.gz | wc -c)
rm -rf "$dir/out" "$dir/state"
tfile=$(mktemp)
set +e
# CONFIG=partners.yaml: run with that partner configuration (e.g. data-quality rules).
/usr/bin/time -f '%e %U %S %M' -o "$tfile" $bin run --once --progress off --log-level warn ${CONFIG:+--config "$CONFIG"} \
  --landing "$dir/landing" --out "$dir/out" --state "$dir/state" > "$dir/summary.txt"
rc=$?
set -e
read -r wall usr sys rss_kb < "$tfile"
# one "rows in N,NNN · rows out" line per process date in the summaries printed
rows=$(grep -oE '^rows in [0-9,]+' "$dir/summary.txt" | tr -d , | awk '{s+=$3} END{print s+0}')
echo "preset=$preset archives=$(ls "$dir"/landing/*.tar.gz | wc -l) tgz=$((tgz_bytes/1000000))MB csv=$((csv_bytes/1000000))MB exit=$rc"
awk -v w="$wall" -v u="$usr" -v s="$sys" -v r="$rss_kb" -v b="$csv_bytes" -v n="$rows" 'BEGIN{
  printf "sluice: wall %.2fs  cpu %.2fs  peak RSS %.0f MiB  %.1f MB/s of CSV  %.0f rows/s\n", w, u+s, r/1024, b/1e6/w, n/w }'
start=$(date +%s.%N); for f in "$dir"/landing/*.tar.gz; do gzip -dc "$f" >/dev/null; done; end=$(date +%s.%N)
awk -v a="$start" -v b="$end" 'BEGIN{printf "gzip -dc: %.2fs\n", b-a}'
if [[ ${ANCHOR:-0} == 1 ]]; then
  anchor=../shared/anchor/anchor
  /usr/bin/time -f '%e %U %S %M' -o "$tfile" $anchor convert "$dir/landing" "$dir/anchor-out" >/dev/null
  read -r awall ausr asys arss < "$tfile"
  awk -v w="$wall" -v a="$awall" -v u="$ausr" -v s="$asys" -v r="$arss" 'BEGIN{
    printf "duckdb anchor: wall %.2fs  cpu %.2fs  peak RSS %.0f MiB\nratio sluice/duckdb wall: %.2fx\n", a, u+s, r/1024, w/a }'
  $anchor check "$dir/landing" "$dir/out" | tail -3
fi
rm -f "$tfile"
exit $rc

#!/usr/bin/env bash
# Alternating series (docs/BENCHMARKS.md): `sluice run --once` builds or flag sets and the DuckDB anchor
# (`anchor convert`: tar -xzf, then one zstd Parquet per table, 2 threads) on one preset's corpus, round after
# round, so that the machine's drift falls on every contestant alike. Each run gets a fresh --out and --state.
# Prints every run (wall s, CPU s = user + sys, peak RSS MiB), then per contestant the medians, the ratio of
# its median wall to DuckDB's and the range of its per-round ratios; then `anchor check` of the first
# contestant's last output against the archives.
#
#   PRESET=1gb ROUNDS=5 scripts/bench-ab.sh                        # ./bin/sluice against DuckDB
#   scripts/bench-ab.sh /tmp/before /tmp/after duckdb              # two builds and DuckDB
#   scripts/bench-ab.sh './bin/sluice --memory-budget 128MiB' ./bin/sluice
#
# A contestant is a sluice binary with optional extra flags (one quoted word), or `duckdb`. CONFIG=file runs
# sluice with that partner configuration (e.g. examples/partners-dq.yaml: the demo's data-quality rules).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/corpus.sh
rounds=${ROUNDS:-5}
anchor=${ANCHOR_BIN:-../shared/anchor/anchor}
(($# > 0)) || set -- "$bin" duckdb
work=$dir/ab
rm -rf "$work" && mkdir -p "$work"
tfile=$work/time
declare -a walls cpus rsss
for round in $(seq "$rounds"); do
  for i in $(seq 0 $(($# - 1))); do
    c=${*:i+1:1}
    out=$work/out-$i
    rm -rf "$out" "$work/state-$i"
    if [[ $c == duckdb ]]; then
      /usr/bin/time -f '%e %U %S %M' -o "$tfile" "$anchor" convert "$dir/landing" "$out" > /dev/null
    else
      read -r -a cmd <<< "$c"
      rc=0
      /usr/bin/time -f '%e %U %S %M' -o "$tfile" "${cmd[0]}" run --once --progress off --log-level warn \
        ${CONFIG:+--config "$CONFIG"} --landing "$dir/landing" --out "$out" --state "$work/state-$i" "${cmd[@]:1}" \
        > "$work/summary-$i.txt" 2> "$work/log-$i.txt" || rc=$?
      # exit 2 is "done with findings" (the demo's planted defects under CONFIG); anything else is a failure
      if ((rc != 0 && rc != 2)); then
        echo "round $round: '$c' exited $rc" >&2
        tail -5 "$work/log-$i.txt" >&2
        exit 1
      fi
    fi
    read -r wall usr sys rss < "$tfile"
    cpu=$(awk -v u="$usr" -v s="$sys" 'BEGIN{printf "%.2f", u+s}')
    walls[i]+="$wall "
    cpus[i]+="$cpu "
    rsss[i]+="$((rss / 1024)) "
    echo "round $round  $(printf '%-40s' "$c")  wall ${wall}s  cpu ${cpu}s  rss $((rss / 1024)) MiB"
  done
done

duck=-1
for i in $(seq 0 $(($# - 1))); do
  [[ ${*:i+1:1} == duckdb ]] && duck=$i
done
csv_mb=$(($(csv_size) / 1000000))
echo "--- $preset ($csv_mb MB of CSV), $rounds rounds, medians"
for i in $(seq 0 $(($# - 1))); do
  c=${*:i+1:1}
  w=$(median "${walls[i]}")
  cpu=$(median "${cpus[i]}")
  line="$(printf '%-40s' "$c")  wall ${w}s  cpu ${cpu}s  rss $(median "${rsss[i]}") MiB"
  line+="  $(awk -v c="$cpu" -v mb="$csv_mb" 'BEGIN{printf "%.1f CPU-s/GB", c/mb*1000}')"
  if ((duck >= 0 && i != duck)); then
    dw=$(median "${walls[duck]}")
    range=$(paste <(tr ' ' '\n' <<< "${walls[i]}" | grep .) <(tr ' ' '\n' <<< "${walls[duck]}" | grep .) |
      awk '{r=$1/$2; if (NR==1||r<lo) lo=r; if (NR==1||r>hi) hi=r} END{printf "%.2f–%.2f", lo, hi}')
    line+="  $(awk -v a="$w" -v b="$dw" 'BEGIN{printf "%.2f", a/b}')× DuckDB (rounds $range)"
  fi
  echo "$line"
done
for i in $(seq 0 $(($# - 1))); do
  if [[ ${*:i+1:1} != duckdb ]]; then
    "$anchor" check "$dir/landing" "$work/out-$i" | tail -3
    break
  fi
done

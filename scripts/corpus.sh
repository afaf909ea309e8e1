# Sourced by the bench scripts (run from the project root): defines median and sets preset (PRESET, default 100mb), dir (the
# preset's folder under BENCH_DIR, default bench-out) and bin (./bin/sluice, built when missing), and generates
# the preset's corpus into $dir/landing once. Presets: 100mb (~106 MB of CSV, 8 archives, 24 tables, one large
# table), flights (107 MB in 6 archives, 70% of it one narrow numeric table of flight records), 1gb (one archive
# holding a single ~1 GiB member).
preset=${PRESET:-100mb}
dir=${BENCH_DIR:-bench-out}/$preset
bin=./bin/sluice
[[ -x $bin ]] || go build -o $bin ./cmd/sluice
if [[ ! -d $dir/landing ]]; then
  case $preset in
    100mb) $bin gen --out "$dir/landing" --days 2 --archives 4 --tables 24 --target-bytes 107000000 --large-table --seed 7 ;;
    flights) $bin gen --out "$dir/landing" --days 2 --archives 3 --tables 24 --target-bytes 107000000 --large-table --large-share 0.7 --flight-records --no-drift --seed 7 ;;
    1gb)   $bin gen --out "$dir/landing" --days 1 --archives 1 --tables 2 --rows 1000 --huge-member 1073741824 --seed 7 ;;
    *) echo "unknown PRESET $preset"; exit 2 ;;
  esac
fi

# csv_size prints the bytes of CSV the corpus' archives hold.
csv_size() {
  for f in "$dir"/landing/*.tar.gz; do gzip -dc "$f"; done | wc -c
}

# median prints the median of the numbers in $1 (separated by spaces).
median() { tr ' ' '\n' <<< "$1" | grep . | sort -n | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

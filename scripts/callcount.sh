#!/usr/bin/env bash
# Instructions per call of each path in benches/peers/callcount.rs, counted by
# callgrind: each path runs at two call counts and the difference of the
# totals is divided by the difference of the counts, so that starting the
# process and its Redis server cancels out. Needs valgrind.
#
#   ./scripts/callcount.sh                  # every path
#   ./scripts/callcount.sh hit-cachekit     # some paths
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "callcount: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
bin=$(cargo bench -p cachekit-peers --bench callcount --no-run --message-format=json 2>/dev/null |
  sed -n 's/.*"executable":"\([^"]*callcount[^"]*\)".*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "callcount: could not build the bench" >&2; exit 1; }
paths=("$@")
[ ${#paths[@]} -gt 0 ] || read -r -a paths <<<"$("$bin" list)"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
total() {
  if ! valgrind --tool=callgrind --callgrind-out-file="$out/cg" "$bin" "$1" "$2" >"$out/log" 2>&1; then
    echo "callcount: $1 $2 failed:" >&2
    grep -v '^==' "$out/log" >&2
    return 1
  fi
  callgrind_annotate "$out/cg" | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,
}
for path in "${paths[@]}"; do
  case "$path" in l1-*) low=100000 high=200000 ;; miss-*) low=1000 high=2000 ;; *) low=2000 high=4000 ;; esac
  a=$(total "$path" "$low") || exit 1
  b=$(total "$path" "$high") || exit 1
  echo "$path: $(( (b - a) / (high - low) )) instructions per call"
done

#!/bin/bash
# Baseline (no tracking) server CPU per GET/SET with redis-benchmark (C client), to check the Python
# driver does not distort the per-op server cost. Usage: bash bench_baseline.sh
set -eu
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
DIR=$(mktemp -d /tmp/costs-redis-XXXX)
taskset -c 1 redis-server --port $PORT --bind 127.0.0.1 --save "" --appendonly no --dir $DIR >$DIR/log 2>&1 &
PID=$!
trap 'kill $PID; wait $PID 2>/dev/null; rm -rf $DIR' EXIT
until redis-cli -p $PORT ping >/dev/null 2>&1; do sleep 0.1; done
cpu() { redis-cli -p $PORT info cpu | awk -F: '/used_cpu_(user|sys):/{s+=$2} END{printf "%.6f", s}'; }
taskset -c 1 redis-benchmark -p $PORT -q -t set -n 100000 -r 100000 -d 100 -c 1 -P 100 >/dev/null
for t in get set; do
  for P in 1 100; do
    N=$(( P == 1 ? 50000 : 500000 ))
    redis-cli -p $PORT config resetstat >/dev/null
    a=$(cpu)
    out=$(taskset -c 1 redis-benchmark -p $PORT -q -t $t -n $N -r 100000 -d 100 -c 1 -P $P | tr '\r' '\n' | grep -a "requests per second" | tail -1)
    b=$(cpu)
    upc=$(redis-cli -p $PORT info commandstats | grep -a "cmdstat_$t:" | sed 's/.*usec_per_call=\([0-9.]*\).*/\1/')
    echo "redis-benchmark $t -c 1 -P $P: $out | server cpu/op $(python3 -c "print(round(($b-$a)/$N*1e6,3))") us | usec_per_call $upc"
  done
done

#!/usr/bin/env bash
# The whole test suite: unit, integration (real redis-server processes on
# loopback ports), UI and doc tests.
#
# Without cachekit-peers (benches/peers/, benchmarks only, nothing to test):
# `--workspace` alone would bring its `cached` into feature resolution, which
# turns on redis's native-tls and so rebuilds redis, and everything above it,
# with OpenSSL. With cachekit-interop-rs (tests/interop-rs/, cachekit-rs
# in the same process): its fred client turns on no TLS and no feature of
# redis-rs.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo test --workspace --exclude cachekit-peers --all-features
# A build without TLS refuses rediss:// by naming the feature.
cargo test -p cachekit-redis --no-default-features --lib tls

#!/usr/bin/env bash
# The whole test suite: unit, integration (real redis-server processes on
# loopback ports), UI and doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo test --workspace --all-features
# A build without TLS refuses rediss:// by naming the feature.
cargo test -p cachekit-redis --no-default-features --lib tls

#!/usr/bin/env bash
# Installs what the test suite needs on a Debian/Ubuntu machine: redis-server
# and redis-cli (the tests start real servers, sentinels and clusters on
# loopback ports), openssl (TLS test certs),
# and libssl-dev + pkg-config (a benchmark peer links OpenSSL: CI's clippy
# --all-targets builds benches/peers).
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# redis-cli --cluster create joins the test clusters (Debian: redis-tools).
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# `cached`, in benches/peers, turns on redis's native-tls (openssl-sys).
if command -v dpkg >/dev/null 2>&1; then
  dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
  dpkg -s pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing: ${missing[*]}; install them with your package manager" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
# The package may start a system redis on 6379; the tests never use it.

#!/usr/bin/env bash
# Installs what the test suite needs on a Debian/Ubuntu machine: redis-server
# and redis-cli (the tests start real servers, sentinels and clusters on
# loopback ports), openssl (TLS test certs),
# and libssl-dev + pkg-config (a benchmark peer links OpenSSL: CI's clippy
# --all-targets builds benches/peers); and a Python virtual environment,
# .venv-interop, with cachekit-py from PyPI (tests/interop_python.rs shares a
# live Redis between it and this crate).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv-interop"
# The cachekit-py line the interop tests are written against.
py_cachekit="cachekit==0.24.*"

# Already there: nothing to do (checked first, so a warm run stays fast).
venv_ready() {
  [ -x "$venv/bin/python" ] && "$venv/bin/python" -c '
import importlib.metadata as m, sys
import cachekit
sys.exit(0 if m.version("cachekit").startswith("0.24.") else 1)' >/dev/null 2>&1
}

if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
updated=""
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing: $*; install them with your package manager" >&2
    exit 1
  fi
  echo "installing: $*"
  export DEBIAN_FRONTEND=noninteractive
  [ -n "$updated" ] || $sudo apt-get update -qq
  updated=1
  $sudo apt-get install -y -qq "$@" >/dev/null
}

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
if ! venv_ready; then
  # Debian's python3 makes venvs only with python3-venv (ensurepip).
  command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-venv)
fi
# The package may start a system redis on 6379; the tests never use it.
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

venv_ready && exit 0
if ! python3 -m venv --clear "$venv" >/dev/null 2>&1; then
  apt_install python3-venv
  python3 -m venv --clear "$venv"
fi
echo "installing $py_cachekit into $venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "$py_cachekit"
if ! venv_ready; then
  echo "$venv: cachekit 0.24 does not import after installing it" >&2
  exit 1
fi

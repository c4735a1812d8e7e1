#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian 12 machine (run as root, Node + npm present) for building
# and testing vya-backupdb: Deno 2.9.x, PostgreSQL 15 and MariaDB 10.11 servers and clients, zstd,
# gzip, time (for the benchmark), Debian's python3-cryptography (Fernet reference for interop
# tests), prometheus (promtool) and prometheus-node-exporter (metrics tests), systemd
# (systemd-analyze, for the unit tests; no service is started).
# Quiet when everything is already there; prints what it installs.
set -euo pipefail

DENO_VERSION=2.9.6
APT_PACKAGES=(postgresql postgresql-client postgresql-contrib mariadb-server mariadb-client
  zstd python3-cryptography gzip time prometheus prometheus-node-exporter systemd age python3-boto3)

say() { echo "setup: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- Deno ---------------------------------------------------------------------------------
deno_ok() { command -v deno >/dev/null 2>&1 && deno --version 2>/dev/null | head -n1 | grep -q '^deno 2\.9\.'; }
if ! deno_ok; then
  say "installing deno@$DENO_VERSION via npm"
  as_root npm install -g --silent "deno@$DENO_VERSION" >/dev/null
  hash -r
  deno_ok || { say "deno $DENO_VERSION still not usable on PATH ($(command -v deno || echo none))"; exit 1; }
fi

# --- apt packages -------------------------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  # Package scripts must not start the servers as services: tests start their own.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    say "creating /usr/sbin/policy-rc.d (no service starts from package scripts)"
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod 755 /usr/sbin/policy-rc.d
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq >/dev/null
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- S3 test server (npm s3rver, run by node; tests/harness/s3.ts) -----------------------------
S3RVER_VERSION=3.7.1
S3RVER_DIR=${VYA_S3RVER_DIR:-/opt/vya-tools/s3rver}
if ! grep -qs "\"version\": \"$S3RVER_VERSION\"" "$S3RVER_DIR/node_modules/s3rver/package.json"; then
  say "installing s3rver@$S3RVER_VERSION into $S3RVER_DIR"
  as_root mkdir -p "$S3RVER_DIR"
  (cd "$S3RVER_DIR" && as_root npm install --no-audit --no-fund --silent "s3rver@$S3RVER_VERSION" >/dev/null)
fi

# --- sanity -------------------------------------------------------------------------------
ls -d /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { say "initdb not found under /usr/lib/postgresql"; exit 1; }
command -v mariadb-install-db >/dev/null 2>&1 || { say "mariadb-install-db not found"; exit 1; }
command -v age >/dev/null 2>&1 || { say "age not found (the age CLI checks our encrypted files)"; exit 1; }
[ -x "$S3RVER_DIR/node_modules/.bin/s3rver" ] || { say "s3rver not found in $S3RVER_DIR"; exit 1; }
/usr/bin/python3 -c 'import boto3' 2>/dev/null || { say "python3-boto3 not importable by /usr/bin/python3"; exit 1; }

#!/bin/sh
# Installs what the project needs, once: npm packages (always) and, with --system, the Debian
# packages that the tests run as real peers (coturn, avahi, iptables, iproute2). Safe to re-run.
set -eu
cd "$(dirname "$0")/.."

# npm, not Deno's resolver, and `npm install`, not `npm ci`: @matrixai/quic lists optional
# platform packages that were never published, which both refuse. The stamp is the lock file
# node_modules was installed from, so a changed lock reinstalls.
if ! cmp -s package-lock.json node_modules/.installed-lock.json 2>/dev/null; then
  npm install --no-audit --no-save --no-fund --loglevel=error >&2
  cp package-lock.json node_modules/.installed-lock.json
fi

if [ "${1:-}" = "--system" ]; then
  need=""
  command -v turnserver >/dev/null 2>&1 || need="$need coturn"
  command -v avahi-daemon >/dev/null 2>&1 || need="$need avahi-daemon avahi-utils dbus"
  command -v iptables >/dev/null 2>&1 || need="$need iptables"
  command -v ip >/dev/null 2>&1 || need="$need iproute2"
  command -v conntrack >/dev/null 2>&1 || need="$need conntrack"
  if [ -n "$need" ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
      echo "setup: installing Debian packages:$need" >&2
      apt-get update -qq >&2
      # shellcheck disable=SC2086
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >&2
    else
      echo "setup: not root or no apt-get; tests that need$need will be skipped" >&2
    fi
  fi
fi

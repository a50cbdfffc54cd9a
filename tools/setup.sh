#!/bin/sh
# Installs the Debian packages that the tests run as real peers (coturn, avahi, dbus, iptables,
# iproute2, conntrack) or drive (chromium, for the status page) when root with apt-get; otherwise it says which tests will be skipped.
# Safe to re-run. npm packages need no step: Deno fetches them into its cache (deno.json, deno.lock).
set -eu
cd "$(dirname "$0")/.."

# One executable per package the tests use; root's sbin directories count even when PATH
# lacks them.
need=""
for pair in turnserver:coturn turnutils_natdiscovery:coturn avahi-daemon:avahi-daemon \
  avahi-browse:avahi-utils avahi-publish:avahi-utils dbus-daemon:dbus dbus-send:dbus \
  iptables:iptables ip:iproute2 conntrack:conntrack chromium:chromium; do
  tool=${pair%%:*}
  pkg=${pair#*:}
  if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null 2>&1; then
    case " $need " in *" $pkg "*) ;; *) need="$need $pkg" ;; esac
  fi
done
if [ -n "$need" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian packages:$need" >&2
    # shellcheck disable=SC2086
    if ! { apt-get update -qq >&2 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >&2; }; then
      echo "setup: apt-get failed; tests that need$need will be skipped" >&2
    fi
  else
    echo "setup: not root or no apt-get; tests that need$need will be skipped" >&2
  fi
fi

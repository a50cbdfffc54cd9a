#!/bin/sh
# Runs the Deno that runs the current `deno task`, with this script's arguments.
#
# Why not plain `deno` in deno.json tasks: with "nodeModulesDir": "manual", `deno task` resolves
# command names from node_modules/.bin first and runs those files as JavaScript. package.json
# pins `deno` itself, so node_modules/.bin/deno is the native binary and `deno test` inside a
# task dies with "SyntaxError: Invalid or unexpected token" (Deno 2.9.6).
#
# The task runner starts this script directly, so the parent process is the running Deno
# (`npx --yes deno@2.9.6 task ...` or `deno task ...`). Without /proc, or when run by hand,
# fall back to the pinned node_modules/.bin/deno, then `deno` on PATH.
set -eu
exe=""
if [ -r "/proc/$PPID/exe" ]; then
  exe=$(readlink "/proc/$PPID/exe" 2>/dev/null || true)
  case "$exe" in
    */deno) ;;
    *) exe="" ;;
  esac
fi
if [ -z "$exe" ]; then
  if [ -x "$(dirname "$0")/../node_modules/.bin/deno" ]; then
    exe="$(dirname "$0")/../node_modules/.bin/deno"
  else
    exe=deno
  fi
fi
exec "$exe" "$@"

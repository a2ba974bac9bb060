#!/usr/bin/env bash
# Runs the reference benchmark: the JS automerge-repo sync server on a free 127.0.0.1 port with a
# temporary storage directory, and the upload client against it. Prints the client's JSON line on
# stdout (diagnostics go to stderr). Usage: run.sh [N]   (N documents, default 1000)
set -euo pipefail

N="${1:-1000}"
WARMUP="${WARMUP:-20}"
export WARMUP
cd "$(dirname "$0")"

if [ ! -d node_modules ]; then
  timeout 300 npm ci --silent --no-audit --no-fund >&2
fi

tmp="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

node server.mjs "$tmp/store" 0 >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!

# The ready line: {"ready":true,"port":N,"pid":P}
for _ in $(seq 100); do
  grep -q '"ready":true' "$tmp/server.out" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.err" >&2; echo "server died" >&2; exit 1; }
  sleep 0.1
done
ready="$(grep -m1 '"ready":true' "$tmp/server.out")" || { echo "server not ready in 10 s" >&2; exit 1; }
port="$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' <<<"$ready")"
pid="$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' <<<"$ready")"
[ "$pid" = "$server_pid" ] || { echo "ready line names pid $pid, started $server_pid" >&2; exit 1; }

timeout 600 node client.mjs "$port" "$pid" "$N"

# Stop the server (it flushes storage on SIGTERM) and check it did so cleanly and in time.
kill -TERM "$server_pid"
for _ in $(seq 150); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$server_pid" 2>/dev/null; then echo "server ignored SIGTERM for 15 s" >&2; exit 1; fi
rc=0; wait "$server_pid" || rc=$?
server_pid=""
[ "$rc" -eq 0 ] || { cat "$tmp/server.err" >&2; echo "server exited with $rc" >&2; exit 1; }

# Every uploaded document is on disk: NodeFSStorageAdapter keeps one directory per document at
# depth 2 (<first 2 chars of id>/<rest of id>).
stored="$(find "$tmp/store" -mindepth 2 -maxdepth 2 -type d | wc -l)"
if [ "$stored" -lt $((N + WARMUP)) ]; then
  echo "server stored $stored documents, expected $((N + WARMUP))" >&2
  exit 1
fi

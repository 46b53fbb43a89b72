#!/bin/bash
# make demo: a local tcpserver chain on 127.0.0.1, a patient client (swaks)
# that gets through after the delay, and an early talker that gets 451.
# Everything it makes (the log, the memory's state file) lives in one
# temporary directory, removed at the end: it can run any number of times
# and never touches the host's own memory (/var/lib/smtp-delay).
# Needs: tcpserver (ucspi-tcp), swaks, and `make` (builds build/recorder).
# PORT=N to choose the port; by default any free one.
set -euo pipefail
cd "$(dirname "$0")/.."
deno=${DENO:-.tools/node_modules/.bin/deno}
read -ra perms <permissions
work=$(mktemp -d "${TMPDIR:-/tmp}/smtp-delay-demo.XXXXXX")
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*"; }

# -1: tcpserver prints the port it listens on (any free one for port 0).
tcpserver -1 -v -R -H 127.0.0.1 "${PORT:-0}" \
  "$deno" run "${perms[@]}" main.ts -S -d 1 -D 2 -P 3 --store "sqlite:$work/state.db" \
  build/recorder >"$work/port" 2>"$work/log" &
pid=$!
for _ in $(seq 100); do grep -q 'status: 0/' "$work/log" && break; sleep 0.1; done
port=$(head -1 "$work/port")
[ -n "$port" ] || { echo "make demo: tcpserver did not start:" >&2; cat "$work/log" >&2; exit 111; }
say "tcpserver 127.0.0.1:$port  smtp-delay -S -d 1 -D 2 -P 3  build/recorder"

say "a patient client (swaks) waits for the banner and delivers"
start=$(date +%s%N)
swaks --server "127.0.0.1:$port" --from demo@example.org --to postmaster@example.net \
  --body "hello from make demo" --hide-informational
echo "(the session took $((($(date +%s%N) - start) / 1000000)) ms)"

say "an early talker sends EHLO before the banner"
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'EHLO spam.example.org\r\n' >&3
cat <&3
exec 3<&-

for _ in $(seq 50); do grep -q ' EARLY ' "$work/log" && break; sleep 0.1; done
say "what the filter logged (multilog would add timestamps)"
grep '^smtp-delay:' "$work/log"
say "what it remembers (smtp-delay state list: the penalised and the boxed)"
"$deno" run "${perms[@]}" main.ts state --store "sqlite:$work/state.db" list
echo "(a client boxed by mistake on a real host: smtp-delay state forgive ADDRESS)"

#!/bin/bash
# make demo: a local tcpserver chain on 127.0.0.1, a patient client (swaks)
# that gets through after the delay, and an early talker that gets 451.
# Needs: tcpserver (ucspi-tcp), swaks, and `make` (builds build/recorder).
set -euo pipefail
cd "$(dirname "$0")/.."
deno=${DENO:-.tools/node_modules/.bin/deno}
read -ra perms <permissions
port=${PORT:-2525}
log=$(mktemp /tmp/smtp-delay-demo.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -f "$log"; }
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "tcpserver 127.0.0.1:$port  smtp-delay -S -d 1 -D 2 -P 3  build/recorder"
tcpserver -v -R -H 127.0.0.1 "$port" \
  "$deno" run "${perms[@]}" main.ts -S -d 1 -D 2 -P 3 build/recorder 2>"$log" &
pid=$!
for _ in $(seq 50); do grep -q 'status: 0/' "$log" && break; sleep 0.1; done

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

for _ in $(seq 50); do grep -q ' EARLY ' "$log" && break; sleep 0.1; done
say "what the filter logged (multilog would add timestamps)"
grep '^smtp-delay:' "$log"

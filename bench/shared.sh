#!/bin/bash
# usage: bench/shared.sh [RUNS]        (make bench-shared; RUNS defaults to 3)
#
# Runs the shared harness (../shared/bench, its README tells what it measures)
# on the product, on `smtp-delay serve` (its own server, through the harness's
# peers/server.sh, as peer "serve") and on bench/floor.ts (as peer
# "deno-floor") beside the harness's own peers, and writes
# bench/results/shared-summary.md.
#
# The harness runs from a copy in build/shared-bench: its own results/ folder
# holds another machine's figures, and its summary is made of every file there,
# so running it in place would mix the two machines in one table. Each round
# runs `all.sh 1` twice (the peers with the product and serve, then the floor
# in the product's place), so every peer is interleaved with every other, as
# all.sh interleaves its own.
#
# The product and serve run without memory (--store none, as in `make
# bench`): every client is 127.0.0.1, and the default store is a file under
# /var/lib that would outlive the run and carry one run's clients into the
# next. serve gets the flags run.sh gives tcpserver (-v -R -H -l localhost
# -b 1024), -c 1000 and --waiting 2000 (the 120-client burst stays far below
# the 90% of --waiting where the stress shortens the delays), and no cap per
# IP address (--per-ip 0: every client is 127.0.0.1). No DNS set-up:
# Deno.resolveDns answers 127.0.0.1's PTR from /etc/hosts.
#
# Environment: DENO and PERMISSIONS (the Makefile passes them),
# SHARED_PEERS (default "none ref qpsmtpd-chain postscreen"), SCENARIOS (as
# for all.sh), SHARED_BENCH (default ../shared/bench).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=$(cd "${SHARED_BENCH:-$root/../shared/bench}" && pwd)
runs=${1:-3}
: "${DENO:?DENO names the deno binary}" "${PERMISSIONS:?PERMISSIONS holds the flags of ./permissions}"
peers=${SHARED_PEERS:-none ref qpsmtpd-chain postscreen}
product="$DENO run $PERMISSIONS $root/main.ts -S --store none"
serve="$DENO run $PERMISSIONS $root/main.ts serve -v -R -H -l localhost -b 1024 -c 1000 --waiting 2000 --per-ip 0 -S --store none 127.0.0.1 {port}"
floor="$DENO run $PERMISSIONS $root/bench/floor.ts"
copy=$root/build/shared-bench
collected=$copy/collected

# The checkout measured: "abc1234", "+changes" when main.ts or src/ differ from it.
checkout() {
  local head
  head=$(git -C "$root" rev-parse --short HEAD 2>/dev/null) || { echo unknown; return; }
  [ -n "$(git -C "$root" status --porcelain -- main.ts src 2>/dev/null)" ] && head="$head+changes"
  echo "$head"
}
started=$(checkout)

rm -rf "$copy"
mkdir -p "$copy"
cp -r "$shared"/. "$copy"
chmod -R u+w "$copy"
rm -rf "$copy/results" "$copy/backend" "$copy/ref/smtp-delay-ref"
make -s -C "$copy"
mkdir -p "$collected"

# Moves results/SCENARIO/PEER.1.json to collected/SCENARIO/PEER.$2.json
# (peer "product" renamed to $1 when given, peer "server" to serve).
collect() {
  local dir f peer
  for dir in "$copy"/results/*/; do
    mkdir -p "$collected/$(basename "$dir")"
    for f in "$dir"*.1.json; do
      [ -e "$f" ] || continue
      peer=$(basename "$f" .1.json)
      [ "$peer" = product ] && [ -n "$1" ] && peer=$1
      [ "$peer" = server ] && peer=serve
      mv "$f" "$collected/$(basename "$dir")/$peer.$2.json"
    done
  done
  rm -rf "$copy/results"
}

for r in $(seq "$runs"); do
  echo "shared.sh: round $r/$runs: $peers product serve" >&2
  PEERS="$peers" PRODUCT_CMD="$product" SERVER_CMD="$serve" "$copy/all.sh" 1 >/dev/null
  collect "" "$r"
  echo "shared.sh: round $r/$runs: deno-floor" >&2
  PEERS=" " PRODUCT_CMD="$floor" "$copy/all.sh" 1 >/dev/null
  collect deno-floor "$r"
done
python3 "$copy/summarize.py" "$collected" >"$collected/summary.md"

out=$root/bench/results/shared-summary.md
mkdir -p "$(dirname "$out")"
{
  ended=$(checkout)
  measured="product at $started"
  [ "$ended" = "$started" ] || measured="product at $started, then $ended: the checkout changed during the run"
  echo "# The shared harness on the product ($(date -u +%Y-%m-%d), $measured)"
  echo
  echo "Command: \`make bench-shared\` (bench/shared.sh $runs): the harness of ../shared/bench,"
  echo "run from a copy, $runs rounds of \`PEERS=\"$peers\" PRODUCT_CMD=\"\$DENO run \$(cat permissions) main.ts -S --store none\""
  echo "SERVER_CMD=\"\$DENO run \$(cat permissions) main.ts serve -v -R -H -l localhost -b 1024 -c 1000 --waiting 2000 --per-ip 0 -S --store none 127.0.0.1 {port}\" all.sh 1\`"
  echo "(serve is peer \"server\" of all.sh, renamed serve: one process for every connection, in tcpserver's place)"
  echo "then \`PRODUCT_CMD=\"\$DENO run \$(cat permissions) bench/floor.ts\" all.sh 1\` (the floor, renamed deno-floor); medians of the rounds."
  echo "ref is tcpserver + the harness's C filter, none tcpserver + the backend alone."
  echo
  echo "Machine: $(nproc) cores, $(grep -m1 '^model name' /proc/cpuinfo | sed 's/^model name[[:space:]]*: //'),"
  echo "$(free -g | awk '/^Mem:/ {print $2}') GiB RAM, Linux $(uname -r); $("$DENO" --version | head -1);"
  echo "$(dpkg-query -W -f='${Package} ${Version}, ' ucspi-tcp qpsmtpd postfix 2>/dev/null)gcc $(gcc -dumpversion)."
  echo "tcpserver, backend, load generator and clients share the cores."
  cat "$collected/summary.md"
  echo
  echo "serve's memory columns in the delay table: the harness takes the sample with the most"
  echo "Private_Dirty as the peak. One long-lived Deno process does not give its heap back when its"
  echo "clients leave, so that sample may come after they have gone (\"waiting conns\" near 0), and"
  echo "the figure is then the growth of the whole run over the few connections left. \`make bench\`"
  echo "measures serve at the sample with the most clients waiting (bench/results/bench.md, the"
  echo "memory, crowd and crowd2 scenarios)."
} >"$out"
"$DENO" fmt "$out" >/dev/null 2>&1 || true # `make check` runs deno fmt --check over the repo
cat "$out"

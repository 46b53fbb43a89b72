#!/bin/bash
# scripts/deps.sh: the one list of Debian packages that the tests and the run
# files of README.md use, installed with apt-get (as root) when a command of
# theirs is missing. README's install line and .ci/run both call it.
#
# usage: scripts/deps.sh [-n]
#   -n  print the apt-get command that would run, and run nothing
#
# npm (which `make` uses to fetch Deno) is added only when none of npm, node
# and deno is on PATH: Debian's npm depends on Debian's nodejs and conflicts
# with a Node.js from elsewhere (NodeSource and the like ship npm with node),
# and with deno on PATH `make` needs no npm.
# Exit 0 when everything is there or was installed, 100 for bad usage, 111
# when apt-get fails or is needed without root.
set -euo pipefail

dry=
case "${1-}" in
  -n) dry=1 ;;
  "") ;;
  *)
    echo "deps.sh: fatal: usage: scripts/deps.sh [-n]" >&2
    exit 100
    ;;
esac

# command:package, one per package: a package is wanted when its command is missing.
wanted=(
  make:make                        # the front door
  gcc:gcc                          # build/recorder, the tests' next program
  tcpserver:ucspi-tcp              # tcpserver, tcprules, rblsmtpd, fixcrio
  dnsmasq:dnsmasq-base             # the tests' DNS server
  swaks:swaks                      # the tests' SMTP client
  redis-server:redis-server        # the Redis store's tests
  redis-cli:redis-tools
  ss:iproute2                      # socket counts in the tests
  prlimit:util-linux               # limits in the tests
  svscan:daemontools               # the run files: envuidgid, setuidgid, softlimit, multilog, supervise
  qpsmtpd-forkserver:qpsmtpd       # a real SMTP server behind the run files' test
  groff:groff-base                 # tests/doc_test.ts renders smtp-delay.8
  chromium:chromium                # tests/report_page_test.ts and make report-demo draw the report
)
need=()
for pair in "${wanted[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if ! command -v npm >/dev/null 2>&1 && ! command -v node >/dev/null 2>&1 &&
  ! command -v deno >/dev/null 2>&1; then
  need+=(npm)
fi

if [ ${#need[@]} -eq 0 ]; then
  echo "deps.sh: every package is there"
  exit 0
fi
if [ -n "$dry" ]; then
  echo "apt-get install -y ${need[*]}"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "deps.sh: fatal: unable to install ${need[*]}: apt-get needs root" >&2
  exit 111
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || { echo "deps.sh: fatal: unable to run apt-get update" >&2; exit 111; }
apt-get install -y -qq "${need[@]}" >/dev/null \
  || { echo "deps.sh: fatal: unable to install ${need[*]}" >&2; exit 111; }
echo "deps.sh: installed ${need[*]}"

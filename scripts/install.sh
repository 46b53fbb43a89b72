#!/bin/bash
# scripts/install.sh: what `make install` runs (the Makefile passes DENO,
# PERMISSIONS, PREFIX and DESTDIR in the environment).
#
#   scripts/install.sh binary FILE   FILE (dist/smtp-delay) as $DESTDIR$PREFIX/sbin/smtp-delay
#   scripts/install.sh launcher      the launcher instead, with the program and Deno in
#                                    $DESTDIR$PREFIX/lib/smtp-delay (LIB below)
#
# Either also installs the manual page, smtp-delay.8, as
# $DESTDIR$PREFIX/share/man/man8/smtp-delay.8.
#
# The launcher (scripts/smtp-delay.in) names the final paths ($PREFIX, never
# $DESTDIR). LIB holds: deno (a copy of $DENO), main.ts, src/, deno.json,
# deno.lock, and cache/, the DENO_DIR the launcher sets, prepared here:
#   1. `deno cache` emits (transpiles) every module main.ts can load, the lazy
#      ones too (state, serve, the stores), into cache/gen/, and records each
#      module's imports in cache/dep_analysis_cache_v2 (SQLite);
#   2. a few runs of the program (-v, state, serve, the filter) make the
#      writes that a first run makes to those files;
#   3. scripts/relocate_cache.ts moves the keys (absolute paths) from the
#      staging directory to LIB, checkpoints the SQLite files and makes their
#      -shm a directory, so that no start writes them, not even root's.
# What Deno 2.9.6 writes into DENO_DIR, found by running it on an empty one:
# gen/file/PATH.ts.js (each module transpiled, with the hashes of its source
# and of itself), dep_analysis_cache_v2 (each module's imports) and
# node_analysis_cache_v2 (CommonJS, empty here), SQLite files in WAL mode
# keyed by file URL; v8_code_cache_v2, written only by a run whose event loop
# turns (one that uses a store); and an empty npm/. SQLite rewrites a WAL
# database's index (its -shm file) at every open by a user allowed to write,
# root too: a -shm that is a directory is opened read-only, the index kept
# in SQLite's own memory. With DESTDIR, only the source maps inside the
# transpiled files still name the staging directory (a stack trace shows it).
# The launcher passes --no-code-cache: a prepared V8 code cache made no start
# faster (tried by hand, 30 starts each), and without it a run that uses a
# store would write new entries into the cache.
# Exit 0; 100 for bad usage; 111 when a step fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
say() { echo "make install: $*" >&2; }
die() {
  say "fatal: $1"
  exit "${2:-111}"
}

prefix=${PREFIX:-/usr/local}
destdir=${DESTDIR:-}
case "$prefix$destdir" in
  *[!A-Za-z0-9._+/-]*) die "PREFIX and DESTDIR take plain characters (A-Z a-z 0-9 . _ + - /), got \"$prefix\" and \"$destdir\"" 100 ;;
esac
case "$prefix" in
  /*) ;;
  *) die "PREFIX must be an absolute path, got \"$prefix\"" 100 ;;
esac
prefix=${prefix%/}
destdir=${destdir%/}
sbin=$destdir$prefix/sbin
man8=$destdir$prefix/share/man/man8

# The manual page, beside either form of the program.
install_man() {
  mkdir -p "$man8"
  install -m 644 "$root/smtp-delay.8" "$man8/smtp-delay.8.new"
  mv -f "$man8/smtp-delay.8.new" "$man8/smtp-delay.8"
}

case "${1-}" in
  binary)
    [ -x "${2-}" ] || die "usage: install.sh binary FILE" 100
    install_man
    mkdir -p "$sbin"
    install -m 755 "$2" "$sbin/smtp-delay.new"
    mv -f "$sbin/smtp-delay.new" "$sbin/smtp-delay"
    say "installed the compiled binary $prefix/sbin/smtp-delay and $prefix/share/man/man8/smtp-delay.8${destdir:+ (under $destdir)}"
    exit 0
    ;;
  launcher) ;;
  *) die "usage: install.sh binary FILE | launcher" 100 ;;
esac

deno=$(command -v "${DENO:-deno}") || die "no Deno: run make first"
deno=$(readlink -f "$deno")
version=$("$deno" --version | sed -n '1s/^deno \([^ ]*\).*/\1/p')
read -r -a flags <<<"${PERMISSIONS:-$(cat "$root/permissions")}"
lib=$prefix/lib/smtp-delay
stage=$destdir$lib
work=$stage.new # the cache is prepared here, then moved to $stage

install_man
rm -rf "$work"
mkdir -p "$work" "$sbin"
install -m 755 "$deno" "$work/deno"
(cd "$root" && install -m 644 main.ts deno.json deno.lock "$work/" &&
  find src -name '*.ts' -exec install -D -m 644 {} "$work/{}" \;)

# The launcher's own command line, on the staged copy.
run_staged() {
  DENO_DIR=$work/cache DENO_NO_UPDATE_CHECK=1 NO_COLOR=1 "$work/deno" run --no-code-cache \
    --config "$work/deno.json" "${flags[@]}" "$work/main.ts" "$@"
}
DENO_DIR=$work/cache DENO_NO_UPDATE_CHECK=1 NO_COLOR=1 "$work/deno" cache --quiet \
  --config "$work/deno.json" "$work/main.ts" || die "unable to prepare the module cache"
run_staged -v 2>&1 | grep -q '^smtp-delay ' || die "the staged program does not answer -v"
state=$(mktemp -d)
trap 'rm -rf "$state"' EXIT
run_staged state --store "sqlite:$state/state.db" list >/dev/null 2>&1 || true
run_staged serve >/dev/null 2>&1 || true
TCPREMOTEIP=192.0.2.2 TCPREMOTEHOST=mail.example.net \
  run_staged -d 0 --store "sqlite:$state/state.db" /bin/true </dev/null >/dev/null 2>&1 || true
mkdir -p "$work/cache/npm" # Deno creates it at every start otherwise
"$deno" run --quiet --no-config --no-lock --allow-read --allow-write \
  "$root/scripts/relocate_cache.ts" "$work/cache" "$work" "$lib" ||
  die "unable to move the module cache to $lib"
chmod -R u=rwX,go=rX "$work"

# In place of an earlier installation, then the launcher.
if [ -e "$stage" ]; then
  rm -rf "$stage.old"
  mv "$stage" "$stage.old"
fi
mv "$work" "$stage"
rm -rf "$stage.old"
sed -e "s|@LIB@|$lib|g" -e "s|@PERMISSIONS@|${flags[*]}|" "$root/scripts/smtp-delay.in" \
  >"$sbin/smtp-delay.new"
chmod 755 "$sbin/smtp-delay.new"
mv -f "$sbin/smtp-delay.new" "$sbin/smtp-delay"
if [ -z "$destdir" ]; then
  "$prefix/sbin/smtp-delay" -v 2>&1 | grep -q '^smtp-delay ' ||
    die "$prefix/sbin/smtp-delay does not answer -v"
fi
under=${destdir:+ (under $destdir)}
say "installed the launcher $prefix/sbin/smtp-delay$under: Deno $version runs $lib/main.ts on the module cache $lib/cache, prepared for that path (no compiled binary: ${WHY:-make dist was not tried}); the manual page $prefix/share/man/man8/smtp-delay.8"

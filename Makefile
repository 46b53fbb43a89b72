# smtp-delay: the front door. `make` builds what tests need, `make test` runs
# every check, `make dist` compiles dist/smtp-delay, `make install` installs
# it (or the launcher), `make bench` measures.
SHELL := /bin/bash
export DENO_NO_UPDATE_CHECK := 1
export NO_COLOR := 1

DENO_VERSION := 2.9.6
TOOLS := .tools
LOCAL_DENO := $(TOOLS)/node_modules/.bin/deno
# Deno from PATH when there is one, else the npm registry's, installed locally.
DENO := $(or $(shell command -v deno 2>/dev/null),$(LOCAL_DENO))
DENO_DEP := $(if $(filter $(LOCAL_DENO),$(DENO)),$(LOCAL_DENO))
# The permission flags, kept in one file: `deno run` in tests and bench and
# `deno compile` in `make dist` all read them from there.
PERMISSIONS := $(shell cat permissions)
CC ?= gcc

all: build/recorder $(DENO_DEP)

$(LOCAL_DENO):
	@echo "npm install --prefix $(TOOLS) deno@$(DENO_VERSION)" >&2
	@npm install --prefix $(TOOLS) --no-audit --no-fund --loglevel=error deno@$(DENO_VERSION) >&2
	@touch $@

build/recorder: tests/e2e/recorder.c
	@mkdir -p build
	$(CC) -O2 -Wall -Wextra -o $@ $<

# The same flags everywhere; `make run ARGS='-S ...'` runs the filter from
# source, to try it at a terminal: make writes nothing on stdout (but for
# "Entering directory" under -C), but it stays the filter's parent and turns
# a failure's exit code into 2. Run files use the installed program.
run: $(DENO_DEP)
	@$(DENO) run $(PERMISSIONS) main.ts $(ARGS)

check: $(DENO_DEP)
	$(DENO) fmt --check
	$(DENO) lint
	$(DENO) check main.ts src/ tests/ bench/*.ts bench/variants/ scripts/*.ts  # bench/npm/: npm, unlocked

# Unit tests, then end-to-end tests; the last line says "N passed, N failed".
test: all check
	@mkdir -p build; set -o pipefail; \
	DENO="$(DENO)" $(DENO) test --sanitize-ops --sanitize-resources --allow-all --no-prompt tests/ 2>&1 | tee build/test.log; \
	status=$$?; \
	sed -n 's/^\(ok\|FAILED\) | \([0-9]*\) passed.*| \([0-9]*\) failed.*/\2 passed, \3 failed/p' build/test.log | tail -1; \
	exit $$status

# deno compile needs denort, which it downloads from dl.deno.land; offline,
# point DENORT_BIN at a denort binary. The result must answer as smtp-delay:
# a deno CLI passed off as denort produces a file that ignores its payload.
dist: $(DENO_DEP)
	@mkdir -p dist build; rm -f dist/smtp-delay dist/smtp-delay.new
	@$(DENO) compile $(PERMISSIONS) --output dist/smtp-delay.new main.ts >build/dist.log 2>&1 \
	  || { rm -f dist/smtp-delay.new; echo "make dist: deno compile failed: it needs its runtime (denort) from dl.deno.land, or DENORT_BIN naming a denort $(DENO_VERSION) binary; see build/dist.log" >&2; exit 1; }
	@dist/smtp-delay.new -v 2>&1 | grep -q '^smtp-delay ' \
	  || { rm -f dist/smtp-delay.new; echo "make dist: the compiled file does not run smtp-delay: DENORT_BIN must name denort, not the deno CLI" >&2; exit 1; }
	@mv dist/smtp-delay.new dist/smtp-delay; rm -f build/dist.log; echo "dist/smtp-delay: ok"

# /usr/local/sbin/smtp-delay: the compiled binary when `make dist` succeeds,
# else the launcher (scripts/install.sh): the Deno in use and the program in
# $(PREFIX)/lib/smtp-delay, with a module cache prepared for that path. Both
# install the manual page as $(PREFIX)/share/man/man8/smtp-delay.8.
# DESTDIR stages the files for a package; the paths inside name PREFIX.
PREFIX ?= /usr/local
DESTDIR ?=
INSTALL_ENV = DENO="$(DENO)" PERMISSIONS="$(PERMISSIONS)" PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)"

install: $(DENO_DEP)
	@mkdir -p build; \
	if $(MAKE) -s --no-print-directory dist >build/install-dist.log 2>&1; then \
	  $(INSTALL_ENV) bash scripts/install.sh binary dist/smtp-delay; \
	else \
	  $(INSTALL_ENV) WHY="$$(sed -n 's/^make dist: //p' build/install-dist.log | tail -1)" \
	    bash scripts/install.sh launcher; \
	fi

# The launcher whether or not `make dist` could compile (tests, bench).
install-launcher: $(DENO_DEP)
	@$(INSTALL_ENV) WHY="make install-launcher" bash scripts/install.sh launcher

# The shared harness's C filter, peer "ref" of `make bench` (left out without ../shared/bench).
SHARED_BENCH ?= ../shared/bench
REFERENCE := $(if $(wildcard $(SHARED_BENCH)/ref/smtp-delay-ref.c),build/smtp-delay-ref)

build/smtp-delay-ref: $(SHARED_BENCH)/ref/smtp-delay-ref.c
	@mkdir -p build
	$(CC) -O2 -Wall -Wextra -o $@ $<

# RUNS=3 DELAY=3 CROWD=1000 PEERS="none ref floor product serve"
# SCENARIOS="delay memory crowd crowd2 latency throughput"; the crowds hold CROWD
# and 2*CROWD clients at once: a file descriptor each in the clients, serve and the recorders.
bench: all $(REFERENCE)
	ulimit -n 65536 2>/dev/null || ulimit -n "$$(ulimit -Hn)"; \
	DENO="$(DENO)" PERMISSIONS="$(PERMISSIONS)" $(DENO) run --allow-all bench/bench.ts

# The same peers through ../shared/bench beside its C reference, qpsmtpd and
# postscreen (needs qpsmtpd and postfix): bench/results/shared-summary.md.
bench-shared: all
	ulimit -n 65536 2>/dev/null || ulimit -n "$$(ulimit -Hn)"; \
	DENO="$(DENO)" PERMISSIONS="$(PERMISSIONS)" bash bench/shared.sh $${RUNS:-3}

# The CPU of one process per connection: the product, the floor and variants.
bench-startup: all
	DENO="$(DENO)" python3 bench/startup.py $${RUNS:-40}

# The smallest `softlimit -m` under which a C program, qpsmtpd and smtp-delay
# still work, and their VmPeak, as markdown on stdout (bench/results/softlimit.md
# keeps a run).
bench-softlimit: all
	DENO="$(DENO)" python3 bench/softlimit.py

# serve under a burst of COUNT [3000] connects from as many addresses, with
# tcpserver's backlog and serve's: bench/results/burst.md.
bench-burst: all
	DENO="$(DENO)" PERMISSIONS="$(PERMISSIONS)" $(DENO) run --allow-all bench/burst.ts
	$(DENO) fmt -q bench/results/burst.md

# What the metrics cost: serve's work per line and per scrape, serve under
# hostile scrapers, smtp-delay metrics reading a directory; markdown on stdout
# (bench/results/metrics-20261205.md keeps a run).
bench-metrics: all
	DENO="$(DENO)" PERMISSIONS="$(PERMISSIONS)" $(DENO) run --allow-all bench/metrics.ts

# What the DNS lists cost a connection (CPU, and wall time with a list server
# that answers in LIST_MS [50] ms), with and without the memory's cache, in the
# filter under tcpserver and in serve, and which src/lists/ modules a start
# loads without lists (needs strace): bench/results/lists.md. Not part of
# `make bench` (one script); RUNS [40], SERVE_RUNS [60].
bench-lists: all
	DENO="$(DENO)" PERMISSIONS="$(PERMISSIONS)" $(DENO) run --allow-all bench/lists.ts
	$(DENO) fmt -q bench/results/lists.md

# smtp-delay report on 30 days of made-up logs (bench/report_logs.ts, kept in
# build/bench-report/), 5,000,000 lines, on one core: bench/results/report.md.
bench-report: $(DENO_DEP)
	DENO="$(DENO)" PERMISSIONS="$(PERMISSIONS)" $(DENO) run --allow-all bench/report_bench.ts
	$(DENO) fmt -q bench/results/report.md

# The report's page on three days of made-up logs, drawn by headless Chromium
# (scripts/deps.sh installs it): docs/report.png, which README's "Report" shows.
report-demo: $(DENO_DEP)
	DENO="$(DENO)" PERMISSIONS="$(PERMISSIONS)" $(DENO) run --allow-all bench/report_demo.ts

demo: all
	DENO="$(DENO)" bash scripts/demo.sh

clean:
	rm -rf build dist

.PHONY: all run check test dist install install-launcher bench bench-shared bench-startup bench-softlimit bench-burst bench-metrics bench-lists bench-report report-demo demo clean

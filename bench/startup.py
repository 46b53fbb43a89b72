#!/usr/bin/env python3
"""bench/startup.py: the CPU of one process per connection (make bench-startup).

Runs each variant RUNS times, interleaved, at 0 s delay with fd 0 a quiet pipe
and /bin/true as the next program, and takes its CPU (user + system) from
wait4's rusage (microseconds, not clock ticks), and its wall time from fork to
reaped. Variants are the product, the floor (bench/floor.ts), the floor plus
one thing, and the launcher of `make install`, installed into
build/startup-launcher by this script, run as root and as nobody beside
`deno run` as a user who may write no cache. Prints a markdown table.
Usage: DENO=... python3 bench/startup.py [RUNS]   (default 40)
BEFORE=DIR adds the product of another checkout (a worktree at an earlier
commit) beside this one's, to measure a change; ONLY=NAME,NAME... runs only
the variants whose names start with one of those (and the floor).
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DENO = os.environ.get("DENO") or os.path.join(ROOT, ".tools/node_modules/.bin/deno")
PERMISSIONS = open(os.path.join(ROOT, "permissions")).read().split()
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 40
PLAIN = [p for p in PERMISSIONS if not p.startswith("--v8-flags")]


def deno_run(*args):
    return [DENO, "run", *PERMISSIONS, *args]


BUNDLE = os.path.join(ROOT, "build/smtp-delay.bundle.js")
# The launcher `make install` installs where it cannot compile (scripts/install.sh).
LAUNCHER_PREFIX = os.path.join(ROOT, "build/startup-launcher")
LAUNCHER = os.path.join(LAUNCHER_PREFIX, "sbin/smtp-delay")
STATE_DB = os.path.join(ROOT, "build/startup-state.db")
REDIS_PORT = 20000 + os.getpid() % 20000
# The memory with its outcome-changing rules off (every run is the same client).
QUIET = ["--strikes", "0", "--rate", "0"]
VARIANTS = [
    ("floor", deno_run("bench/floor.ts", "/bin/true")),
    ("floor + setTimeout(0)", deno_run("bench/variants/floor_timer.ts", "/bin/true")),
    ("floor + node:util parseArgs", deno_run("bench/variants/floor_parseargs.ts", "/bin/true")),
    # npm Redis clients, imported only (no connection): fetched from the npm
    # registry on the first run, outside deno.lock (--no-lock).
    ("floor + import npm:ioredis", deno_run("--no-lock", "bench/npm/floor_ioredis.ts", "/bin/true")),
    ("floor + import npm:redis", deno_run("--no-lock", "bench/npm/floor_node_redis.ts", "/bin/true")),
    ("product", deno_run("main.ts", "-d", "0", "--store", "none", "/bin/true")),
    ("product, bundled into one file", deno_run(BUNDLE, "-d", "0", "--store", "none", "/bin/true")),
    ("launcher (make install-launcher)", [LAUNCHER, "-d", "0", "--store", "none", "/bin/true"]),
    # What the rows as nobody spend in setuidgid itself (a run file's tcpserver -U needs none).
    ("setuidgid nobody /bin/true", ["setuidgid", "nobody", "/bin/true"]),
    ("launcher as nobody (the cache read-only)",
     ["setuidgid", "nobody", LAUNCHER, "-d", "0", "--store", "none", "/bin/true"]),
    # What the launcher replaces: deno run as a user that may write no cache
    # (qmaild without a DENO_DIR of its own) transpiles every module at every start.
    ("product as nobody, no cache it may write",
     ["setuidgid", "nobody", "env", "DENO_DIR=/nonexistent", *deno_run(os.path.join(ROOT, "main.ts"),
                                                                   "-d", "0", "--store", "none", "/bin/true")]),
    # With V8 flags added to `permissions` for a trial run: the product without them, beside.
    *([("product without the --v8-flags of permissions",
        [DENO, "run", *PLAIN, "main.ts", "-d", "0", "--store", "none", "/bin/true"])]
      if PLAIN != PERMISSIONS else []),
    ("product + SQLite store", deno_run("main.ts", "-d", "0", *QUIET, "--store", f"sqlite:{STATE_DB}", "/bin/true")),
    ("product + Redis store", deno_run("main.ts", "-d", "0", *QUIET, "--store", f"redis://127.0.0.1:{REDIS_PORT}", "/bin/true")),
]
if os.environ.get("BEFORE"):
    VARIANTS.append(("product at BEFORE", deno_run(os.path.join(os.environ["BEFORE"], "main.ts"),
                                                    "-d", "0", "--store", "none", "/bin/true")))
if os.environ.get("ONLY"):
    WANTED = ["floor", *os.environ["ONLY"].split(",")]
    VARIANTS = [(name, cmd) for name, cmd in VARIANTS
                if name == "floor" or any(name.startswith(w) for w in WANTED[1:])]


WALL = {}  # variant's command (as a tuple) -> wall ms of each run, from fork to reaped


def cpu_ms(cmd, env):
    quiet_r, quiet_w = os.pipe()  # fd 0: open and quiet until the process is gone
    devnull = os.open(os.devnull, os.O_WRONLY)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=quiet_r, stdout=devnull, stderr=devnull)
    os.close(quiet_r)
    os.close(devnull)
    _, status, usage = os.wait4(proc.pid, 0)
    WALL.setdefault(tuple(cmd), []).append((time.monotonic() - started) * 1000)
    proc.returncode = os.waitstatus_to_exitcode(status)
    os.close(quiet_w)
    if proc.returncode != 0:
        sys.exit(f"startup.py: {' '.join(cmd)} exited {proc.returncode}")
    return (usage.ru_utime + usage.ru_stime) * 1000


def phases(env, runs):
    """Medians of bench/phases.ts's per-phase wall times over `runs` processes."""
    seen = {}
    for _ in range(runs):
        out = subprocess.run(deno_run("bench/phases.ts"), cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, check=True).stdout
        for name, ms in json.loads(out).items():
            if name != "line":
                seen.setdefault(name, []).append(ms)
    return {name: statistics.median(values) for name, values in seen.items()}


def start_redis():
    """redis-server on REDIS_PORT, without persistence; returns once it answers."""
    proc = subprocess.Popen(["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("startup.py: redis-server did not start")


def main():
    if os.path.exists(STATE_DB):
        os.remove(STATE_DB)
    redis = start_redis()
    try:
        run_all()
    finally:
        redis.kill()


def run_all():
    env = dict(os.environ, DENO_NO_UPDATE_CHECK="1", NO_COLOR="1", TCPREMOTEIP="192.0.2.2",
               TCPREMOTEHOST="mail.example.net", SMTPDELAYP="0")
    subprocess.run([DENO, "bundle", "-q", "-o", BUNDLE, "main.ts"], cwd=ROOT, env=env, check=True)
    shutil.rmtree(LAUNCHER_PREFIX, ignore_errors=True)
    subprocess.run(["bash", "scripts/install.sh", "launcher"], cwd=ROOT, check=True,
                   env=dict(env, DENO=DENO, PERMISSIONS=" ".join(PERMISSIONS), PREFIX=LAUNCHER_PREFIX,
                            DESTDIR="", WHY="bench/startup.py"))
    for _, cmd in VARIANTS:  # a first run of each: downloads, caches
        cpu_ms(cmd, env)
    times = {name: [] for name, _ in VARIANTS}
    for _ in range(RUNS):
        for name, cmd in VARIANTS:
            times[name].append(cpu_ms(cmd, env))
    version = subprocess.run([DENO, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    floor = statistics.median(times["floor"])
    print(f"### start-up CPU per process ({RUNS} runs each, {os.cpu_count()} cores, {version})\n")
    print("| variant | median ms | mean ms | vs floor (median) | wall median ms |")
    print("| --- | --- | --- | --- | --- |")
    for name, _ in VARIANTS:
        med = statistics.median(times[name])
        wall = statistics.median(WALL[tuple(dict(VARIANTS)[name])][1:])  # not the first, uncached run
        print(f"| {name} | {med:.1f} | {statistics.mean(times[name]):.1f} | {med - floor:+.1f} ms, {100 * (med - floor) / floor:+.0f}% | {wall:.1f} |")
    print(f"\n### the product's start-up, phase by phase (wall ms inside the process, median of {RUNS})\n")
    print("| phase | median ms |")
    print("| --- | --- |")
    for name, ms in phases(env, RUNS).items():
        print(f"| {name} | {ms:.2f} |")


main()

#!/usr/bin/env python3
"""bench/softlimit.py: what `softlimit -m N` lets start (make bench-softlimit).

daemontools' `softlimit -m N` sets RLIMIT_AS, RLIMIT_DATA and RLIMIT_STACK to
N bytes (and RLIMIT_MEMLOCK, which it can only lower). RLIMIT_AS counts every
mapping of the process: its own file, ld.so, each library's whole span, the
stack, the heap, vdso. For each program this prints the smallest N (to 4 KB)
under which it still does its whole job (a whole SMTP session for the SMTP
servers, exit 0 for the others), found by bisection, and its VmPeak (the
largest address space it had) where it can be read. Prints a markdown table.
Usage: DENO=... python3 bench/softlimit.py
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DENO = os.environ.get("DENO") or os.path.join(ROOT, ".tools/node_modules/.bin/deno")
PERMISSIONS = open(os.path.join(ROOT, "permissions")).read().split()
QPSMTPD = os.path.join(ROOT, "tests/e2e/qpsmtpd-ucspi")
RECORDER = os.path.join(ROOT, "build/recorder")
TINY = os.path.join(ROOT, "build/vmpeak")
TINY_C = r"""
#include <stdio.h>
#include <string.h>
int main(void) {
  char line[256];
  FILE *f = fopen("/proc/self/status", "r");
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "VmPeak:", 7)) fputs(line, stdout);
  return 0;
}
"""
HIGH = 1_000_000_000_000  # 1 TB


def limited(limit, cmd):
    return ["softlimit", "-m", str(limit), *cmd] if limit else cmd


def status_peak(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmPeak:"):
                return int(line.split()[1])
    return None


def session(cmd, limit, env):
    """An SMTP session with `cmd` on a socket pair; (delivered, VmPeak in kB before QUIT)."""
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen(limited(limit, cmd), stdin=theirs, stdout=theirs,
                            stderr=subprocess.DEVNULL, env=env)
    theirs.close()
    ours.settimeout(30)
    f = ours.makefile("rwb", buffering=0)

    def reply():
        while True:
            line = f.readline()
            if not line:
                return b""
            if line[3:4] != b"-":
                return line

    peak, ok = None, False
    try:
        if reply().startswith(b"220"):
            for command in [b"EHLO client.example.org", b"MAIL FROM:<a@example.org>",
                            b"RCPT TO:<b@example.net>", b"DATA"]:
                f.write(command + b"\r\n")
                reply()
            f.write(b"Subject: softlimit\r\n\r\nhello\r\n.\r\n")
            ok = reply().startswith(b"250")
            peak = status_peak(proc.pid)
            f.write(b"QUIT\r\n")
            reply()
    except OSError:
        ok = False
    ours.close()
    proc.wait()
    return ok, peak


def exits_zero(cmd, limit, env):
    out = subprocess.run(limited(limit, cmd), env=env, stdin=subprocess.DEVNULL,
                         capture_output=True)
    return out.returncode == 0 and b"error while loading" not in out.stderr, None


def smallest(works):
    """The smallest limit (4 KB steps) under which works(limit) holds; None if not even at 1 TB."""
    if not works(HIGH):
        return None
    low, high = 100_000, HIGH
    while high - low > 4096:
        mid = (low + high) // 2
        if works(mid):
            high = mid
        else:
            low = mid
    return high


def deno_waiting_peak(env):
    """VmPeak of the filter from source while it waits in a 2 s delay, in kB."""
    ours, theirs = socket.socketpair()
    cmd = [DENO, "run", *PERMISSIONS, "main.ts", "-d", "2", "--store", "none", "/bin/true"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdin=theirs, stdout=theirs, stderr=subprocess.DEVNULL,
                            env=dict(env, TCPREMOTEIP="192.0.2.2", TCPREMOTEHOST="mail.example.net"))
    theirs.close()
    peak = None
    for _ in range(2000):  # until a thread sits in poll(2) (syscall 7): the delay
        try:
            if any(open(f"/proc/{proc.pid}/task/{t}/syscall").read().startswith("7 ")
                   for t in os.listdir(f"/proc/{proc.pid}/task")):
                peak = status_peak(proc.pid)
                break
        except OSError:
            pass
        if proc.poll() is not None:
            break
        os.sched_yield()
    proc.kill()
    proc.wait()
    ours.close()
    return peak


def qpsmtpd_config(dir):
    os.makedirs(f"{dir}/maildir/new")
    os.makedirs(f"{dir}/maildir/cur")
    os.makedirs(f"{dir}/maildir/tmp")
    os.makedirs(f"{dir}/spool", mode=0o700)
    files = {
        "plugin_dirs": "/usr/share/qpsmtpd/plugins",
        "loglevel": "3",
        "me": "localhost",
        "rcpthosts": "example.net",
        "spool_dir": f"{dir}/spool",
        "plugins": f"rcpt_ok\nqueue/maildir {dir}/maildir",
    }
    for name, text in files.items():
        with open(f"{dir}/{name}", "w") as f:
            f.write(text + "\n")


def main():
    env = dict(os.environ, DENO_NO_UPDATE_CHECK="1", NO_COLOR="1", TCPREMOTEIP="127.0.0.1")
    work = tempfile.mkdtemp(prefix="smtp-delay-softlimit.")
    try:
        subprocess.run(["gcc", "-O2", "-o", TINY, "-x", "c", "-"], input=TINY_C.encode(), check=True)
        qpsmtpd_config(work)
        qp_env = dict(env, QPSMTPD_CONFIG=work)
        rows = []
        tiny_peak = subprocess.run([TINY], capture_output=True, text=True).stdout.split()[1]
        rows.append(("a C main() that reads its own VmPeak (build/vmpeak)", "exit 0", int(tiny_peak),
                     smallest(lambda m: exits_zero([TINY], m, env)[0])))
        rows.append(("/bin/true", "exit 0", None, smallest(lambda m: exits_zero(["/bin/true"], m, env)[0])))
        rows.append(("openssl version (libssl, libcrypto)", "exit 0", None,
                     smallest(lambda m: exits_zero(["openssl", "version"], m, env)[0])))
        rows.append(("build/recorder (a small C SMTP server)", "a whole session",
                     session([RECORDER], None, env)[1],
                     smallest(lambda m: session([RECORDER], m, env)[0])))
        rows.append(("Debian's qpsmtpd 0.94 (tests/e2e/qpsmtpd-ucspi)", "a whole session, queued",
                     session([QPSMTPD], None, qp_env)[1],
                     smallest(lambda m: session([QPSMTPD], m, qp_env)[0])))
        deno = [DENO, "run", *PERMISSIONS, os.path.join(ROOT, "main.ts"), "-v"]
        rows.append(("smtp-delay (deno run main.ts)", "-v, exit 0", deno_waiting_peak(env),
                     smallest(lambda m: exits_zero(deno, m, env)[0])))
    finally:
        shutil.rmtree(work)
    print(f"### softlimit -m: the smallest value that works, and VmPeak ({os.uname().machine}, "
          f"{subprocess.run(['ldd', '--version'], capture_output=True, text=True).stdout.splitlines()[0]})\n")
    print("| program | job | VmPeak kB | smallest softlimit -m |")
    print("| --- | --- | --- | --- |")
    for name, job, peak, least in rows:
        peak_text = f"{peak:,}" if peak else "-"
        least_text = f"{least:,}" if least else "none up to 1 TB"
        print(f"| {name} | {job} | {peak_text} | {least_text} |")
    print("\n(smtp-delay's VmPeak: a filter waiting in its delay; V8 reserves its address space at start)")


main()

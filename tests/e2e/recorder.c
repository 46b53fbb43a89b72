/* recorder: the next program in the e2e tests and the benchmark.
 *
 * A minimal SMTP server on fd 0/1 that records what it was handed:
 *   $RECORD_DIR/PID.info  pid, ppid, exe, SigIgn, SigBlk, fd 0 flags, open fds
 *   $RECORD_DIR/PID.env   its environment, one NUL-terminated entry each
 *   $RECORD_DIR/PID.in    every byte it read from fd 0, in order
 * and answers 220 banner, 354 to DATA, 250 to the end of data and to anything
 * else, 221 to QUIT (then exits 0). The .info file is written before the
 * first read, so nothing the filter did can be hidden by what came after.
 * Without RECORD_DIR it records nothing and only talks.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static int in_fd = -1;

static void say(const char *s)
{
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t w = write(1, s, n);
    if (w <= 0) exit(0);
    s += w;
    n -= (size_t)w;
  }
}

static FILE *open_record(const char *dir, const char *ext)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/%ld.%s", dir, (long)getpid(), ext);
  return fopen(path, "w");
}

static void status_line(FILE *out, const char *key, const char *name)
{
  char line[256];
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, key, strlen(key)) == 0) fprintf(out, "%s=%s", name, line + strlen(key));
  fclose(f);
}

static void record(const char *dir)
{
  char exe[4096], fds[1024] = "", path[4096];
  size_t used = 0;
  ssize_t n;
  FILE *f;
  DIR *d;
  struct dirent *e;
  char **v;

  /* the open fds first, before this program opens any of its own */
  d = opendir("/proc/self/fd");
  if (d) {
    int dfd = dirfd(d);
    while ((e = readdir(d)))
      if (e->d_name[0] != '.' && atoi(e->d_name) != dfd && used < sizeof fds - 16)
        used += (size_t)snprintf(fds + used, sizeof fds - used, "%s ", e->d_name);
    closedir(d);
  }

  f = open_record(dir, "info");
  if (!f) exit(111);
  fprintf(f, "pid=%ld\nppid=%ld\n", (long)getpid(), (long)getppid());
  n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[n > 0 ? n : 0] = 0;
  fprintf(f, "exe=%s\n", exe);
  status_line(f, "SigIgn:\t", "sigign");
  status_line(f, "SigBlk:\t", "sigblk");
  fprintf(f, "fd0flags=%o\n", fcntl(0, F_GETFL));
  fprintf(f, "fds=%s\n", fds);
  fclose(f);

  f = open_record(dir, "env");
  if (!f) exit(111);
  for (v = environ; *v; v++) fwrite(*v, 1, strlen(*v) + 1, f);
  fclose(f);

  snprintf(path, sizeof path, "%s/%ld.in", dir, (long)getpid());
  in_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (in_fd < 0) exit(111);
}

int main(void)
{
  const char *dir = getenv("RECORD_DIR");
  char buf[4096], line[1024];
  size_t len = 0;
  int data = 0;

  if (dir && *dir) record(dir);
  say("220 recorder ESMTP\r\n");
  for (;;) {
    ssize_t r = read(0, buf, sizeof buf);
    if (r <= 0) return 0;
    if (in_fd >= 0 && write(in_fd, buf, (size_t)r) != r) return 111;
    for (ssize_t i = 0; i < r; i++) {
      if (len < sizeof line - 1) line[len++] = buf[i];
      if (buf[i] != '\n') continue;
      line[len] = 0;
      if (data) {
        if (strcmp(line, ".\r\n") == 0 || strcmp(line, ".\n") == 0) {
          data = 0;
          say("250 ok\r\n");
        }
      } else if (strncasecmp(line, "DATA", 4) == 0) {
        data = 1;
        say("354 go ahead\r\n");
      } else if (strncasecmp(line, "QUIT", 4) == 0) {
        say("221 bye\r\n");
        return 0;
      } else if (strncasecmp(line, "EHLO", 4) == 0) {
        say("250-recorder\r\n250 PIPELINING\r\n");
      } else {
        say("250 ok\r\n");
      }
      len = 0;
    }
  }
}

// LD_PRELOAD shim for test/integration/slow-disk.test.ts: a disk whose syncs are slow. fdatasync and
// fsync of a file whose path starts with $SLOW_SYNC_PREFIX sleep the ms written in $SLOW_SYNC_FILE
// (read again every 20 ms: the test slows the disk, then heals it) and append "<start ms> <end ms>" to
// $SLOW_SYNC_LOG. Built by the test with gcc; nothing else of the process is changed.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

static int ours(int fd) {
  const char *prefix = getenv("SLOW_SYNC_PREFIX");
  if (!prefix) return 0;
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (n < 0) return 0;
  path[n] = 0;
  return strncmp(path, prefix, strlen(prefix)) == 0;
}

static long delay_ms(void) {
  const char *file = getenv("SLOW_SYNC_FILE");
  FILE *f = file ? fopen(file, "r") : NULL;
  long ms = 0;
  if (f) {
    if (fscanf(f, "%ld", &ms) != 1) ms = 0;
    fclose(f);
  }
  return ms;
}

// sleeps in 20 ms steps while less than the file's delay has passed (read again at each step): writing 0
// ends a stall under way
static void slow(int fd) {
  if (!ours(fd)) return;
  long ms = delay_ms();
  if (ms <= 0) return;
  long start = now_ms(), slept = 0;
  while (slept < ms) {
    struct timespec t = { 0, 20 * 1000000L };
    while (nanosleep(&t, &t) != 0) {}
    slept += 20;
    ms = delay_ms();
  }
  const char *log = getenv("SLOW_SYNC_LOG");
  FILE *f = log ? fopen(log, "a") : NULL;
  if (f) {
    fprintf(f, "%ld %ld\n", start, now_ms());
    fclose(f);
  }
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  slow(fd);
  return real(fd);
}

int fsync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  slow(fd);
  return real(fd);
}

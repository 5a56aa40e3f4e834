/* A full disk for the real binaries, without root or a small filesystem:
 * LD_PRELOAD=libenospc_shim.so makes writes to the files it watches fail
 * with ENOSPC once they have taken SPATIALID_ENOSPC_AFTER bytes together.
 *
 *   SPATIALID_ENOSPC_PATH   watch files opened for writing whose path
 *                           contains this text (required: nothing else is
 *                           touched, so logs, stderr and reads work)
 *   SPATIALID_ENOSPC_AFTER  bytes the watched files may take in total
 *                           (default 0); the write that crosses the line
 *                           is cut short, as the kernel does, and the next
 *                           one fails
 *   SPATIALID_ENOSPC_ON     write (default): write() fails, as on ext4;
 *                           fsync or close: writes succeed but fsync() or
 *                           close() of a file past the line fails, as on
 *                           filesystems that allocate late (XFS delalloc,
 *                           NFS)
 *
 * Works inside Bazel's sandbox and through posix_spawn, since child
 * processes inherit LD_PRELOAD. Used by tests/cli:full_disk_test. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FD 65536

static unsigned char watched[MAX_FD];
static unsigned char past_line[MAX_FD];
static long long used;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static const char* env_or(const char* name, const char* fallback) {
  const char* v = getenv(name);
  return v && *v ? v : fallback;
}

static int mode_is(const char* mode) { return strcmp(env_or("SPATIALID_ENOSPC_ON", "write"), mode) == 0; }

static void maybe_watch(int fd, const char* path, int flags) {
  const char* needle = getenv("SPATIALID_ENOSPC_PATH");
  if (fd < 0 || fd >= MAX_FD || !needle || !*needle || !path) return;
  watched[fd] = (flags & (O_WRONLY | O_RDWR)) && strstr(path, needle) != NULL;
  past_line[fd] = 0;
}

/* How many of `n` bytes to `fd` may be written; -1: fail with ENOSPC now. */
static ssize_t allowance(int fd, size_t n) {
  if (fd < 0 || fd >= MAX_FD || !watched[fd]) return (ssize_t)n;
  const long long limit = atoll(env_or("SPATIALID_ENOSPC_AFTER", "0"));
  ssize_t ok;
  pthread_mutex_lock(&mu);
  const long long left = limit - used;
  if (left >= (long long)n || !mode_is("write")) {
    ok = (ssize_t)n;
  } else {
    ok = left > 0 ? (ssize_t)left : -1;
  }
  if (ok > 0) used += ok;
  if (used > limit || (ok >= 0 && (size_t)ok < n)) past_line[fd] = 1;
  pthread_mutex_unlock(&mu);
  return ok;
}

typedef int (*open_fn)(const char*, int, ...);
typedef int (*openat_fn)(int, const char*, int, ...);
typedef ssize_t (*write_fn)(int, const void*, size_t);
typedef ssize_t (*pwrite_fn)(int, const void*, size_t, off_t);
typedef ssize_t (*writev_fn)(int, const struct iovec*, int);
typedef int (*fd_fn)(int);

/* The libc function this one wraps, looked up once. */
#define REAL(name, type) \
  static type real_##name; \
  if (!real_##name) real_##name = (type)dlsym(RTLD_NEXT, #name)

static mode_t mode_arg(int flags, va_list ap) {
  return (flags & O_CREAT) || (flags & __O_TMPFILE) == __O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

/* open, open64, openat, openat64: call the real one, then watch the fd. */
#define WRAP_OPEN(name, type, params, args)                                 \
  int name params {                                                          \
    REAL(name, type);                                                        \
    va_list ap;                                                              \
    va_start(ap, flags);                                                     \
    mode_t m = mode_arg(flags, ap);                                          \
    va_end(ap);                                                              \
    int fd = real_##name args;                                               \
    maybe_watch(fd, path, flags);                                            \
    return fd;                                                               \
  }
WRAP_OPEN(open, open_fn, (const char* path, int flags, ...), (path, flags, m))
WRAP_OPEN(open64, open_fn, (const char* path, int flags, ...), (path, flags, m))
WRAP_OPEN(openat, openat_fn, (int dir, const char* path, int flags, ...), (dir, path, flags, m))
WRAP_OPEN(openat64, openat_fn, (int dir, const char* path, int flags, ...), (dir, path, flags, m))

/* write, pwrite, pwrite64: cut short or refused past the line. */
#define WRAP_WRITE(name, type, params, args)                                \
  ssize_t name params {                                                      \
    REAL(name, type);                                                        \
    ssize_t ok = allowance(fd, n);                                           \
    if (ok < 0) {                                                            \
      errno = ENOSPC;                                                        \
      return -1;                                                             \
    }                                                                        \
    return real_##name args;                                                 \
  }
WRAP_WRITE(write, write_fn, (int fd, const void* buf, size_t n), (fd, buf, (size_t)ok))
WRAP_WRITE(pwrite, pwrite_fn, (int fd, const void* buf, size_t n, off_t off), (fd, buf, (size_t)ok, off))
WRAP_WRITE(pwrite64, pwrite_fn, (int fd, const void* buf, size_t n, off_t off), (fd, buf, (size_t)ok, off))

ssize_t writev(int fd, const struct iovec* iov, int cnt) {
  REAL(writev, writev_fn);
  size_t n = 0;
  for (int i = 0; i < cnt; ++i) n += iov[i].iov_len;
  ssize_t ok = allowance(fd, n);
  if (ok < 0) { errno = ENOSPC; return -1; }
  if ((size_t)ok == n) return real_writev(fd, iov, cnt);
  /* Cut short: the first `ok` bytes, gathered. */
  char* tmp = malloc((size_t)ok);
  size_t at = 0;
  for (int i = 0; i < cnt && at < (size_t)ok; ++i) {
    size_t k = iov[i].iov_len < (size_t)ok - at ? iov[i].iov_len : (size_t)ok - at;
    memcpy(tmp + at, iov[i].iov_base, k);
    at += k;
  }
  REAL(write, write_fn);
  ssize_t r = real_write(fd, tmp, (size_t)ok);
  free(tmp);
  return r;
}

static int late_failure(int fd, const char* mode) {
  return fd >= 0 && fd < MAX_FD && watched[fd] && past_line[fd] && mode_is(mode);
}
int fsync(int fd) {
  REAL(fsync, fd_fn);
  if (late_failure(fd, "fsync")) { errno = ENOSPC; return -1; }
  return real_fsync(fd);
}
int fdatasync(int fd) {
  REAL(fdatasync, fd_fn);
  if (late_failure(fd, "fsync")) { errno = ENOSPC; return -1; }
  return real_fdatasync(fd);
}
int close(int fd) {
  REAL(close, fd_fn);
  const int fail = late_failure(fd, "close");
  if (fd >= 0 && fd < MAX_FD) watched[fd] = past_line[fd] = 0;
  int r = real_close(fd); /* Linux releases the descriptor even when close fails */
  if (fail && r == 0) { errno = ENOSPC; return -1; }
  return r;
}

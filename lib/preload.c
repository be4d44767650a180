/*
 * preload.c - libupage-preload.so: unmodified programs paged by upaged.
 *
 * Contract
 *
 * - Interposes mmap, mmap64, munmap, mprotect, mremap, msync, madvise and
 *   posix_madvise, and the calls that read or change a file's data or size
 *   (write, pwrite, ..., ftruncate, fallocate, read, pread, ...; see
 *   lib/preload.map); these are the only symbols the library exports.
 * - A new mapping (no MAP_FIXED*) that the policy selects goes to upaged
 *   through the shim's own copy of libupage and lands in its arena. The
 *   policy comes from the environment, read once at load:
 *     UPAGE_REDIRECT     all (default), anon, file or none
 *     UPAGE_MIN_SIZE     smallest length redirected, bytes, k/m/g suffix
 *     UPAGE_PATH_PREFIX  colon-separated; file mappings only of paths
 *                        starting with one of them (default: any file)
 *     UPAGED_SOCKET      the daemon's socket (libupage reads it)
 *     UPAGE_DEBUG        1: one line on stderr per decision worth knowing
 *   Only regular files are redirected, and only plain mappings (no
 *   MAP_HUGETLB, MAP_32BIT, MAP_GROWSDOWN, MAP_LOCKED, MAP_SYNC).
 * - Every call on addresses inside the arena belongs to upaged; every
 *   other call, and every mapping the policy leaves alone, goes to libc
 *   unchanged. A call that straddles the arena's edge is split, each part
 *   to its owner (munmap, mprotect, madvise, msync).
 * - Files this process maps through upaged stay coherent with its own
 *   read(2) and write(2) of them (see "files the daemon caches" below).
 * - If the daemon cannot be reached (first selected mapping), the process
 *   runs exactly as without the shim from then on. If the daemon refuses
 *   a new mapping, the kernel makes it instead, so the program sees the
 *   kernel's answer. If the daemon goes away later, calls on the arena go
 *   to the kernel (its pages stay; the kernel serves faults once the
 *   userfaultfd is gone).
 * - Never allocates, never calls dlsym outside the constructor (raw
 *   system calls stand in before it), and takes a lock of its own only
 *   around its small cache of file ranges.
 *   A call made while the same thread is already inside the shim (a
 *   signal handler, an allocator that maps from inside the library) goes
 *   to the kernel directly: munmap of arena memory is then a re-reservation,
 *   whose UFFD_EVENT_UNMAP keeps the daemon's model true.
 * - fork: libupage reconnects the child on its first call. A vfork or
 *   posix_spawn child shares our memory: it must not touch the library's
 *   state, so a process whose pid is not the one the shim knows (from load
 *   or its atfork handler) uses the kernel only. exec: the new image loads
 *   the shim afresh from the inherited environment.
 * - The shim's copy of libupage is lib/upage.c compiled with its mmap
 *   family renamed to preload_sys_* (Makefile), so the library's own
 *   kernel calls never come back into the interposer.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <pthread.h>

#include <upage/upage.h>

#define PRELOAD_EXPORT __attribute__((visibility("default")))
#define PRELOAD_HIDDEN __attribute__((visibility("hidden")))

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif

#define PL_PAGE 4096UL
/* Flags whose meaning the daemon's mappings could not keep. */
#define PL_MAP_UNSUPPORTED (MAP_HUGETLB | MAP_32BIT | MAP_GROWSDOWN | \
			    MAP_LOCKED | MAP_SYNC)

/* ---- the kernel, raw and through libc ---- */

/* Used by the shim's copy of libupage, and before dlsym has answered. */
PRELOAD_HIDDEN void *preload_sys_mmap(void *addr, size_t len, int prot,
				      int flags, int fd, off_t off)
{
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

PRELOAD_HIDDEN int preload_sys_munmap(void *addr, size_t len)
{
	return (int)syscall(SYS_munmap, addr, len);
}

PRELOAD_HIDDEN int preload_sys_mprotect(void *addr, size_t len, int prot)
{
	return (int)syscall(SYS_mprotect, addr, len, prot);
}

PRELOAD_HIDDEN int preload_sys_madvise(void *addr, size_t len, int advice)
{
	return (int)syscall(SYS_madvise, addr, len, advice);
}

PRELOAD_HIDDEN void *preload_sys_mremap(void *old, size_t old_len,
					size_t new_len, int flags, ...)
{
	void *nu = NULL;

	if (flags & MREMAP_FIXED) {
		va_list ap;

		va_start(ap, flags);
		nu = va_arg(ap, void *);
		va_end(ap);
	}
	return (void *)syscall(SYS_mremap, old, old_len, new_len, flags, nu);
}

static int preload_sys_msync(void *addr, size_t len, int flags)
{
	return (int)syscall(SYS_msync, addr, len, flags);
}

/* libc's own entry points (another interposer's, if one comes after us). */
static struct {
	void *(*mmap)(void *, size_t, int, int, int, off_t);
	int (*munmap)(void *, size_t);
	int (*mprotect)(void *, size_t, int);
	void *(*mremap)(void *, size_t, size_t, int, ...);
	int (*msync)(void *, size_t, int);
	int (*madvise)(void *, size_t, int);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*writev)(int, const struct iovec *, int);
	ssize_t (*pwrite)(int, const void *, size_t, off_t);
	ssize_t (*pwritev)(int, const struct iovec *, int, off_t);
	ssize_t (*pwritev2)(int, const struct iovec *, int, off_t, int);
	int (*ftruncate)(int, off_t);
	int (*truncate)(const char *, off_t);
	int (*fallocate)(int, int, off_t, off_t);
	ssize_t (*copy_file_range)(int, off_t *, int, off_t *, size_t,
				   unsigned int);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*readv)(int, const struct iovec *, int);
	ssize_t (*pread)(int, void *, size_t, off_t);
	ssize_t (*preadv)(int, const struct iovec *, int, off_t);
} real;

static void *real_mmap(void *a, size_t l, int p, int f, int fd, off_t o)
{
	return real.mmap ? real.mmap(a, l, p, f, fd, o) :
			   preload_sys_mmap(a, l, p, f, fd, o);
}

static int real_munmap(void *a, size_t l)
{
	return real.munmap ? real.munmap(a, l) : preload_sys_munmap(a, l);
}

static int real_mprotect(void *a, size_t l, int p)
{
	return real.mprotect ? real.mprotect(a, l, p) :
			       preload_sys_mprotect(a, l, p);
}

static int real_madvise(void *a, size_t l, int adv)
{
	return real.madvise ? real.madvise(a, l, adv) :
			      preload_sys_madvise(a, l, adv);
}

static int real_msync(void *a, size_t l, int f)
{
	return real.msync ? real.msync(a, l, f) : preload_sys_msync(a, l, f);
}

static void *real_mremap(void *old, size_t ol, size_t nl, int f, void *nu)
{
	if (real.mremap)
		return real.mremap(old, ol, nl, f, nu);
	return preload_sys_mremap(old, ol, nl, f, nu);
}

/* ---- policy and state ---- */

static struct {
	bool anon, file;
	bool debug;
	size_t min_size;
	char prefixes[1024]; /* colon-separated, "" for any */
	char socket[108];
} pol;

enum { PL_UNKNOWN, PL_PROBING, PL_ON, PL_OFF };
static _Atomic int pl_state = PL_UNKNOWN;
static unsigned long pl_arena, pl_arena_size; /* valid once PL_ON */
static _Atomic pid_t pl_pid;                 /* the process we belong to */
static __thread int pl_depth __attribute__((tls_model("initial-exec")));

static void pl_log(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n, e = errno;

	if (!pol.debug)
		return;
	n = snprintf(buf, sizeof(buf), "upage-preload[%d]: ", (int)getpid());
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(buf))
		n = sizeof(buf) - 1;
	buf[n++] = '\n';
	/* Not write(): that is ours too. */
	if (syscall(SYS_write, 2, buf, (size_t)n) < 0)
		(void)0;
	errno = e;
}

/* "123", "64k", "1m", "2g": bytes, or -1 when not a size. */
static long long pl_parse_size(const char *s)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	/* At most 1 TiB, so that the shift cannot overflow. */
	if (v > (1ULL << 40) >> shift)
		return -1;
	v <<= shift;
	if (*end)
		return -1;
	return (long long)v;
}

/* Reads the policy; false (shim off) when it cannot be understood. */
static bool pl_read_policy(void)
{
	const char *r = getenv("UPAGE_REDIRECT");
	const char *m = getenv("UPAGE_MIN_SIZE");
	const char *p = getenv("UPAGE_PATH_PREFIX");
	const char *d = getenv("UPAGE_DEBUG");
	const char *s = getenv("UPAGED_SOCKET");
	long long sz = 0;

	pol.debug = d && *d && strcmp(d, "0");
	if (!r || !*r || !strcmp(r, "all")) {
		pol.anon = pol.file = true;
	} else if (!strcmp(r, "anon")) {
		pol.anon = true;
	} else if (!strcmp(r, "file")) {
		pol.file = true;
	} else if (strcmp(r, "none")) {
		pl_log("UPAGE_REDIRECT=%s: not all, anon, file or none; "
		       "shim off", r);
		return false;
	}
	if (m && *m && (sz = pl_parse_size(m)) < 0) {
		pl_log("UPAGE_MIN_SIZE=%s: not a size; shim off", m);
		return false;
	}
	pol.min_size = (size_t)sz;
	if (p && strlen(p) >= sizeof(pol.prefixes)) {
		pl_log("UPAGE_PATH_PREFIX too long; shim off");
		return false;
	}
	if (p)
		strcpy(pol.prefixes, p);
	if (s && strlen(s) >= sizeof(pol.socket)) {
		pl_log("UPAGED_SOCKET too long; shim off");
		return false;
	}
	if (s)
		strcpy(pol.socket, s);
	return pol.anon || pol.file;
}

static void pl_atfork_child(void)
{
	pl_pid = (pid_t)syscall(SYS_getpid);
}

__attribute__((constructor)) static void pl_init(void)
{
	pl_pid = (pid_t)syscall(SYS_getpid);
	if (!pl_read_policy())
		pl_state = PL_OFF;
	/* dlsym may allocate: only here, never inside an mmap. */
	real.mmap = dlsym(RTLD_NEXT, "mmap");
	real.munmap = dlsym(RTLD_NEXT, "munmap");
	real.mprotect = dlsym(RTLD_NEXT, "mprotect");
	real.mremap = dlsym(RTLD_NEXT, "mremap");
	real.msync = dlsym(RTLD_NEXT, "msync");
	real.madvise = dlsym(RTLD_NEXT, "madvise");
	real.write = dlsym(RTLD_NEXT, "write");
	real.writev = dlsym(RTLD_NEXT, "writev");
	real.pwrite = dlsym(RTLD_NEXT, "pwrite");
	real.pwritev = dlsym(RTLD_NEXT, "pwritev");
	real.pwritev2 = dlsym(RTLD_NEXT, "pwritev2");
	real.ftruncate = dlsym(RTLD_NEXT, "ftruncate");
	real.truncate = dlsym(RTLD_NEXT, "truncate");
	real.fallocate = dlsym(RTLD_NEXT, "fallocate");
	real.copy_file_range = dlsym(RTLD_NEXT, "copy_file_range");
	real.read = dlsym(RTLD_NEXT, "read");
	real.readv = dlsym(RTLD_NEXT, "readv");
	real.pread = dlsym(RTLD_NEXT, "pread");
	real.preadv = dlsym(RTLD_NEXT, "preadv");
	pthread_atfork(NULL, NULL, pl_atfork_child);
}

/* True when this process may use the daemon: not a vfork child. */
static bool pl_own_process(void)
{
	return (pid_t)syscall(SYS_getpid) == pl_pid;
}

/* Connects on first use; true when the daemon serves us. */
static bool pl_online(void)
{
	int st = pl_state, expect = PL_UNKNOWN, r;
	struct upage_options o = { 0 };
	void *base;
	size_t size;

	if (st == PL_ON)
		return true;
	if (st != PL_UNKNOWN ||
	    !atomic_compare_exchange_strong(&pl_state, &expect, PL_PROBING))
		return false; /* off, or another thread is connecting */
	o.socket_path = pol.socket[0] ? pol.socket : NULL;
	r = upage_connect(&o);
	if (r == 0 || r == -EISCONN)
		r = upage_arena(&base, &size);
	if (r < 0) {
		pl_log("upaged not reachable at %s (%s): running without it",
		       pol.socket[0] ? pol.socket : UPAGE_DEFAULT_SOCKET,
		       strerror(-r));
		pl_state = PL_OFF;
		return false;
	}
	pl_arena = (unsigned long)base;
	pl_arena_size = size;
	pl_log("connected: arena %#lx-%#lx", pl_arena, pl_arena + size);
	pl_state = PL_ON; /* seq_cst: the arena is visible before this */
	return true;
}

/* Arena bounds, or false when there is none (yet). */
static bool pl_arena_bounds(unsigned long *lo, unsigned long *hi)
{
	if (pl_state != PL_ON)
		return false;
	*lo = pl_arena;
	*hi = pl_arena + pl_arena_size;
	return true;
}

/* Does [a, a + len) touch the arena? */
static bool pl_touches_arena(unsigned long a, size_t len)
{
	unsigned long lo, hi;

	return len && pl_arena_bounds(&lo, &hi) && a < hi && a + len > lo &&
	       a + len > a;
}

/* Whether the daemon is usable for a call on the arena, right now. */
static bool pl_arena_served(void)
{
	return pl_depth == 0 && pl_own_process();
}

static bool pl_prefix_ok(int fd)
{
	char link[32], path[4096];
	const char *p = pol.prefixes;
	ssize_t n;

	if (!*p)
		return true;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		return false;
	path[n] = '\0';
	while (*p) {
		const char *c = strchr(p, ':');
		size_t l = c ? (size_t)(c - p) : strlen(p);

		if (l && !strncmp(path, p, l))
			return true;
		p += l + (c ? 1 : 0);
	}
	return false;
}

/* Does the policy send this new mapping to the daemon? */
static bool pl_selects(size_t len, int flags, int fd)
{
	int type = flags & MAP_TYPE;
	struct stat st;

	if (pl_state == PL_OFF || pl_depth || len < pol.min_size || !len)
		return false;
	if ((flags & PL_MAP_UNSUPPORTED) ||
	    (type != MAP_PRIVATE && type != MAP_SHARED &&
	     type != MAP_SHARED_VALIDATE))
		return false;
	/* Anonymous MAP_SHARED: nothing to page in (the daemon's memfd,
	   served by the kernel's shmem): left to the kernel. */
	if (flags & MAP_ANONYMOUS)
		return pol.anon && type == MAP_PRIVATE;
	if (!pol.file || fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	return pl_prefix_ok(fd);
}

/*
 * ---- files the daemon caches ----
 *
 * The daemon's page cache of a file is its own, not the kernel's: a
 * write(2) to the file does not reach it, nor does a write through a
 * shared mapping reach read(2) before write-back. So the calls that
 * change or read a file this process maps through upaged go around the
 * daemon: pages written through shared mappings of ours are written back
 * first (msync MS_SYNC), and after the call the daemon reads the pages it
 * changed again into its page cache (msync MS_INVALIDATE), which every
 * mapping shares. The ranges to name are this process's own mappings of
 * the file, from the daemon's reverse map (cached until one may move).
 */

#define PL_MAX_FILES 256
#define PL_MAX_RANGES 16
#define PL_VM_SHARED 0x8U

/* This process's ranges that map part of a file, as the daemon said. */
struct pl_range {
	unsigned long start, end; /* bytes */
	unsigned long pgoff;      /* file page at start */
};

static struct {
	dev_t dev;
	ino_t ino;
	_Atomic bool ready;
	_Atomic bool shared;      /* mapped MAP_SHARED by us */
	_Atomic bool writers;     /* ... and maybe writable */
	/* Cache of our ranges, good while pl_gen stays cache_gen. */
	unsigned long cache_gen; /* 0: none */
	int nranges;
	struct pl_range ranges[PL_MAX_RANGES];
} pl_files[PL_MAX_FILES];
static _Atomic unsigned int pl_nfiles; /* slots taken; may pass the max */
/* Bumped by every call that may move a file mapping of ours. */
static _Atomic unsigned long pl_gen = 1;
/* Some shared file mapping of ours is (or may become) writable: its
   writes must reach the file before read(2) or write(2) touch it. Per
   file in pl_files[]; these say whether any has it. */
static _Atomic bool pl_shared_files, pl_shared_writers;
/* Guards the range caches; taken only with pl_depth raised. */
static pthread_mutex_t pl_cache_lock = PTHREAD_MUTEX_INITIALIZER;

/* The slot of st's file; -1 unknown, -2 maybe (the table overflowed). */
static int pl_file_slot(const struct stat *st)
{
	unsigned int n = pl_nfiles;

	if (n > PL_MAX_FILES)
		return -2;
	for (unsigned int i = 0; i < n; i++)
		if (pl_files[i].ready && pl_files[i].ino == st->st_ino &&
		    pl_files[i].dev == st->st_dev)
			return (int)i;
	return -1;
}

static bool pl_file_known(const struct stat *st)
{
	return pl_file_slot(st) != -1;
}

/* A file mapping through the daemon exists: remember its file. */
static void pl_file_note(int fd, int prot, int flags)
{
	struct stat st;
	unsigned int i;

	bool shared = (flags & MAP_TYPE) != MAP_PRIVATE;
	int slot;

	pl_gen++;
	if (shared) {
		pl_shared_files = true;
		if (prot & PROT_WRITE)
			pl_shared_writers = true;
	}
	if (fstat(fd, &st) < 0)
		return;
	slot = pl_file_slot(&st);
	if (slot == -1) {
		i = atomic_fetch_add(&pl_nfiles, 1);
		if (i >= PL_MAX_FILES) {
			pl_nfiles = PL_MAX_FILES + 1;
			return;
		}
		pl_files[i].dev = st.st_dev;
		pl_files[i].ino = st.st_ino;
		pl_files[i].ready = true;
		slot = (int)i;
	}
	if (slot >= 0 && shared) {
		pl_files[slot].shared = true;
		if (prot & PROT_WRITE)
			pl_files[slot].writers = true;
	}
}

/* Is fd a file that the daemon may cache for us? */
static bool pl_file_cached(int fd, struct stat *st)
{
	if (!pl_nfiles || pl_depth || pl_state != PL_ON || !pl_own_process())
		return false;
	return fstat(fd, st) == 0 && S_ISREG(st->st_mode) && pl_file_known(st);
}

/*
 * Our ranges mapping fd's file (slot, or -2 for unknown), from the cache
 * or else the daemon's reverse map. Returns how many, -1 when unknown.
 */
static int pl_file_ranges(int fd, int slot, struct pl_range *out)
{
	struct upage_rmap_entry e[64];
	unsigned long gen = pl_gen;
	pid_t me = getpid();
	size_t total = 0;
	int n, k = 0;

	if (slot >= 0) {
		pthread_mutex_lock(&pl_cache_lock);
		if (pl_files[slot].cache_gen == gen) {
			k = pl_files[slot].nranges;
			memcpy(out, pl_files[slot].ranges, sizeof(*out) * (size_t)k);
		}
		pthread_mutex_unlock(&pl_cache_lock);
		if (k)
			return k;
	}
	n = upage_rmap_query(fd, 0, 0, e, 64, &total);
	if (n < 0 || total > 64)
		return -1;
	for (int i = 0; i < n; i++) {
		if (e[i].pid != me)
			continue;
		if (k == PL_MAX_RANGES)
			return -1;
		out[k].start = e[i].start;
		out[k].end = e[i].end;
		out[k].pgoff = e[i].pgoff;
		k++;
	}
	if (slot >= 0) {
		pthread_mutex_lock(&pl_cache_lock);
		pl_files[slot].cache_gen = gen;
		pl_files[slot].nranges = k;
		memcpy(pl_files[slot].ranges, out, sizeof(*out) * (size_t)k);
		pthread_mutex_unlock(&pl_cache_lock);
	}
	return k;
}

/*
 * Pages [off, off + len) of fd's file (len 0: to its end): before a
 * read or write, write back what shared mappings wrote (the daemon's
 * write-back covers every mapping of the pages); after a write, have the
 * daemon read them again, through this process's own mappings (the only
 * ones it may name). Errors are the daemon's affair: the call goes on.
 */
enum { PL_BEFORE_READ, PL_BEFORE_WRITE, PL_AFTER_WRITE };

static void pl_file_around(int fd, const struct stat *st, off_t off,
			   size_t len, int when)
{
	struct pl_range r[PL_MAX_RANGES];
	unsigned long first, last = ~0UL, a;
	int n, e0 = errno;

	int slot = pl_file_slot(st);

	if (off < 0)
		return;
	/* Nothing written through a mapping of ours: nothing to write
	   back (other processes' mappings write back at their msync). */
	if (when != PL_AFTER_WRITE &&
	    (slot >= 0 ? !pl_files[slot].writers : !pl_shared_writers))
		return;
	first = (unsigned long)off / PL_PAGE;
	if (len)
		last = ((unsigned long)off + len - 1) / PL_PAGE;
	pl_depth++;
	n = pl_file_ranges(fd, slot, r);
	if (n < 0) {
		/* Too many to keep: ask about these pages alone. */
		struct upage_rmap_entry e[64];

		n = upage_rmap_query(fd, first, len ? last - first + 1 : 0, e,
				     64, NULL);
		int k = 0;

		for (int i = 0; i < n && k < PL_MAX_RANGES; i++)
			if (e[i].pid == getpid())
				r[k++] = (struct pl_range){ e[i].start,
					e[i].end, e[i].pgoff };
		n = k;
	}
	for (int i = 0; i < n; i++) {
		unsigned long pages = (r[i].end - r[i].start) / PL_PAGE;
		unsigned long f = first > r[i].pgoff ? first : r[i].pgoff;
		unsigned long l = r[i].pgoff + pages - 1;

		if (l > last)
			l = last;
		if (f > l)
			continue;
		a = r[i].start + (f - r[i].pgoff) * PL_PAGE;
		upage_msync((void *)a, (l - f + 1) * PL_PAGE,
			    when == PL_AFTER_WRITE ? MS_INVALIDATE : MS_SYNC);
		if (when != PL_AFTER_WRITE)
			break; /* one write-back covers every mapper */
	}
	pl_depth--;
	errno = e0;
}

/* Where a write(2) on fd lands: its offset, or the end with O_APPEND. */
static off_t pl_file_pos(int fd, const struct stat *st)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0 && (fl & O_APPEND))
		return st->st_size;
	return lseek(fd, 0, SEEK_CUR);
}

static size_t pl_iov_len(const struct iovec *iov, int n)
{
	size_t len = 0;

	for (int i = 0; i < n && iov; i++)
		len += iov[i].iov_len;
	return len;
}

/* The write interposers: before, the call, after; errno is the call's. */
#define PL_WRITE(call, fd, off, len)					\
	do {								\
		struct stat st_;					\
		off_t o_;						\
		ssize_t r_;						\
		int e_;							\
									\
		if (!pl_file_cached(fd, &st_))				\
			return call;					\
		o_ = (off);						\
		pl_file_around(fd, &st_, o_, (len), PL_BEFORE_WRITE);		\
		r_ = call;						\
		e_ = errno;						\
		if (r_ > 0)						\
			pl_file_around(fd, &st_, o_, (size_t)r_, \
				       PL_AFTER_WRITE); \
		errno = e_;						\
		return r_;						\
	} while (0)

PRELOAD_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	PL_WRITE(real.write ? real.write(fd, buf, n) :
		 syscall(SYS_write, fd, buf, n), fd, pl_file_pos(fd, &st_), n);
}

PRELOAD_EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	PL_WRITE(real.writev ? real.writev(fd, iov, cnt) :
		 syscall(SYS_writev, fd, iov, cnt), fd, pl_file_pos(fd, &st_),
		 pl_iov_len(iov, cnt));
}

PRELOAD_EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	PL_WRITE(real.pwrite ? real.pwrite(fd, buf, n, off) :
		 syscall(SYS_pwrite64, fd, buf, n, off), fd, off, n);
}

PRELOAD_EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	return pwrite(fd, buf, n, off);
}

PRELOAD_EXPORT ssize_t pwritev(int fd, const struct iovec *iov, int cnt,
			       off_t off)
{
	PL_WRITE(real.pwritev ? real.pwritev(fd, iov, cnt, off) :
		 syscall(SYS_pwritev, fd, iov, cnt, off, 0), fd, off,
		 pl_iov_len(iov, cnt));
}

PRELOAD_EXPORT ssize_t pwritev64(int fd, const struct iovec *iov, int cnt,
				 off_t off)
{
	return pwritev(fd, iov, cnt, off);
}

PRELOAD_EXPORT ssize_t pwritev2(int fd, const struct iovec *iov, int cnt,
				off_t off, int flags)
{
	PL_WRITE(real.pwritev2 ? real.pwritev2(fd, iov, cnt, off, flags) :
		 syscall(SYS_pwritev2, fd, iov, cnt, off, 0, flags), fd,
		 off == -1 ? pl_file_pos(fd, &st_) : off,
		 pl_iov_len(iov, cnt));
}

PRELOAD_EXPORT ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt,
				   off_t off, int flags)
{
	return pwritev2(fd, iov, cnt, off, flags);
}

PRELOAD_EXPORT ssize_t copy_file_range(int in, off_t *in_off, int out,
				       off_t *out_off, size_t len,
				       unsigned int flags)
{
	PL_WRITE(real.copy_file_range ?
		 real.copy_file_range(in, in_off, out, out_off, len, flags) :
		 syscall(SYS_copy_file_range, in, in_off, out, out_off, len,
			 flags),
		 out, out_off ? *out_off : pl_file_pos(out, &st_), len);
}

/* A size change: from the shorter end to the end of the file. */
static int pl_resize(int fd, const struct stat *st, off_t old, int r, int e)
{
	if (r == 0)
		pl_file_around(fd, st, old, 0, PL_AFTER_WRITE);
	errno = e;
	return r;
}

PRELOAD_EXPORT int ftruncate(int fd, off_t len)
{
	struct stat st;
	int r;

	if (!pl_file_cached(fd, &st))
		return real.ftruncate ? real.ftruncate(fd, len) :
					(int)syscall(SYS_ftruncate, fd, len);
	pl_file_around(fd, &st, len < st.st_size ? len : st.st_size, 0,
		       PL_BEFORE_WRITE);
	r = real.ftruncate ? real.ftruncate(fd, len) :
			     (int)syscall(SYS_ftruncate, fd, len);
	return pl_resize(fd, &st, len < st.st_size ? len : st.st_size, r,
			 errno);
}

PRELOAD_EXPORT int ftruncate64(int fd, off_t len)
{
	return ftruncate(fd, len);
}

PRELOAD_EXPORT int truncate(const char *path, off_t len)
{
	struct stat st;
	int fd, r, e;

	r = real.truncate ? real.truncate(path, len) :
			    (int)syscall(SYS_truncate, path, len);
	if (r < 0 || !pl_nfiles || pl_depth)
		return r;
	e = errno;
	/* By path: an fd names the file to the daemon. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0) {
		if (pl_file_cached(fd, &st))
			pl_file_around(fd, &st, len, 0, PL_AFTER_WRITE);
		close(fd);
	}
	errno = e;
	return r;
}

PRELOAD_EXPORT int truncate64(const char *path, off_t len)
{
	return truncate(path, len);
}

PRELOAD_EXPORT int fallocate(int fd, int mode, off_t off, off_t len)
{
	struct stat st;
	int r;

	if (!pl_file_cached(fd, &st))
		return real.fallocate ? real.fallocate(fd, mode, off, len) :
			(int)syscall(SYS_fallocate, fd, mode, off, len);
	pl_file_around(fd, &st, off, 0, PL_BEFORE_WRITE);
	r = real.fallocate ? real.fallocate(fd, mode, off, len) :
			     (int)syscall(SYS_fallocate, fd, mode, off, len);
	/* Collapse and insert move what follows: to the end. */
	return pl_resize(fd, &st, off, r, errno);
}

PRELOAD_EXPORT int fallocate64(int fd, int mode, off_t off, off_t len)
{
	return fallocate(fd, mode, off, len);
}

/* The read interposers: shared mappings' writes reach the file first. */
#define PL_READ(call, fd, off, len)					\
	do {								\
		struct stat st_;					\
									\
		if (pl_file_cached(fd, &st_))				\
			pl_file_around(fd, &st_, (off), (len),	\
				       PL_BEFORE_READ); \
		return call;						\
	} while (0)

PRELOAD_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	PL_READ(real.read ? real.read(fd, buf, n) :
		syscall(SYS_read, fd, buf, n), fd, lseek(fd, 0, SEEK_CUR), n);
}

PRELOAD_EXPORT ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
	PL_READ(real.readv ? real.readv(fd, iov, cnt) :
		syscall(SYS_readv, fd, iov, cnt), fd, lseek(fd, 0, SEEK_CUR),
		pl_iov_len(iov, cnt));
}

PRELOAD_EXPORT ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	PL_READ(real.pread ? real.pread(fd, buf, n, off) :
		syscall(SYS_pread64, fd, buf, n, off), fd, off, n);
}

PRELOAD_EXPORT ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
	return pread(fd, buf, n, off);
}

PRELOAD_EXPORT ssize_t preadv(int fd, const struct iovec *iov, int cnt,
			      off_t off)
{
	PL_READ(real.preadv ? real.preadv(fd, iov, cnt, off) :
		syscall(SYS_preadv, fd, iov, cnt, off, 0), fd, off,
		pl_iov_len(iov, cnt));
}

PRELOAD_EXPORT ssize_t preadv64(int fd, const struct iovec *iov, int cnt,
				off_t off)
{
	return preadv(fd, iov, cnt, off);
}

/* ---- the interposers ---- */

static void *pl_mmap(void *addr, size_t len, int prot, int flags, int fd,
		     off_t off)
{
	unsigned long a = (unsigned long)addr;
	void *p;
	int e;

	if (!(flags & (MAP_FIXED | MAP_FIXED_NOREPLACE))) {
		if (!pl_selects(len, flags, fd) || !pl_own_process())
			return real_mmap(addr, len, prot, flags, fd, off);
		pl_depth++;
		if (pl_online()) {
			/* A hint outside the arena means nothing to us. */
			if (!pl_touches_arena(a, len))
				addr = NULL;
			p = upage_mmap(addr, len, prot, flags, fd, off);
			if (p != MAP_FAILED) {
				if (!(flags & MAP_ANONYMOUS))
					pl_file_note(fd, prot, flags);
				pl_depth--;
				return p;
			}
			pl_log("mmap(%zu, prot %#x, flags %#x, fd %d): upaged "
			       "says %s; the kernel maps it", len, prot, flags,
			       fd, strerror(errno));
		}
		pl_depth--;
		return real_mmap(addr, len, prot, flags, fd, off);
	}
	if (!pl_touches_arena(a, len))
		return real_mmap(addr, len, prot, flags, fd, off);
	/* A fixed mapping on the arena: only the daemon may place there. */
	if (a < pl_arena || a + len > pl_arena + pl_arena_size) {
		pl_log("mmap fixed %#lx+%zu straddles the arena", a, len);
		errno = EINVAL;
		return MAP_FAILED;
	}
	if (!pl_arena_served())
		return real_mmap(addr, len, prot, flags, fd, off);
	pl_depth++;
	p = upage_mmap(addr, len, prot, flags, fd, off);
	e = errno;
	if (p != MAP_FAILED && !(flags & MAP_ANONYMOUS))
		pl_file_note(fd, prot, flags);
	pl_gen++;
	pl_depth--;
	if (p == MAP_FAILED && e == ENOTCONN)
		return real_mmap(addr, len, prot, flags, fd, off);
	errno = e;
	return p;
}

PRELOAD_EXPORT void *mmap(void *addr, size_t len, int prot, int flags,
			  int fd, off_t off)
{
	return pl_mmap(addr, len, prot, flags, fd, off);
}

PRELOAD_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags,
			    int fd, off_t off)
{
	return pl_mmap(addr, len, prot, flags, fd, off);
}

enum pl_op { PL_MUNMAP, PL_MPROTECT, PL_MADVISE, PL_MSYNC };

/* The kernel's side of op on [a, a + len). */
static int pl_kernel_op(enum pl_op op, unsigned long a, size_t len, int arg)
{
	void *p = (void *)a;

	switch (op) {
	case PL_MUNMAP:
		return real_munmap(p, len);
	case PL_MPROTECT:
		return real_mprotect(p, len, arg);
	case PL_MADVISE:
		return real_madvise(p, len, arg);
	case PL_MSYNC:
		return real_msync(p, len, arg);
	}
	return 0;
}

/* op on [a, a + len), all inside the arena. */
static int pl_arena_op(enum pl_op op, unsigned long a, size_t len, int arg)
{
	void *p = (void *)a;
	int r = 0;

	if (!pl_arena_served()) {
		/* Unmapped arena memory must stay reserved: map fresh
		   reservation over it (the daemon sees UFFD_EVENT_UNMAP). */
		if (op == PL_MUNMAP)
			return real_mmap(p, len, PROT_NONE, MAP_FIXED |
					 MAP_PRIVATE | MAP_ANONYMOUS |
					 MAP_NORESERVE, -1, 0) == MAP_FAILED ?
			       -1 : 0;
		return pl_kernel_op(op, a, len, arg);
	}
	pl_depth++;
	switch (op) {
	case PL_MUNMAP:
		r = upage_munmap(p, len);
		pl_gen++;
		break;
	case PL_MPROTECT:
		r = upage_mprotect(p, len, arg);
		if ((arg & PROT_WRITE) && pl_shared_files) {
			/* Which file's mapping it was is not known here. */
			unsigned int n = pl_nfiles;

			pl_shared_writers = true;
			for (unsigned int i = 0; i < n && i < PL_MAX_FILES; i++)
				if (pl_files[i].shared)
					pl_files[i].writers = true;
		}
		break;
	case PL_MADVISE:
		r = upage_madvise(p, len, arg);
		break;
	case PL_MSYNC:
		r = upage_msync(p, len, arg);
		break;
	}
	pl_depth--;
	/* The daemon is gone: the kernel alone has the memory now. */
	if (r < 0 && errno == ENOTCONN) {
		pl_depth++;
		r = pl_arena_op(op, a, len, arg);
		pl_depth--;
	}
	return r;
}

/* op on any range: the parts inside the arena to the daemon, the rest to
   the kernel; the first error wins, as far as it got. */
static int pl_split_op(enum pl_op op, void *addr, size_t len, int arg)
{
	unsigned long a = (unsigned long)addr, end, lo = 0, hi = 0, s, e;
	int r = 0, err = 0;

	if (!pl_touches_arena(a, len) || (a & (PL_PAGE - 1)))
		return pl_kernel_op(op, a, len, arg);
	end = (a + len + PL_PAGE - 1) & ~(PL_PAGE - 1);
	if (end < a)
		return pl_kernel_op(op, a, len, arg); /* the kernel's EINVAL */
	pl_arena_bounds(&lo, &hi);
	if (a < lo && pl_kernel_op(op, a, lo - a, arg) < 0 && !err)
		err = errno;
	s = a > lo ? a : lo;
	e = end < hi ? end : hi;
	if (pl_arena_op(op, s, e - s, arg) < 0 && !err)
		err = errno;
	if (end > hi && pl_kernel_op(op, hi, end - hi, arg) < 0 && !err)
		err = errno;
	if (err) {
		errno = err;
		r = -1;
	}
	return r;
}

PRELOAD_EXPORT int munmap(void *addr, size_t len)
{
	return pl_split_op(PL_MUNMAP, addr, len, 0);
}

PRELOAD_EXPORT int mprotect(void *addr, size_t len, int prot)
{
	return pl_split_op(PL_MPROTECT, addr, len, prot);
}

PRELOAD_EXPORT int madvise(void *addr, size_t len, int advice)
{
	return pl_split_op(PL_MADVISE, addr, len, advice);
}

PRELOAD_EXPORT int msync(void *addr, size_t len, int flags)
{
	return pl_split_op(PL_MSYNC, addr, len, flags);
}

/* glibc's posix_madvise calls the kernel itself: route it through ours. */
PRELOAD_EXPORT int posix_madvise(void *addr, size_t len, int advice)
{
	int e = errno, r;

	/* As glibc: POSIX_MADV_DONTNEED would discard data, so it is a
	   no-op. */
	if (advice == POSIX_MADV_DONTNEED)
		return 0;
	r = madvise(addr, len, advice) < 0 ? errno : 0;
	errno = e;
	return r;
}

PRELOAD_EXPORT void *mremap(void *old, size_t old_len, size_t new_len,
			    int flags, ...)
{
	unsigned long a = (unsigned long)old, lo = 0, hi = 0, n;
	bool old_in, new_in;
	void *nu = NULL, *p;
	int e;

	if (flags & MREMAP_FIXED) {
		va_list ap;

		va_start(ap, flags);
		nu = va_arg(ap, void *);
		va_end(ap);
	}
	n = (unsigned long)nu;
	old_in = pl_touches_arena(a, old_len ? old_len : 1);
	new_in = (flags & MREMAP_FIXED) && pl_touches_arena(n, new_len);
	if (!old_in && !new_in)
		return real_mremap(old, old_len, new_len, flags, nu);
	pl_arena_bounds(&lo, &hi);
	/* Memory cannot cross the arena's edge in either direction: the
	   daemon would lose track of it, or find foreign pages in it. */
	if (!old_in || ((flags & MREMAP_FIXED) &&
			(n < lo || n + new_len > hi || n + new_len < n)) ||
	    a < lo || a + old_len > hi) {
		pl_log("mremap %#lx+%zu -> %#lx+%zu crosses the arena edge",
		       a, old_len, n, new_len);
		errno = old_in && !(flags & MREMAP_FIXED) ? EFAULT : EINVAL;
		return MAP_FAILED;
	}
	if (!pl_arena_served()) {
		if (pl_depth) {
			errno = ENOMEM; /* not from inside ourselves */
			return MAP_FAILED;
		}
		return real_mremap(old, old_len, new_len, flags, nu);
	}
	pl_depth++;
	p = upage_mremap(old, old_len, new_len, flags, nu);
	e = errno;
	pl_gen++;
	pl_depth--;
	if (p == MAP_FAILED && e == ENOTCONN)
		return real_mremap(old, old_len, new_len, flags, nu);
	errno = e;
	return p;
}

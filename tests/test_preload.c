/*
 * test_preload.c - libupage-preload.so and upage-run with a private daemon:
 * programs run as without the shim when no daemon answers (silent unless
 * UPAGE_DEBUG), anonymous and file mappings go to the daemon, upage-run
 * passes exit status and signals through, fork/vfork/exec under the shim,
 * 8 threads mapping at once ($UPAGE_PRELOAD_STRESS_SECS, default 3;
 * the plain pass of `make test` sets 30), random mmap/munmap/mprotect/
 * mremap with the daemon's maps (upagectl maps PID) equal to the
 * kernel's after every step, and
 * real programs with identical results with and without the shim: sqlite3
 * over a 100+ MB database with writes, LMDB load and dump of 100 000
 * records, Python's mmap and numpy.memmap over a 256 MiB file (a
 * quarter of each under ASan, see SCALE).
 *
 * Helpers are this program run again under the shim ("helper ROLE ...").
 * Under ASan the shim is ASan-built: the ASan runtime goes first in
 * LD_PRELOAD, found in our own maps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <inttypes.h>
#include <spawn.h>
#include <sys/mman.h>
#include <libgen.h>

#include <cmocka.h>

#include <upage/upage.h>

#include "upaged_harness.h"
#include "upaged_filetest.h"

#define PG 4096UL

/*
 * Data sizes of the real-program tests: the in the plain run.
 * Under ASan the daemon is several times slower and the programs are not
 * instrumented anyway: the same paths, with a quarter of the data.
 */
#if defined(__SANITIZE_ADDRESS__)
#define SCALE 4
#else
#define SCALE 1
#endif
#define SQL_ROWS (100000 / SCALE)      /* about 1 KB each */
#define LMDB_RECORDS (100000 / SCALE)
#define PY_BYTES ((256UL << 20) / SCALE)

extern char **environ;

static struct harness h;
static char dir[64];
static char shim[4096];     /* LD_PRELOAD value: [asan runtime] shim */
static char run_bin[4096];  /* upage-run */
static char self[4096];     /* this program */

/* ---- helpers run under the shim ---- */

static int fail_line(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

static unsigned char pat(unsigned long salt, unsigned long i)
{
	return (unsigned char)((i * 2654435761UL) >> 13 ^ salt);
}

/* Waits for stdin to close (the test has looked at us). */
static void wait_stdin(void)
{
	char c;

	while (read(0, &c, 1) > 0)
		;
}

/* basic LEN: an anonymous mapping, filled and checked, then waits. */
static int helper_basic(char **argv)
{
	size_t len = strtoul(argv[0], NULL, 0);
	unsigned char *p;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED)
		return fail_line("mmap: %s", strerror(errno));
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return fail_line("not zero at %zu", i);
	for (size_t i = 0; i < len; i++)
		p[i] = pat(1, i);
	for (size_t i = 0; i < len; i++)
		if (p[i] != pat(1, i))
			return fail_line("bad byte at %zu", i);
	printf("mapped %lx %zu\n", (unsigned long)p, len);
	fflush(stdout);
	wait_stdin();
	if (munmap(p, len))
		return fail_line("munmap: %s", strerror(errno));
	printf("done\n");
	return 0;
}

/* forkexec: fork (child checks and maps), posix_spawn, then exec. */
static int helper_forkexec(char **argv)
{
	size_t len = 4UL << 20;
	unsigned char *p, *q;
	pid_t pid;
	int st;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED)
		return fail_line("mmap: %s", strerror(errno));
	for (size_t i = 0; i < len; i += 512)
		p[i] = pat(2, i);
	pid = fork();
	if (pid == 0) {
		for (size_t i = 0; i < len; i += 512)
			if (p[i] != pat(2, i))
				_exit(fail_line("child sees %zu wrong", i));
		for (size_t i = 0; i < len; i += 512)
			p[i] = pat(3, i); /* private to the child */
		q = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (q == MAP_FAILED)
			_exit(fail_line("child mmap: %s", strerror(errno)));
		for (size_t i = 0; i < len; i += 512)
			q[i] = pat(4, i);
		for (size_t i = 0; i < len; i += 512)
			if (q[i] != pat(4, i) || p[i] != pat(3, i))
				_exit(fail_line("child data %zu", i));
		if (munmap(q, len) || munmap(p, len))
			_exit(fail_line("child munmap: %s", strerror(errno)));
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
	    WEXITSTATUS(st))
		return fail_line("fork child failed");
	for (size_t i = 0; i < len; i += 512)
		if (p[i] != pat(2, i))
			return fail_line("parent sees %zu changed", i);
	printf("fork ok\n");
	/* posix_spawn: a vfork-style child shares our memory for a moment. */
	{
		char *args[] = { self, "helper", "basic", "65536", NULL };
		int in[2];

		if (pipe(in))
			return 1;
		posix_spawn_file_actions_t fa;

		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(&fa, in[0], 0);
		posix_spawn_file_actions_addclose(&fa, in[1]);
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
		if (posix_spawn(&pid, self, &fa, NULL, args, environ))
			return fail_line("posix_spawn failed");
		posix_spawn_file_actions_destroy(&fa);
		close(in[0]);
		close(in[1]);
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
		    WEXITSTATUS(st))
			return fail_line("spawned child failed");
	}
	q = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (q == MAP_FAILED || (q[0] = 1, munmap(q, PG)))
		return fail_line("after spawn: %s", strerror(errno));
	printf("spawn ok\n");
	fflush(stdout);
	/* exec: the new image starts clean and maps again. */
	execl(self, self, "helper", "basic", "1048576", (char *)NULL);
	return fail_line("exec: %s", strerror(errno));
}

struct stress {
	int id;
	volatile int *stop;
	unsigned long ops;
	int err;
	const unsigned char *file; /* a shared, read-only file mapping */
	size_t file_len;
};

static unsigned long xs(unsigned long *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *stress_thread(void *arg)
{
	struct stress *t = arg;
	unsigned long seed = 0x9e3779b97f4a7c15UL * (unsigned long)(t->id + 1);

	while (!*t->stop && !t->err) {
		size_t pages = 1 + xs(&seed) % 64, len = pages * PG, cut;
		unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED) {
			t->err = errno;
			break;
		}
		for (size_t i = 0; i < len; i += PG)
			if (p[i] || p[i + PG - 1])
				t->err = -1;
		for (size_t i = 0; i < len; i += 64)
			p[i] = pat((unsigned long)t->id, i);
		if (mprotect(p, len, PROT_READ))
			t->err = errno;
		for (size_t i = 0; i < len; i += 64)
			if (p[i] != pat((unsigned long)t->id, i))
				t->err = -2;
		if (mprotect(p, len, PROT_READ | PROT_WRITE))
			t->err = errno;
		/* Unmap a middle piece: the rest must keep its data. */
		cut = pages > 2 ? 1 + xs(&seed) % (pages - 2) : 0;
		if (cut && munmap(p + cut * PG, PG))
			t->err = errno;
		for (size_t i = 0; i < len; i += 64)
			if ((i / PG) != cut && p[i] != pat((unsigned long)t->id, i))
				t->err = -3;
		/* The pieces only: the hole may be another thread's now. */
		if (cut && (munmap(p, cut * PG) ||
			    munmap(p + (cut + 1) * PG, len - (cut + 1) * PG)))
			t->err = errno;
		if (!cut && munmap(p, len))
			t->err = errno;
		/* And a read of the file mapping, at a random page. */
		if (t->file) {
			size_t i = (xs(&seed) % (t->file_len / PG)) * PG;

			if (t->file[i] != pat(9, i))
				t->err = -4;
		}
		t->ops++;
	}
	return NULL;
}

/* threads SECONDS FILE: 8 threads map, touch, protect and unmap. */
static int helper_threads(char **argv)
{
	int secs = atoi(argv[0]);
	volatile int stop = 0;
	struct stress t[8];
	pthread_t th[8];
	unsigned long ops = 0;
	struct stat st;
	unsigned char *f;
	int fd, bad = 0;

	fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st))
		return fail_line("open %s: %s", argv[1], strerror(errno));
	f = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (f == MAP_FAILED)
		return fail_line("mmap file: %s", strerror(errno));
	close(fd);
	for (int i = 0; i < 8; i++) {
		t[i] = (struct stress){ .id = i, .stop = &stop, .file = f,
					.file_len = (size_t)st.st_size };
		pthread_create(&th[i], NULL, stress_thread, &t[i]);
	}
	sleep((unsigned int)secs); /* the run's length, not a wait for readiness */
	stop = 1;
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		ops += t[i].ops;
		if (t[i].err)
			bad = fail_line("thread %d: error %d", i, t[i].err);
	}
	printf("ops %lu\n", ops);
	return bad;
}

/*
 * random SEED STEPS FILE: random mmap/munmap/mprotect/mremap of anonymous
 * and file ranges; after each step prints "step N" and waits for a line.
 */
static int helper_random(char **argv)
{
	unsigned long seed = strtoul(argv[0], NULL, 0) | 1;
	int steps = atoi(argv[1]);
	/* uniform: one VMA (no partial mprotect), so mremap may take it. */
	struct {
		unsigned char *p;
		size_t len;
		bool file, uniform;
	} m[16] = { 0 };
	char line[64];
	int fd = open(argv[2], O_RDWR | O_CLOEXEC);
	struct stat st;

	if (fd < 0 || fstat(fd, &st))
		return fail_line("open %s: %s", argv[2], strerror(errno));
	for (int s = 0; s < steps; s++) {
		int k = (int)(xs(&seed) % 16), op = (int)(xs(&seed) % 5);
		static const int prots[] = { PROT_READ, PROT_READ | PROT_WRITE,
					     PROT_NONE, PROT_READ | PROT_EXEC };

		if (!m[k].p || op == 0) {
			size_t pages = 1 + xs(&seed) % 32;
			bool file = xs(&seed) % 2;
			int prot = prots[xs(&seed) % 4];
			off_t off = 0;
			int flags = MAP_PRIVATE;

			if (m[k].p && munmap(m[k].p, m[k].len))
				return fail_line("munmap: %s", strerror(errno));
			if (file) {
				off = (off_t)(xs(&seed) % ((size_t)st.st_size / PG
							   - pages)) * (off_t)PG;
				flags = xs(&seed) % 2 ? MAP_SHARED : MAP_PRIVATE;
			} else {
				flags |= MAP_ANONYMOUS;
			}
			m[k].p = mmap(NULL, pages * PG, prot, flags,
				      file ? fd : -1, off);
			if (m[k].p == MAP_FAILED)
				return fail_line("mmap: %s", strerror(errno));
			m[k].len = pages * PG;
			m[k].file = file;
			m[k].uniform = true;
			if (file && (prot & PROT_READ))
				for (size_t i = 0; i < m[k].len; i += PG)
					if (m[k].p[i] != pat(9, (size_t)off + i))
						return fail_line("file data");
			if (!file && (prot & PROT_WRITE))
				for (size_t i = 0; i < m[k].len; i += PG)
					m[k].p[i] = (unsigned char)i;
		} else if (op == 1) {
			/* Unmap a random piece (may split). */
			size_t pages = m[k].len / PG;
			size_t a = xs(&seed) % pages, n = 1 + xs(&seed) % (pages - a);

			if (munmap(m[k].p + a * PG, n * PG))
				return fail_line("munmap: %s", strerror(errno));
			if (a == 0 && n == pages)
				m[k].p = NULL;
			else if (a == 0) /* keep the tail as the slot */
				m[k].p += n * PG, m[k].len -= n * PG;
			else
				m[k].len = a * PG; /* the tail is left over */
		} else if (op == 2 || op == 3) {
			size_t pages = m[k].len / PG;
			size_t a = xs(&seed) % pages, n = 1 + xs(&seed) % (pages - a);

			if (mprotect(m[k].p + a * PG, n * PG,
				     prots[xs(&seed) % 4]))
				return fail_line("mprotect: %s", strerror(errno));
			m[k].uniform = false;
		} else if (!m[k].file && m[k].uniform) {
			/* mremap an anonymous one: grow or shrink, may move. */
			size_t nl = (1 + xs(&seed) % 32) * PG;
			void *q = mremap(m[k].p, m[k].len, nl, MREMAP_MAYMOVE);

			if (q == MAP_FAILED)
				return fail_line("mremap: %s", strerror(errno));
			m[k].p = q;
			m[k].len = nl;
		}
		printf("step %d\n", s);
		fflush(stdout);
		if (!fgets(line, sizeof(line), stdin))
			return fail_line("test went away");
	}
	return 0;
}

static int helper_main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 4 && !strcmp(argv[2], "basic"))
		return helper_basic(argv + 3);
	if (argc >= 3 && !strcmp(argv[2], "forkexec"))
		return helper_forkexec(argv + 3);
	if (argc >= 5 && !strcmp(argv[2], "threads"))
		return helper_threads(argv + 3);
	if (argc >= 6 && !strcmp(argv[2], "random"))
		return helper_random(argv + 3);
	return fail_line("unknown helper");
}

/* ---- the test's side ---- */

struct child {
	pid_t pid;
	FILE *out; /* its stdout */
	FILE *err; /* its stderr */
	int in;    /* its stdin */
};

/*
 * Runs argv with the shim (shim_on) and env ("NAME=VALUE", NULL-ended)
 * added to ours, stdin/stdout/stderr on pipes.
 */
static void spawn(struct child *c, char *const argv[], bool shim_on,
		  const char *const *env)
{
	int in[2], out[2], err[2];

	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		if (shim_on)
			setenv("LD_PRELOAD", shim, 1);
		setenv("UPAGED_SOCKET", h.sock, 1);
		unsetenv("UPAGE_DEBUG");
		/* The ASan runtime's own leak report is not the program's. */
		setenv("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1", 1);
		for (; env && *env; env++)
			putenv((char *)*env);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	c->in = in[1];
	c->out = fdopen(out[0], "r");
	c->err = fdopen(err[0], "r");
}

/* Closes its stdin, reads the rest, returns the wait status. */
static int finish(struct child *c, char *out, size_t outlen, char *err,
		  size_t errlen)
{
	int st = -1;
	size_t n;

	if (c->in >= 0)
		close(c->in);
	c->in = -1;
	n = fread(out, 1, outlen - 1, c->out);
	out[n] = '\0';
	n = fread(err, 1, errlen - 1, c->err);
	err[n] = '\0';
	fclose(c->out);
	fclose(c->err);
	while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR)
		;
	return st;
}

static int run_status(char *const argv[], bool shim_on, const char *const *env,
		      char *out, size_t outlen, char *err, size_t errlen)
{
	struct child c;

	spawn(&c, argv, shim_on, env);
	return finish(&c, out, outlen, err, errlen);
}

static uint64_t daemon_faults(void)
{
	struct upage_stats_reply st;

	assert_int_equal(upage_stats(&st), 0);
	return st.global.faults;
}

static uint64_t daemon_requests(void)
{
	struct upage_stats_reply st;

	assert_int_equal(upage_stats(&st), 0);
	return st.global.requests;
}

/* No daemon: the program runs as without the shim, silently. */
static void test_no_daemon(void **state)
{
	char *argv[] = { self, "helper", "basic", "1048576", NULL };
	const char *env[] = { "UPAGED_SOCKET=/nonexistent/upaged.sock", NULL };
	const char *dbg[] = { "UPAGED_SOCKET=/nonexistent/upaged.sock",
			      "UPAGE_DEBUG=1", NULL };
	char out[4096], err[4096], out2[4096];
	int st;

	st = run_status(argv, true, env, out, sizeof(out), err, sizeof(err));
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_non_null(strstr(out, "mapped "));
	assert_non_null(strstr(out, "done\n"));
	assert_string_equal(err, "");
	/* With debug logging: exactly one line, saying why. */
	st = run_status(argv, true, dbg, out2, sizeof(out2), err, sizeof(err));
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_non_null(strstr(err, "not reachable"));
	assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1);
}

/* Reads "mapped ADDR LEN" from a basic helper. */
static void read_mapped(struct child *c, unsigned long *addr, size_t *len)
{
	char line[256];

	assert_non_null(fgets(line, sizeof(line), c->out));
	assert_int_equal(sscanf(line, "mapped %lx %zu", addr, len), 2);
}

/* Lines of `upagectl maps PID` (or /proc/PID/maps) in [lo, hi). */
struct mline {
	unsigned long start, end, off;
	char perms[5];
	bool file;
};

static int parse_maps(FILE *f, unsigned long lo, unsigned long hi,
		      struct mline *v, int max)
{
	char line[1024];
	int n = 0;

	while (fgets(line, sizeof(line), f)) {
		struct mline m;
		unsigned long ino;
		char dev[16];
		int used = 0;

		if (sscanf(line, "%lx-%lx %4s %lx %15s %lu %n", &m.start, &m.end,
			   m.perms, &m.off, dev, &ino, &used) < 6)
			continue;
		if (m.end <= lo || m.start >= hi)
			continue;
		m.file = ino != 0;
		/* Anonymous PROT_NONE is the reservation's look too. */
		if (!m.file && !strcmp(m.perms, "---p"))
			continue;
		if (!m.file)
			m.off = 0;
		/* Coalesce what the two sides may split differently. */
		if (n && v[n - 1].end == m.start && v[n - 1].file == m.file &&
		    !strcmp(v[n - 1].perms, m.perms) &&
		    (!m.file || v[n - 1].off + (v[n - 1].end - v[n - 1].start) == m.off)) {
			v[n - 1].end = m.end;
			continue;
		}
		if (n < max)
			v[n++] = m;
	}
	return n;
}

/* Field by field: a struct's padding is not part of a line. */
static bool mlines_equal(const struct mline *a, const struct mline *b,
			 int n)
{
	for (int i = 0; i < n; i++)
		if (a[i].start != b[i].start || a[i].end != b[i].end ||
		    a[i].off != b[i].off || a[i].file != b[i].file ||
		    strcmp(a[i].perms, b[i].perms))
			return false;
	return true;
}

static int daemon_maps(pid_t pid, unsigned long lo, unsigned long hi,
		       struct mline *v, int max)
{
	const char *ctl = getenv("UPAGECTL_BIN");
	char cmd[512];
	FILE *f;
	int n;

	snprintf(cmd, sizeof(cmd), "%s --socket %s maps %d",
		 ctl && *ctl ? ctl : "build/upagectl", h.sock, (int)pid);
	f = popen(cmd, "r");
	assert_non_null(f);
	n = parse_maps(f, lo, hi, v, max);
	assert_int_equal(pclose(f), 0);
	return n;
}

static int kernel_maps(pid_t pid, unsigned long lo, unsigned long hi,
		       struct mline *v, int max)
{
	char path[64];
	FILE *f;
	int n;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	n = parse_maps(f, lo, hi, v, max);
	fclose(f);
	return n;
}

/* Anonymous mappings reach the daemon; its maps show them. */
static void test_anon_redirect(void **state)
{
	char *argv[] = { self, "helper", "basic", "8388608", NULL };
	char out[4096], err[4096];
	struct mline d[64], k[64];
	unsigned long addr;
	size_t len;
	uint64_t f0 = daemon_faults();
	struct child c;
	int nd, nk, st;

	spawn(&c, argv, true, NULL);
	read_mapped(&c, &addr, &len);
	nd = daemon_maps(c.pid, addr, addr + len, d, 64);
	nk = kernel_maps(c.pid, addr, addr + len, k, 64);
	assert_int_equal(nd, 1);
	assert_int_equal(nk, 1);
	assert_int_equal(d[0].start, addr);
	assert_int_equal(d[0].end, addr + len);
	assert_string_equal(d[0].perms, "rw-p");
	assert_memory_equal(&d[0], &k[0], sizeof(d[0]));
	st = finish(&c, out, sizeof(out), err, sizeof(err));
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_non_null(strstr(out, "done\n"));
	/* The daemon served its zero-fill faults: 8 MiB of them. */
	assert_true(daemon_faults() > f0);
}

/* Is pid known to the daemon? upagectl maps says 4 when not. */
static int ctl_maps_status(pid_t pid)
{
	const char *ctl = getenv("UPAGECTL_BIN");
	char cmd[512];
	int st;

	snprintf(cmd, sizeof(cmd), "%s --socket %s maps %d >/dev/null 2>&1",
		 ctl && *ctl ? ctl : "build/upagectl", h.sock, (int)pid);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The policy: what it leaves out stays with the kernel. */
static void test_policy(void **state)
{
	char *argv[] = { self, "helper", "basic", "8388608", NULL };
	const char *small[] = { "UPAGE_MIN_SIZE=16m", NULL };
	const char *files[] = { "UPAGE_REDIRECT=file", NULL };
	const char *bogus[] = { "UPAGE_REDIRECT=bogus", "UPAGE_DEBUG=1", NULL };
	const char *big[] = { "UPAGE_MIN_SIZE=8m", "UPAGE_REDIRECT=anon", NULL };
	char out[4096], err[4096];
	unsigned long addr;
	size_t len;
	struct child c;

	/* Too small, or not the kind asked for: never connects. */
	spawn(&c, argv, true, small);
	read_mapped(&c, &addr, &len);
	assert_int_equal(ctl_maps_status(c.pid), 4);
	assert_true(WIFEXITED(finish(&c, out, sizeof(out), err, sizeof(err))));
	assert_string_equal(err, "");
	spawn(&c, argv, true, files);
	read_mapped(&c, &addr, &len);
	assert_int_equal(ctl_maps_status(c.pid), 4);
	finish(&c, out, sizeof(out), err, sizeof(err));
	/* A policy it cannot read: off, and it says so only with debug. */
	spawn(&c, argv, true, bogus);
	read_mapped(&c, &addr, &len);
	assert_int_equal(ctl_maps_status(c.pid), 4);
	finish(&c, out, sizeof(out), err, sizeof(err));
	assert_non_null(strstr(err, "UPAGE_REDIRECT=bogus"));
	/* Exactly at the minimum: redirected. */
	spawn(&c, argv, true, big);
	read_mapped(&c, &addr, &len);
	assert_int_equal(ctl_maps_status(c.pid), 0);
	finish(&c, out, sizeof(out), err, sizeof(err));
	assert_non_null(strstr(out, "done\n"));
}

/* fork, posix_spawn and exec under the shim. */
static void test_fork_exec(void **state)
{
	char *argv[] = { self, "helper", "forkexec", NULL };
	char out[4096], err[4096];
	int st;

	st = run_status(argv, true, NULL, out, sizeof(out), err, sizeof(err));
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fprintf(stderr, "out: %s\nerr: %s\n", out, err);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_non_null(strstr(out, "fork ok\nspawn ok\nmapped "));
	assert_non_null(strstr(out, "done\n"));
}

/* Exit status and signals of the program are upage-run's. */
static void test_run_status(void **state)
{
	char out[4096], err[4096];
	char *exit7[] = { run_bin, "--", "/bin/sh", "-c", "exit 7", NULL };
	char *term[] = { run_bin, "/bin/sh", "-c", "kill -TERM $$", NULL };
	char *segv[] = { run_bin, "-d", "/bin/sh", "-c", "kill -SEGV $$", NULL };
	char *missing[] = { run_bin, "/nonexistent/program", NULL };
	char *bad[] = { run_bin, "--redirect", "bogus", "/bin/true", NULL };
	char *badsz[] = { run_bin, "--min-size", "12q", "/bin/true", NULL };
	char *help[] = { run_bin, "--help", NULL };
	char *echo[] = { run_bin, "-r", "anon", "-m", "64k", "-p", "/a",
			 "-p", "/b", "/bin/sh", "-c",
			 "echo \"$UPAGE_REDIRECT $UPAGE_MIN_SIZE "
			 "$UPAGE_PATH_PREFIX $UPAGED_SOCKET\"; "
			 "case \"$LD_PRELOAD\" in *libupage-preload.so*) "
			 "echo preloaded;; esac", NULL };
	/* An ASan runtime in the shell must not catch its SIGSEGV. */
	const char *env[] = { NULL, "ASAN_OPTIONS=detect_leaks=0:handle_segv=0",
			      NULL };
	char envbuf[4200];
	int st;

	snprintf(envbuf, sizeof(envbuf), "UPAGE_PRELOAD=%s", shim);
	env[0] = envbuf;
	st = run_status(exit7, false, env, out, sizeof(out), err, sizeof(err));
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 7);
	st = run_status(term, false, env, out, sizeof(out), err, sizeof(err));
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
	st = run_status(segv, false, env, out, sizeof(out), err, sizeof(err));
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
	st = run_status(missing, false, env, out, sizeof(out), err, sizeof(err));
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 127);
	assert_non_null(strstr(err, "upage-run: /nonexistent/program"));
	st = run_status(bad, false, env, out, sizeof(out), err, sizeof(err));
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 125);
	assert_non_null(strstr(err, "--redirect bogus"));
	st = run_status(badsz, false, env, out, sizeof(out), err, sizeof(err));
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 125);
	st = run_status(help, false, env, out, sizeof(out), err, sizeof(err));
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_non_null(strstr(out, "UPAGE_MIN_SIZE"));
	st = run_status(echo, false, env, out, sizeof(out), err, sizeof(err));
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	snprintf(envbuf, sizeof(envbuf), "anon 64k /a:/b %s\npreloaded\n",
		 h.sock);
	assert_string_equal(out, envbuf);
}

static void make_pattern_file(const char *path, size_t len, unsigned long salt)
{
	static unsigned char buf[1 << 20];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	for (size_t o = 0; o < len; o += sizeof(buf)) {
		size_t n = len - o < sizeof(buf) ? len - o : sizeof(buf);

		for (size_t i = 0; i < n; i++)
			buf[i] = pat(salt, o + i);
		assert_int_equal(write(fd, buf, n), (ssize_t)n);
	}
	close(fd);
}

/* 8 threads mapping at once, with a shared file mapping read by all. */
static void test_threads(void **state)
{
	const char *s = getenv("UPAGE_PRELOAD_STRESS_SECS");
	char secs[16], path[128], out[4096], err[4096];
	char *argv[] = { self, "helper", "threads", secs, path, NULL };
	uint64_t r0 = daemon_requests();
	unsigned long ops = 0;
	int st;

	snprintf(secs, sizeof(secs), "%d", s && atoi(s) > 0 ? atoi(s) : 3);
	snprintf(path, sizeof(path), "%s/threads.dat", dir);
	make_pattern_file(path, 4UL << 20, 9);
	st = run_status(argv, true, NULL, out, sizeof(out), err, sizeof(err));
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fprintf(stderr, "out: %s\nerr: %s\n", out, err);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(sscanf(out, "ops %lu", &ops), 1);
	fprintf(stderr, "8 threads, %s s: %lu map/protect/unmap rounds\n",
		secs, ops);
	assert_true(ops > 8);
	/* Each round is at least four requests to the daemon. */
	assert_true(daemon_requests() - r0 >= 4 * ops);
	unlink(path);
}

/* Random operations: the daemon's maps equal the kernel's at each step. */
static void test_maps_random(void **state)
{
	char path[128], out[4096], err[4096], line[512];
	char *argv[] = { self, "helper", "random", "12345", "150", path, NULL };
	const char *env[] = { "UPAGE_DEBUG=1", NULL };
	struct mline d[128], k[128];
	unsigned long lo = 0, hi = 0;
	struct child c;
	int steps = 0, st, most = 0, files = 0;

	snprintf(path, sizeof(path), "%s/random.dat", dir);
	make_pattern_file(path, 1UL << 20, 9);
	spawn(&c, argv, true, env);
	/* The shim says where its arena is when it connects. */
	while (fgets(line, sizeof(line), c.err)) {
		char *a = strstr(line, "connected: arena ");

		if (a && sscanf(a, "connected: arena %lx-%lx", &lo, &hi) == 2)
			break;
	}
	assert_true(lo && hi > lo);
	while (fgets(line, sizeof(line), c.out)) {
		int nd, nk;

		assert_non_null(strstr(line, "step "));
		nd = daemon_maps(c.pid, lo, hi, d, 128);
		nk = kernel_maps(c.pid, lo, hi, k, 128);
		if (nd != nk || !mlines_equal(d, k, nd)) {
			fprintf(stderr, "%s: daemon %d lines, kernel %d\n",
				line, nd, nk);
			for (int i = 0; i < nd; i++)
				fprintf(stderr, "d %lx-%lx %s %lx %d\n", d[i].start,
					d[i].end, d[i].perms, d[i].off, d[i].file);
			for (int i = 0; i < nk; i++)
				fprintf(stderr, "k %lx-%lx %s %lx %d\n", k[i].start,
					k[i].end, k[i].perms, k[i].off, k[i].file);
			fail();
		}
		steps++;
		most = nd > most ? nd : most;
		for (int i = 0; i < nd; i++)
			files += d[i].file;
		assert_int_equal(write(c.in, "next\n", 5), 5);
	}
	st = finish(&c, out, sizeof(out), err, sizeof(err));
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fprintf(stderr, "err: %s\n", err);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(steps, 150);
	/* Not a trivial comparison: many ranges, files among them. */
	fprintf(stderr, "150 steps: up to %d ranges, %d file ranges seen\n",
		most, files);
	assert_true(most >= 8 && files > 0);
	unlink(path);
}

/* ---- real programs ---- */

/* The daemon the programs below are run against. */
static struct harness *prog_h = &h;

/* The daemon paged a program (only asked of the group's daemon). With
   huge pages one fault may bring in 8 MiB and start 16 MiB of readahead:
   a file of a few tens of MiB can take a single fault. */
static void assert_paged(uint64_t faults_before)
{
	if (prog_h == &h)
		assert_true(daemon_faults() - faults_before >= 1);
}

/*
 * body again, against a daemon of its own whose page cache is held to a
 * budget far below the program's files: real programs through eviction,
 * write-back and re-reads. It must have evicted.
 */
static void under_budget(void (*body)(void **), void **state)
{
	static const char *const extra[] = { "--max-resident", "1M", NULL };
	struct upage_status_reply s;
	struct harness h2;

	assert_int_equal(harness_start_args(&h2, extra), 0);
	prog_h = &h2;
	body(state);
	prog_h = &h;
	memset(&s, 0, sizeof(s));
	assert_int_equal(ft_status_of(h2.sock, &s), 0);
	assert_true(s.evicted_pages > 0);
	assert_int_equal(harness_stop(&h2), 0);
	harness_live = &h;
}

static bool have(const char *prog)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", prog);
	return system(cmd) == 0;
}

/* Runs argv (through upage-run when shim_on) with stdin from in (or
   /dev/null) and stdout to out; returns the wait status. */
static int run_prog(char *const *argv, bool shim_on, const char *in,
		    const char *out)
{
	char *args[32];
	char envbuf[4200];
	pid_t pid;
	int n = 0, st = -1;

	if (shim_on) {
		args[n++] = run_bin;
		args[n++] = "--socket";
		args[n++] = prog_h->sock;
		args[n++] = "--";
	}
	while (*argv && n < 31)
		args[n++] = *argv++;
	args[n] = NULL;
	snprintf(envbuf, sizeof(envbuf), "%s", shim);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int i = open(in ? in : "/dev/null", O_RDONLY);
		int o = open(out ? out : "/dev/null",
			     O_WRONLY | O_CREAT | O_TRUNC, 0644);

		dup2(i, 0);
		dup2(o, 1);
		setenv("UPAGE_PRELOAD", envbuf, 1);
		setenv("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1", 1);
		execvp(args[0], args);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return st;
}

static void assert_ok(int st)
{
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* Byte for byte. */
static void assert_same_file(const char *a, const char *b)
{
	static char ba[1 << 16], bb[1 << 16];
	FILE *fa = fopen(a, "r"), *fb = fopen(b, "r");
	size_t na, nb;

	assert_non_null(fa);
	assert_non_null(fb);
	do {
		na = fread(ba, 1, sizeof(ba), fa);
		nb = fread(bb, 1, sizeof(bb), fb);
		assert_int_equal(na, nb);
		assert_memory_equal(ba, bb, na);
	} while (na);
	fclose(fa);
	fclose(fb);
}

static void path_of(char *buf, const char *name)
{
	snprintf(buf, 128, "%s/%s", dir, name);
}

static void copy_file(const char *from, const char *to)
{
	char *argv[] = { "cp", (char *)from, (char *)to, NULL };

	assert_ok(run_prog(argv, false, NULL, NULL));
}

/* sqlite3 with mmap over a database of 100+ MB: reads and writes. */
static void test_sqlite(void **state)
{
	char db[128], a[128], b[128], sql[128], oa[128], ob[128];
	char gensql[512];
	char *gen[] = { "sqlite3", db, gensql, NULL };
	char *qa[] = { "sqlite3", a, NULL }, *qb[] = { "sqlite3", b, NULL };
	struct stat st;
	uint64_t f0;
	FILE *f;

	if (!have("sqlite3"))
		skip();
	/* One statement makes the whole database. */
	snprintf(gensql, sizeof(gensql),
		 "PRAGMA synchronous = OFF;"
		 "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b BLOB);"
		 "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
		 "FROM c WHERE x < %d) INSERT INTO t SELECT x, "
		 "hex(randomblob(16)), randomblob(1000) FROM c;", SQL_ROWS);
	path_of(db, "gen.db");
	path_of(a, "a.db");
	path_of(b, "b.db");
	path_of(sql, "w.sql");
	/* A run that failed half-way leaves its database behind. */
	unlink(db);
	path_of(oa, "a.out");
	path_of(ob, "b.out");
	assert_ok(run_prog(gen, false, NULL, NULL));
	assert_int_equal(stat(db, &st), 0);
	assert_true(st.st_size >= (100L << 20) / SCALE);
	copy_file(db, a);
	copy_file(db, b);
	f = fopen(sql, "w");
	assert_non_null(f);
	/* No fsync: the disk's speed is not what is tested. */
	fputs("PRAGMA mmap_size = 1073741824;\n"
	      "PRAGMA synchronous = OFF;\n"
	      "SELECT count(*), sum(length(b)), max(a), min(a) FROM t;\n"
	      "SELECT sum(length(a)) FROM t WHERE id % 3 = 0;\n"
	      "UPDATE t SET a = lower(a) WHERE id % 3 = 0;\n"
	      "SELECT sum(length(a)), max(a) FROM t WHERE id % 3 = 0;\n"
	      "UPDATE t SET b = zeroblob(1000) WHERE id % 5 = 0;\n"
	      "SELECT sum(hex(b) = hex(zeroblob(1000))) FROM t;\n"
	      "INSERT INTO t(a, b) SELECT a || 'x', zeroblob(700) FROM t "
	      "WHERE id % 50 = 0;\n"
	      "DELETE FROM t WHERE id % 11 = 0;\n"
	      "SELECT count(*), sum(length(b)), max(a), min(a) FROM t;\n"
	      "SELECT id, a, hex(substr(b, 1, 8)) FROM t WHERE id % 4999 = 0;\n"
	      "PRAGMA integrity_check;\n", f);
	fclose(f);
	assert_ok(run_prog(qa, false, sql, oa));
	f0 = daemon_faults();
	assert_ok(run_prog(qb, true, sql, ob));
	/* It was paged by the daemon, and nothing differs. */
	assert_paged(f0);
	assert_same_file(oa, ob);
	assert_same_file(a, b);
	unlink(db);
	unlink(a);
	unlink(b);
	unlink(sql);
	unlink(oa);
	unlink(ob);
}

/* LMDB: mdb_load then mdb_dump of 100 000 records. */
static void test_lmdb(void **state)
{
	char in[128], da[128], db[128], oa[128], ob[128], cmd[1024];
	char *la[] = { "mdb_load", "-f", in, da, NULL };
	char *lb[] = { "mdb_load", "-f", in, db, NULL };
	char *xa[] = { "mdb_dump", da, NULL }, *xb[] = { "mdb_dump", db, NULL };
	unsigned long seed = 77;
	uint64_t f0;
	FILE *f;

	if (!have("mdb_load") || !have("mdb_dump"))
		skip();
	path_of(in, "lmdb.in");
	path_of(da, "lmdb-a");
	path_of(db, "lmdb-b");
	path_of(oa, "lmdb-a.out");
	path_of(ob, "lmdb-b.out");
	/* A run that failed half-way leaves its databases behind. */
	snprintf(cmd, sizeof(cmd), "rm -rf %s %s", da, db);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(mkdir(da, 0755), 0);
	assert_int_equal(mkdir(db, 0755), 0);
	f = fopen(in, "w");
	assert_non_null(f);
	fputs("VERSION=3\nformat=bytevalue\ntype=btree\nmapsize=1073741824\n"
	      "HEADER=END\n", f);
	for (int i = 0; i < LMDB_RECORDS; i++) {
		int n = 10 + (int)(xs(&seed) % 190);

		fprintf(f, " ");
		for (const char *k = "key"; *k; k++)
			fprintf(f, "%02x", *k);
		fprintf(f, "%016" PRIx64 "\n ",
			(uint64_t)i * (uint64_t)0x9e3779b97f4a7c15ULL);
		for (int j = 0; j < n; j++)
			fprintf(f, "%02x", (unsigned)(xs(&seed) & 0xff));
		fputc('\n', f);
	}
	fputs("DATA=END\n", f);
	fclose(f);
	assert_ok(run_prog(la, false, NULL, NULL));
	assert_ok(run_prog(xa, false, NULL, oa));
	f0 = daemon_faults();
	assert_ok(run_prog(lb, true, NULL, NULL));
	assert_ok(run_prog(xb, true, NULL, ob));
	assert_paged(f0);
	assert_same_file(oa, ob);
	snprintf(cmd, sizeof(cmd), "rm -rf %s %s %s %s %s", in, da, db, oa, ob);
	assert_int_equal(system(cmd), 0);
}

static void test_sqlite_budget(void **state)
{
	under_budget(test_sqlite, state);
}

static void test_lmdb_budget(void **state)
{
	under_budget(test_lmdb, state);
}

/* Python's mmap module and numpy.memmap over a 256 MiB file. */
static void test_python(void **state)
{
	static const char script[] =
		"import sys, zlib, mmap\n"
		"import numpy as np\n"
		"p = sys.argv[1]\n"
		"with open(p, 'r+b') as f:\n"
		"    m = mmap.mmap(f.fileno(), 0)\n"
		"    print(zlib.crc32(m))\n"
		"    m[4096:4100] = b'abcd'\n"
		"    m[len(m) - 3:] = b'xyz'\n"
		"    m.flush()\n"
		"    r = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)\n"
		"    print(zlib.crc32(r), r[4096:4100], r[-3:])\n"
		"    r.close()\n"
		"    m.close()\n"
		"a = np.memmap(p, dtype=np.uint8, mode='r+')\n"
		"print(int(a[::4096].sum(dtype=np.uint64)))\n"
		"a[::8191] = 7\n"
		"a.flush()\n"
		"del a\n"
		"b = np.memmap(p, dtype=np.uint32, mode='r')\n"
		"print(int(b.sum(dtype=np.uint64)), int(b[::997].max()))\n"
		"del b\n"
		"with open(p, 'rb') as f:\n"
		"    print(zlib.crc32(f.read()))\n";
	char fa[128], fb[128], py[128], oa[128], ob[128];
	/* Debian's python3, the one python3-numpy is for. */
	char *pa[] = { "/usr/bin/python3", py, fa, NULL };
	char *pb[] = { "/usr/bin/python3", py, fb, NULL };
	uint64_t f0;
	FILE *f;

	if (access("/usr/bin/python3", X_OK))
		skip();
	path_of(fa, "py-a.dat");
	path_of(fb, "py-b.dat");
	path_of(py, "t.py");
	path_of(oa, "py-a.out");
	path_of(ob, "py-b.out");
	f = fopen(py, "w");
	assert_non_null(f);
	fputs(script, f);
	fclose(f);
	make_pattern_file(fa, PY_BYTES, 5);
	copy_file(fa, fb);
	assert_ok(run_prog(pa, false, NULL, oa));
	f0 = daemon_faults();
	assert_ok(run_prog(pb, true, NULL, ob));
	assert_true(daemon_faults() - f0 >= 10);
	assert_same_file(oa, ob);
	assert_same_file(fa, fb);
	unlink(fa);
	unlink(fb);
	unlink(py);
	unlink(oa);
	unlink(ob);
}

/* LD_PRELOAD for children: the ASan runtime first if we carry one. */
static void find_shim(void)
{
	const char *bin = getenv("UPAGED_BIN");
	char d[4096], line[1024], asan[1024] = "";
	FILE *f;

	snprintf(d, sizeof(d), "%s", bin && *bin ? bin : "build/upaged");
	if (!realpath(dirname(d), line))
		snprintf(line, sizeof(line), "build");
	snprintf(run_bin, sizeof(run_bin), "%s/upage-run", line);
	f = fopen("/proc/self/maps", "r");
	while (f && fgets(d, sizeof(d), f)) {
		char *p = strchr(d, '/');

		if (p && strstr(p, "/libasan.so")) {
			p[strcspn(p, "\n")] = '\0';
			snprintf(asan, sizeof(asan), "%s ", p);
			break;
		}
	}
	if (f)
		fclose(f);
	snprintf(shim, sizeof(shim), "%s%s/libupage-preload.so", asan, line);
}

static int group_setup(void **state)
{
	strcpy(dir, "/tmp/upaged-preload-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	return harness_group_start(&h, 1UL << 30);
}

static int group_teardown(void **state)
{
	rmdir(dir);
	return harness_group_stop(&h);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_daemon),
		cmocka_unit_test(test_anon_redirect),
		cmocka_unit_test(test_policy),
		cmocka_unit_test(test_fork_exec),
		cmocka_unit_test(test_run_status),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_maps_random),
		cmocka_unit_test(test_sqlite),
		cmocka_unit_test(test_lmdb),
		cmocka_unit_test(test_sqlite_budget),
		cmocka_unit_test(test_lmdb_budget),
		cmocka_unit_test(test_python),
	};

	if (!realpath("/proc/self/exe", self))
		return 1;
	if (argc >= 3 && !strcmp(argv[1], "helper"))
		return helper_main(argc, argv);
	find_shim();
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

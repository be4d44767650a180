/*
 * test_upagectl.c - upagectl against a private daemon with real clients.
 *
 * The test process and forked children are libupage clients with
 * anonymous (and, where the daemon serves them, file) mappings; upagectl
 * ($UPAGECTL_BIN, default build/upagectl) is run as a separate program and
 * its output is checked against what the test mapped and against the
 * kernel's /proc/PID/maps (a randomized sequence of map, protect, unmap
 * and touches included). --json output is parsed by python3's json
 * module. upagectl run as nobody, and a client of nobody's own (this
 * program again, `--client SOCKET`), check who may see what.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <spawn.h>
#include <sys/mman.h>

#include <cmocka.h>

#include <upage/upage.h>

#include "upaged_harness.h"

extern char **environ;

#define PG 4096UL
#define NOBODY 65534

static struct harness h;

static int group_setup(void **state)
{
	return harness_group_start(&h, 1UL << 30);
}

static int group_teardown(void **state)
{
	return harness_group_stop(&h);
}

static const char *ctl_bin(void)
{
	const char *b = getenv("UPAGECTL_BIN");

	return b && *b ? b : "build/upagectl";
}

struct run {
	int status;     /* exit status, or 128 + signal */
	char *out;      /* stdout, NUL-terminated */
	char err[1024]; /* stderr */
};

static void run_free(struct run *r)
{
	free(r->out);
	r->out = NULL;
}

static void read_all(int fd, char **buf, size_t *len, size_t max)
{
	size_t cap = *len + 4096;
	ssize_t n;

	*buf = realloc(*buf, cap);
	for (;;) {
		if (cap - *len < 2048 && cap < max) {
			cap *= 2;
			*buf = realloc(*buf, cap);
		}
		n = read(fd, *buf + *len, cap - *len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		*len += (size_t)n;
	}
	(*buf)[*len] = '\0';
}

/*
 * Runs upagectl with args (NULL-terminated) as uid (0: ourselves, else
 * through setpriv), with --socket of our daemon unless args start with
 * "--socket". posix_spawn (vfork): a fork would hand the daemon a copy of
 * our mm for the instant before exec, and the counts we check would race
 * with it.
 */
static void run_ctl_v(struct run *r, uid_t uid, const char *const *args)
{
	posix_spawn_file_actions_t fa;
	const char *argv[24];
	char ids[3][32];
	int out[2], err[2], n = 0;
	size_t olen = 0, elen = 0;
	char *ebuf = NULL;
	pid_t pid;
	int st;

	memset(r, 0, sizeof(*r));
	if (uid) {
		snprintf(ids[0], sizeof(ids[0]), "--reuid=%u", uid);
		snprintf(ids[1], sizeof(ids[1]), "--regid=%u", uid);
		argv[n++] = "/usr/bin/setpriv";
		argv[n++] = ids[0];
		argv[n++] = ids[1];
		argv[n++] = "--clear-groups";
	}
	argv[n++] = ctl_bin();
	if (strcmp(args[0], "--socket")) {
		argv[n++] = "--socket";
		argv[n++] = h.sock;
	}
	while (*args && n < 23)
		argv[n++] = *args++;
	argv[n] = NULL;
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	assert_int_equal(posix_spawn(&pid, argv[0], &fa, NULL,
				     (char *const *)argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	close(err[1]);
	read_all(out[0], &r->out, &olen, 64 << 20);
	read_all(err[0], &ebuf, &elen, 64 << 10);
	snprintf(r->err, sizeof(r->err), "%s", ebuf);
	free(ebuf);
	close(out[0]);
	close(err[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	if (r->err[0] && !strstr(r->err, "usage:"))
		fprintf(stderr, "upagectl said: %s", r->err);
}

#define run_ctl(r, uid, ...) \
	run_ctl_v((r), (uid), (const char *const[]){ __VA_ARGS__, NULL })

/*
 * Evaluates a python expression over the JSON document doc (bound to d)
 * with python3's json module; the result's str() goes to out. Returns
 * python's exit status: non-zero when doc is not valid JSON.
 */
static int json_eval(const char *doc, const char *expr, char *out,
		     size_t size)
{
	char path[128], prog[128], cmd[512];
	size_t n;
	FILE *f;
	int st;

	/* Both in files: no shell quoting of either. */
	snprintf(path, sizeof(path), "%s/doc.json", h.dir);
	snprintf(prog, sizeof(prog), "%s/eval.py", h.dir);
	f = fopen(path, "we");
	assert_non_null(f);
	fputs(doc, f);
	fclose(f);
	f = fopen(prog, "we");
	assert_non_null(f);
	fprintf(f, "import json, sys\nd = json.load(open(sys.argv[1]))\n"
		   "print(%s)\n", expr);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "python3 %s %s", prog, path);
	f = popen(cmd, "re");
	assert_non_null(f);
	n = fread(out, 1, size - 1, f);
	out[n] = '\0';
	out[strcspn(out, "\n")] = '\0';
	st = pclose(f);
	unlink(path);
	unlink(prog);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

static long json_long(const char *doc, const char *expr)
{
	char out[256];

	assert_int_equal(json_eval(doc, expr, out, sizeof(out)), 0);
	if (!strcmp(out, "True") || !strcmp(out, "False"))
		return out[0] == 'T';
	return strtol(out, NULL, 0);
}

/* Asserts that expr holds over doc; shows both when it does not. */
#define assert_json(doc, expr)                                          \
	do {                                                            \
		if (json_long((doc), (expr)) != 1)                      \
			fprintf(stderr, "false: %s\nover: %s\n", (expr), \
				(doc));                                 \
		assert_int_equal(json_long((doc), (expr)), 1);          \
	} while (0)

/* ---- maps lines ---- */

struct mline {
	unsigned long start, end;
	char rest[512]; /* everything after "start-end " */
};

static int parse_line(const char *s, struct mline *m)
{
	int n = 0;

	if (sscanf(s, "%lx-%lx %n", &m->start, &m->end, &n) != 2 || !n)
		return -1;
	snprintf(m->rest, sizeof(m->rest), "%s", s + n);
	return 0;
}

/* Parses text into lines inside [lo, hi) whose perms are not ---p,
   merging neighbours identical but for their range (anonymous ones). */
static size_t collect(const char *text, unsigned long lo, unsigned long hi,
		      struct mline *v, size_t max)
{
	size_t n = 0;
	char *copy = strdup(text), *save = NULL, *line;

	for (line = strtok_r(copy, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		struct mline m;

		if (parse_line(line, &m) < 0 || m.start < lo || m.end > hi)
			continue;
		if (!strncmp(m.rest, "---p", 4))
			continue; /* the arena's reservation */
		if (n && v[n - 1].end == m.start &&
		    !strcmp(v[n - 1].rest, m.rest) &&
		    strstr(m.rest, " 00000000 00:00 0 ")) {
			v[n - 1].end = m.end;
			continue;
		}
		assert_true(n < max);
		v[n++] = m;
	}
	free(copy);
	return n;
}

static char *read_file(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	read_all(fd, &buf, &len, 64 << 20);
	close(fd);
	return buf;
}

/* upagectl maps pid == the kernel's maps of pid, inside the arena. */
static size_t check_maps_as(uid_t uid, pid_t pid, unsigned long lo,
			    unsigned long hi)
{
	static struct mline a[4096], b[4096];
	char arg[32], path[64], *kern;
	struct run r;
	size_t na, nb;

	snprintf(arg, sizeof(arg), "%d", pid);
	run_ctl(&r, uid, "maps", arg);
	assert_int_equal(r.status, 0);
	/* Every line of ours is a well-formed maps line. */
	na = collect(r.out, 0, ~0UL, a, 4096);
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	kern = read_file(path);
	nb = collect(kern, lo, hi, b, 4096);
	assert_int_equal(na, nb);
	for (size_t i = 0; i < na; i++) {
		if (a[i].start != b[i].start || a[i].end != b[i].end ||
		    strcmp(a[i].rest, b[i].rest))
			fprintf(stderr, "ours:   %lx-%lx %s|\nkernel: %lx-%lx %s|\n",
				a[i].start, a[i].end, a[i].rest, b[i].start,
				b[i].end, b[i].rest);
		assert_int_equal(a[i].start, b[i].start);
		assert_int_equal(a[i].end, b[i].end);
		assert_string_equal(a[i].rest, b[i].rest);
	}
	free(kern);
	run_free(&r);
	return na;
}

static size_t check_maps_vs_kernel(pid_t pid, unsigned long lo,
				   unsigned long hi)
{
	return check_maps_as(0, pid, lo, hi);
}

static void arena(unsigned long *lo, unsigned long *hi)
{
	void *base;
	size_t size;

	assert_int_equal(upage_arena(&base, &size), 0);
	*lo = (unsigned long)base;
	*hi = *lo + size;
}

static void *map_anon(size_t len, int prot)
{
	void *p = upage_mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS,
			     -1, 0);

	assert_ptr_not_equal(p, MAP_FAILED);
	return p;
}

/* Polls until the daemon is down to n mms (an exit is seen async). */
static unsigned wait_mms(unsigned n)
{
	struct timespec ts = { 0, 1000000 };
	struct upage_stats_reply s;

	for (int i = 0; i < 5000; i++) {
		if (upage_stats(&s) < 0)
			return ~0U;
		if (s.mms == n)
			return n;
		nanosleep(&ts, NULL);
	}
	return s.mms;
}

/* ---- tests ---- */

static void test_ping(void **state)
{
	char out[64];
	struct run r;

	run_ctl(&r, 0, "ping");
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "pong"));
	run_free(&r);
	run_ctl(&r, 0, "--json", "ping");
	assert_int_equal(r.status, 0);
	assert_int_equal(json_eval(r.out, "d['ok']", out, sizeof(out)), 0);
	assert_string_equal(out, "True");
	run_free(&r);
}

static void test_errors(void **state)
{
	char sock[256];
	struct run r;

	/* No daemon there: exit 3, one line, nothing on stdout. */
	snprintf(sock, sizeof(sock), "%s/nobody-here.sock", h.dir);
	run_ctl(&r, 0, "--socket", sock, "status");
	assert_int_equal(r.status, 3);
	assert_non_null(strstr(r.err, "not running"));
	assert_ptr_equal(strchr(r.err, '\n'), r.err + strlen(r.err) - 1);
	assert_string_equal(r.out, "");
	run_free(&r);
	/* A pid the daemon does not know (init is no client): exit 4. */
	run_ctl(&r, 0, "maps", "1");
	assert_int_equal(r.status, 4);
	assert_non_null(strstr(r.err, "no process 1"));
	assert_string_equal(r.out, "");
	run_free(&r);
	run_ctl(&r, 0, "--json", "pmap", "1");
	assert_int_equal(r.status, 4);
	assert_string_equal(r.out, "");
	run_free(&r);
	/* Usage: exit 2. */
	run_ctl(&r, 0, "maps", "twelve");
	assert_int_equal(r.status, 2);
	run_free(&r);
	run_ctl(&r, 0, "frobnicate");
	assert_int_equal(r.status, 2);
	run_free(&r);
	run_ctl(&r, 0, "who-maps", "/nonexistent/file");
	assert_int_equal(r.status, 1);
	run_free(&r);
	/* A directory is no file to ask about: the daemon refuses it. */
	run_ctl(&r, 0, "who-maps", h.dir);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "not a regular file"));
	run_free(&r);
	/* The daemon is still serving. */
	run_ctl(&r, 0, "ping");
	assert_int_equal(r.status, 0);
	run_free(&r);
}

static void test_maps_match_kernel(void **state)
{
	unsigned long lo, hi;
	unsigned char *p[4];
	size_t n;

	arena(&lo, &hi);
	p[0] = map_anon(16 * PG, PROT_READ | PROT_WRITE);
	p[1] = map_anon(8 * PG, PROT_READ);
	p[2] = map_anon(4 * PG, PROT_READ | PROT_WRITE | PROT_EXEC);
	p[3] = map_anon(32 * PG, PROT_READ | PROT_WRITE);
	/* Split one by mprotect, punch a hole in another. */
	assert_int_equal(upage_mprotect(p[3] + 8 * PG, 8 * PG, PROT_READ), 0);
	assert_int_equal(upage_munmap(p[0] + 4 * PG, 4 * PG), 0);
	memset(p[0], 1, 4 * PG);
	memset(p[3], 2, 8 * PG);
	assert_int_equal(p[1][5 * PG], 0);
	n = check_maps_vs_kernel(getpid(), lo, hi);
	assert_true(n >= 6);
	assert_int_equal(upage_munmap(p[0], 16 * PG), 0);
	assert_int_equal(upage_munmap(p[1], 8 * PG), 0);
	assert_int_equal(upage_munmap(p[2], 4 * PG), 0);
	assert_int_equal(upage_munmap(p[3], 32 * PG), 0);
}

static void test_maps_json_fields(void **state)
{
	unsigned char *p = map_anon(24 * PG, PROT_READ | PROT_WRITE);
	char arg[32], expr[512];
	struct run r;

	assert_int_equal(upage_mprotect(p + 8 * PG, 8 * PG, PROT_READ), 0);
	snprintf(arg, sizeof(arg), "%d", getpid());
	run_ctl(&r, 0, "--json", "maps", arg);
	assert_int_equal(r.status, 0);
	assert_int_equal(json_long(r.out, "d['pid']"), getpid());
	snprintf(expr, sizeof(expr),
		 "[(m['start'], m['end'], m['perms'], m['offset'], m['dev'], "
		 "m['inode'], m['path']) for m in d['maps'] if %lu <= "
		 "m['start'] < %lu] == [(%lu, %lu, 'rw-p', 0, '00:00', 0, ''),"
		 " (%lu, %lu, 'r--p', 0, '00:00', 0, ''), (%lu, %lu, 'rw-p', "
		 "0, '00:00', 0, '')]", (unsigned long)p,
		 (unsigned long)p + 24 * PG, (unsigned long)p,
		 (unsigned long)p + 8 * PG, (unsigned long)p + 8 * PG,
		 (unsigned long)p + 16 * PG, (unsigned long)p + 16 * PG,
		 (unsigned long)p + 24 * PG);
	assert_int_equal(json_long(r.out, expr), 1 /* True */ );
	run_free(&r);
	assert_int_equal(upage_munmap(p, 24 * PG), 0);
}

/* Many VMAs: the answer takes many pages of the protocol. */
static void test_maps_many_vmas(void **state)
{
	unsigned char *p = map_anon(600 * PG, PROT_READ | PROT_WRITE);
	unsigned long lo, hi;

	arena(&lo, &hi);
	for (size_t i = 0; i < 600; i += 2)
		assert_int_equal(upage_mprotect(p + i * PG, PG, PROT_READ), 0);
	assert_int_equal(check_maps_vs_kernel(getpid(), lo, hi), 600);
	assert_int_equal(upage_munmap(p, 600 * PG), 0);
}

static void test_pmap_totals(void **state)
{
	unsigned char *a = map_anon(16 * PG, PROT_READ | PROT_WRITE);
	unsigned char *b = map_anon(8 * PG, PROT_READ);
	static struct mline k[4096];
	unsigned long lo, hi, mapped = 0, wpriv = 0, shared = 0;
	char arg[32], head[128], *last, *kern;
	struct run r;
	size_t n;

	arena(&lo, &hi);
	/* The totals pmap must print, from the kernel's own lines. */
	kern = read_file("/proc/self/maps");
	n = collect(kern, lo, hi, k, 4096);
	free(kern);
	for (size_t i = 0; i < n; i++) {
		unsigned long kb = (k[i].end - k[i].start) / 1024;

		mapped += kb;
		if (k[i].rest[3] == 's')
			shared += kb;
		else if (k[i].rest[1] == 'w')
			wpriv += kb;
	}
	assert_true(mapped >= 96 && wpriv >= 64);
	snprintf(arg, sizeof(arg), "%d", getpid());
	run_ctl(&r, 0, "pmap", arg);
	assert_int_equal(r.status, 0);
	snprintf(head, sizeof(head), "test_upagectl[%d]\n", getpid());
	assert_memory_equal(r.out, head, strlen(head));
	snprintf(head, sizeof(head), "\n%08lx (64 KB) rw-p (00:00 0)\n",
		 (unsigned long)a);
	assert_non_null(strstr(r.out, head));
	snprintf(head, sizeof(head), "\n%08lx (32 KB) r--p (00:00 0)\n",
		 (unsigned long)b);
	assert_non_null(strstr(r.out, head));
	last = strstr(r.out, "mapped: ");
	assert_non_null(last);
	snprintf(head, sizeof(head), "mapped: %lu KB writable/private: %lu KB "
		 "shared: %lu KB\n", mapped, wpriv, shared);
	assert_string_equal(last, head);
	run_free(&r);
	run_ctl(&r, 0, "--json", "pmap", arg);
	assert_int_equal(r.status, 0);
	assert_int_equal(json_long(r.out, "d['mapped_kb']"), (long)mapped);
	assert_int_equal(json_long(r.out, "d['writable_private_kb']"),
			 (long)wpriv);
	assert_int_equal(json_long(r.out, "d['shared_kb']"), (long)shared);
	assert_int_equal(json_long(r.out, "d['command'] == 'test_upagectl'"),
			 1);
	assert_int_equal(json_long(r.out, "sum(m['size_kb'] for m in "
				   "d['maps'])"), (long)mapped);
	run_free(&r);
	assert_int_equal(upage_munmap(a, 16 * PG), 0);
	assert_int_equal(upage_munmap(b, 8 * PG), 0);
}

/*
 * A forked child that becomes a client of its own: upagectl sees it,
 * its maps equal its kernel maps, clients lists both of us.
 */
static void test_fork_clients(void **state)
{
	unsigned char *p = map_anon(32 * PG, PROT_READ | PROT_WRITE);
	int ready[2], go[2], st;
	unsigned long lo, hi;
	char arg[32], expr[256];
	struct run r;
	pid_t pid;
	char c;

	arena(&lo, &hi);
	memset(p, 7, 4 * PG);
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		unsigned char *q;
		int bad = 0;

		/* A parent that fails leaves us at EOF, not waiting. */
		close(go[1]);
		close(ready[0]);
		/* Inherited data, then a mapping of its own. */
		for (size_t i = 0; i < 32 * PG; i++)
			bad |= p[i] != (i < 4 * PG ? 7 : 0);
		q = upage_mmap(NULL, 12 * PG, PROT_READ,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (q == MAP_FAILED || q[PG] != 0)
			bad = 1;
		if (write(ready[1], bad ? "b" : "k", 1) != 1 ||
		    read(go[0], &c, 1) != 1)
			_exit(3);
		_exit(bad);
	}
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(c, 'k');
	assert_true(check_maps_vs_kernel(pid, lo, hi) >= 2);
	/* clients: both rows, with what each maps. */
	run_ctl(&r, 0, "--json", "clients");
	assert_int_equal(r.status, 0);
	snprintf(expr, sizeof(expr),
		 "[(c['command'], c['vmas'], c['mapped_kb'], c['connected']) "
		 "for c in d['clients'] if c['pid'] == %d] == "
		 "[('test_upagectl', 2, 176, True)]", pid);
	assert_json(r.out, expr);
	snprintf(expr, sizeof(expr),
		 "[(c['vmas'], c['mapped_kb'], c['resident_kb'] >= 16, "
		 "c['faults'] > 0) for c in d['clients'] if c['pid'] == %d] == "
		 "[(1, 128, True, True)]", getpid());
	assert_json(r.out, expr);
	run_free(&r);
	run_ctl(&r, 0, "clients");
	assert_int_equal(r.status, 0);
	snprintf(arg, sizeof(arg), "\n%7d ", pid);
	assert_non_null(strstr(r.out, arg));
	snprintf(arg, sizeof(arg), "\n%7d ", getpid());
	assert_non_null(strstr(r.out, arg));
	run_free(&r);
	/* pmap of the child: inherited 128 KB rw, own 48 KB r. */
	snprintf(arg, sizeof(arg), "%d", pid);
	run_ctl(&r, 0, "pmap", arg);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "mapped: 176 KB writable/private: "
				      "128 KB shared: 0 KB\n"));
	run_free(&r);
	assert_int_equal(write(go[1], "x", 1), 1);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_int_equal(st, 0);
	close(ready[0]);
	close(ready[1]);
	close(go[0]);
	close(go[1]);
	assert_int_equal(upage_munmap(p, 32 * PG), 0);
}

static void test_status_moves(void **state)
{
	unsigned char *p = map_anon(64 * PG, PROT_READ | PROT_WRITE);
	long f0, z0, t0, f1, z1, t1;
	struct run r;

	run_ctl(&r, 0, "--json", "status");
	assert_int_equal(r.status, 0);
	f0 = json_long(r.out, "d['faults']['total']");
	z0 = json_long(r.out, "d['faults']['zero_fill']");
	t0 = json_long(r.out, "d['fault_latency_ns']['count']");
	assert_int_equal(json_long(r.out, "d['protocol']"), UPAGE_PROTO_VERSION);
	assert_true(json_long(r.out, "d['clients']") >= 1);
	assert_true(json_long(r.out, "d['uptime_s'] > 0"));
	run_free(&r);
	/* Touch one page in each 16-page cluster: four faults at least. */
	for (size_t i = 0; i < 64; i += 16)
		p[i * PG] = 1;
	run_ctl(&r, 0, "--json", "status");
	assert_int_equal(r.status, 0);
	f1 = json_long(r.out, "d['faults']['total']");
	z1 = json_long(r.out, "d['faults']['zero_fill']");
	t1 = json_long(r.out, "d['fault_latency_ns']['count']");
	assert_true(f1 >= f0 + 4);
	assert_true(z1 >= z0 + 4);
	assert_true(t1 >= t0 + 4);
	/* Kinds add up; percentiles are ordered and bounded by max. */
	assert_int_equal(json_long(r.out,
		"sum(v for k, v in d['faults'].items() if k not in "
		"('total', 'write')) == d['faults']['total']"), 1);
	assert_int_equal(json_long(r.out,
		"0 < d['fault_latency_ns']['p50'] <= "
		"d['fault_latency_ns']['p90'] <= d['fault_latency_ns']['p99']"
		" <= d['fault_latency_ns']['max']"), 1);
	assert_int_equal(json_long(r.out,
		"sum(d['fault_latency_ns']['log2_buckets']) == "
		"d['fault_latency_ns']['count']"), 1);
	assert_true(json_long(r.out, "d['vmas']") >= 1);
	assert_true(json_long(r.out, "d['mapped_kb']") >= 256);
	run_free(&r);
	run_ctl(&r, 0, "status");
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "zero-fill"));
	assert_non_null(strstr(r.out, "p99"));
	run_free(&r);
	assert_int_equal(upage_munmap(p, 64 * PG), 0);
}

/* A caller that is not root sees none of root's processes. */
static void test_nonroot(void **state)
{
	unsigned char *p = map_anon(4 * PG, PROT_READ | PROT_WRITE);
	char arg[32];
	struct run r;

	if (geteuid() != 0)
		skip();
	/* Let nobody reach the socket at all, so refusals are the daemon's. */
	assert_int_equal(chmod(h.dir, 0711), 0);
	assert_int_equal(chmod(h.sock, 0666), 0);
	run_ctl(&r, NOBODY, "--json", "clients");
	assert_int_equal(r.status, 0);
	assert_int_equal(json_long(r.out, "len(d['clients'])"), 0);
	run_free(&r);
	/* Root sees us in the same list. */
	run_ctl(&r, 0, "--json", "clients");
	assert_int_equal(r.status, 0);
	assert_true(json_long(r.out, "len(d['clients'])") >= 1);
	run_free(&r);
	snprintf(arg, sizeof(arg), "%d", getpid());
	run_ctl(&r, NOBODY, "maps", arg);
	assert_int_equal(r.status, 5);
	assert_non_null(strstr(r.err, "permission refused"));
	assert_string_equal(r.out, "");
	run_free(&r);
	run_ctl(&r, NOBODY, "pmap", arg);
	assert_int_equal(r.status, 5);
	run_free(&r);
	/* Daemon-wide figures are for everyone. */
	run_ctl(&r, NOBODY, "status");
	assert_int_equal(r.status, 0);
	run_free(&r);
	run_ctl(&r, NOBODY, "--json", "files");
	assert_int_equal(r.status, 0);
	assert_int_equal(json_long(r.out, "len(d['files'])"), 0);
	run_free(&r);
	assert_int_equal(chmod(h.sock, 0660), 0);
	assert_int_equal(chmod(h.dir, 0700), 0);
	assert_int_equal(upage_munmap(p, 4 * PG), 0);
}

static void test_top(void **state)
{
	char *line, *save = NULL;
	char expr[256];
	struct run r;
	int n = 0;

	snprintf(expr, sizeof(expr), "d['status']['clients'] >= 1 and %d in "
		 "[c['pid'] for c in d['clients']]", getpid());
	run_ctl(&r, 0, "--json", "top", "--interval", "0.01", "--count", "3");
	assert_int_equal(r.status, 0);
	for (line = strtok_r(r.out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		assert_json(line, expr);
		n++;
	}
	assert_int_equal(n, 3);
	run_free(&r);
	run_ctl(&r, 0, "watch", "--interval", "0.01", "--count", "2");
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "faults"));
	assert_non_null(strstr(r.out, "COMMAND"));
	run_free(&r);
	run_ctl(&r, 0, "top", "--interval", "0");
	assert_int_equal(r.status, 2);
	run_free(&r);
}

/* File mappings, when the daemon serves them (else skipped). */
static void test_files_who_maps(void **state)
{
	char path[256], arg[32], expr[512];
	struct upage_stats_reply stats;
	unsigned char buf[PG], *p, *q;
	unsigned mms0;
	int fd, go[2], ready[2], st;
	unsigned long lo, hi;
	struct stat sb;
	struct run r;
	pid_t pid;
	char c;

	arena(&lo, &hi);
	snprintf(path, sizeof(path), "%s/data.bin", h.dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	for (int i = 0; i < 32; i++) {
		memset(buf, 'a' + i % 26, sizeof(buf));
		assert_int_equal(write(fd, buf, sizeof(buf)), sizeof(buf));
	}
	assert_int_equal(fstat(fd, &sb), 0);
	p = upage_mmap(NULL, 16 * PG, PROT_READ, MAP_SHARED, fd, 8 * PG);
	if (p == MAP_FAILED && errno == ENODEV) {
		close(fd);
		unlink(path);
		skip();
	}
	assert_ptr_not_equal(p, MAP_FAILED);
	for (int i = 0; i < 16; i++)
		assert_int_equal(p[i * PG + 5], 'a' + (8 + i) % 26);
	assert_int_equal(upage_stats(&stats), 0);
	mms0 = stats.mms;
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(go[1]);
		close(ready[0]);
		q = upage_mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE, fd, 0);
		if (q == MAP_FAILED || q[3 * PG] != 'd')
			_exit(2);
		q[0] = 'Z'; /* a private copy */
		if (write(ready[1], "k", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(3);
		_exit(0);
	}
	assert_int_equal(read(ready[0], &c, 1), 1);

	/* maps: the file's device, inode and path; the range, perms and
	   offset as the kernel has them (it maps the daemon's memfd). */
	snprintf(arg, sizeof(arg), "%d", getpid());
	run_ctl(&r, 0, "--json", "maps", arg);
	assert_int_equal(r.status, 0);
	snprintf(expr, sizeof(expr),
		 "[(m['end'] - m['start'], m['perms'], m['offset'], "
		 "m['inode'], m['path']) for m in d['maps'] if m['start'] == "
		 "%lu] == [(%lu, 'r--s', %lu, %lu, '%s')]", (unsigned long)p,
		 16 * PG, 8 * PG, (unsigned long)sb.st_ino, path);
	assert_json(r.out, expr);
	run_free(&r);

	/* Two processes; three VMAs: ours, the child's copy of it made
	   at fork, and the child's private one. */
	run_ctl(&r, 0, "--json", "files");
	assert_int_equal(r.status, 0);
	snprintf(expr, sizeof(expr),
		 "[(f['size'], f['mappers'], f['vmas']) for f in d['files'] "
		 "if f['path'] == '%s'] == [(%lu, 2, 3)]", path, 32 * PG);
	assert_json(r.out, expr);
	run_free(&r);

	/* who-maps: the whole file, then only pages 2..3 (the child's). */
	run_ctl(&r, 0, "--json", "who-maps", path);
	assert_int_equal(r.status, 0);
	snprintf(expr, sizeof(expr),
		 "sorted((m['pid'], m['start'], m['end'], m['offset'], "
		 "m['perms']) for m in d['mappings'] if m['pid'] == %d) == "
		 "[(%d, %lu, %lu, %lu, 'r--s')]", getpid(), getpid(),
		 (unsigned long)p, (unsigned long)p + 16 * PG, 8 * PG);
	assert_json(r.out, expr);
	snprintf(expr, sizeof(expr),
		 "sorted((m['offset'], m['end'] - m['start'], m['perms']) for m "
		 "in d['mappings'] if m['pid'] == %d) == [(0, %lu, 'rw-p'), "
		 "(%lu, %lu, 'r--s')]", pid, 4 * PG, 8 * PG, 16 * PG);
	assert_json(r.out, expr);
	run_free(&r);
	snprintf(arg, sizeof(arg), "%lu", 2 * PG);
	run_ctl(&r, 0, "--json", "who-maps", path, arg, "8192");
	assert_int_equal(r.status, 0);
	snprintf(expr, sizeof(expr),
		 "[(m['pid'], m['offset'], m['end'] - m['start']) for m in "
		 "d['mappings']] == [(%d, %lu, %lu)]", pid, 2 * PG, 2 * PG);
	assert_json(r.out, expr);
	run_free(&r);
	/* Pages 9..10: only ours, clipped. */
	snprintf(arg, sizeof(arg), "%lu", 9 * PG);
	run_ctl(&r, 0, "who-maps", path, arg, "8192");
	assert_int_equal(r.status, 0);
	snprintf(expr, sizeof(expr), "%7d %016lx-%016lx %08lx r--s\n",
		 getpid(), (unsigned long)p + PG, (unsigned long)p + 3 * PG,
		 9 * PG);
	assert_non_null(strstr(r.out, expr));
	assert_null(strstr(r.out, "rw-p"));
	run_free(&r);

	/* Text files table: the path, its size, two mappers. */
	run_ctl(&r, 0, "files");
	assert_int_equal(r.status, 0);
	snprintf(expr, sizeof(expr), "%12lu ", 32 * PG);
	assert_non_null(strstr(r.out, expr));
	assert_non_null(strstr(r.out, path));
	run_free(&r);
	/* nobody may read the file, but sees none of root's mappings. */
	if (geteuid() == 0) {
		assert_int_equal(chmod(h.dir, 0711), 0);
		assert_int_equal(chmod(h.sock, 0666), 0);
		run_ctl(&r, NOBODY, "--json", "who-maps", path);
		assert_int_equal(r.status, 0);
		assert_int_equal(json_long(r.out, "len(d['mappings'])"), 0);
		run_free(&r);
		run_ctl(&r, NOBODY, "--json", "files");
		assert_int_equal(r.status, 0);
		assert_int_equal(json_long(r.out, "len(d['files'])"), 0);
		run_free(&r);
		assert_int_equal(chmod(h.sock, 0660), 0);
		assert_int_equal(chmod(h.dir, 0700), 0);
	}

	assert_int_equal(write(go[1], "x", 1), 1);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_int_equal(st, 0);
	close(go[0]);
	close(go[1]);
	close(ready[0]);
	close(ready[1]);
	assert_int_equal(upage_munmap(p, 16 * PG), 0);
	/* The daemon learns of the child's exit on its own: wait for it. */
	assert_int_equal(wait_mms(mms0), mms0);
	/* Nobody maps it any more. */
	run_ctl(&r, 0, "--json", "who-maps", path);
	assert_int_equal(r.status, 0);
	assert_int_equal(json_long(r.out, "len(d['mappings'])"), 0);
	run_free(&r);
	close(fd);
	unlink(path);
}

/*
 * Random mmap(MAP_FIXED)/mprotect/munmap and touches inside a window of
 * our arena; after every few, upagectl maps must equal the kernel's maps.
 * The seed is printed ($UPAGECTL_TEST_SEED repeats a run).
 */
static void test_maps_random(void **state)
{
	static const int prots[] = { PROT_READ, PROT_READ | PROT_WRITE,
				     PROT_READ | PROT_EXEC,
				     PROT_READ | PROT_WRITE | PROT_EXEC };
	const char *env = getenv("UPAGECTL_TEST_SEED");
	unsigned seed = env ? (unsigned)strtoul(env, NULL, 0) :
			      (unsigned)time(NULL) ^ (unsigned)getpid();
	enum { W = 96 };
	int prot_of[W];           /* -1: unmapped */
	unsigned char val[W];     /* first byte of each page */
	unsigned long lo, hi;
	unsigned char *w;

	fprintf(stderr, "test_maps_random: seed %u\n", seed);
	srandom(seed);
	arena(&lo, &hi);
	w = map_anon(W * PG, PROT_READ | PROT_WRITE);
	for (size_t i = 0; i < W; i++) {
		prot_of[i] = PROT_READ | PROT_WRITE;
		val[i] = 0;
	}
	for (int op = 1; op <= 160; op++) {
		size_t a = (size_t)random() % W;
		size_t n = 1 + (size_t)random() % (W - a < 12 ? W - a : 12);
		int prot = prots[random() % 4];
		bool hole = false;
		void *q;

		switch (random() % 4) {
		case 0:
			q = upage_mmap(w + a * PG, n * PG, prot,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
				       -1, 0);
			assert_ptr_equal(q, w + a * PG);
			for (size_t i = a; i < a + n; i++) {
				prot_of[i] = prot;
				val[i] = 0;
			}
			break;
		case 1:
			for (size_t i = a; i < a + n; i++)
				hole |= prot_of[i] < 0;
			/* Like the kernel: ENOMEM over a hole, and then
			   nothing changes (the model checks first). */
			if (upage_mprotect(w + a * PG, n * PG, prot) < 0) {
				assert_int_equal(errno, ENOMEM);
				assert_true(hole);
				break;
			}
			assert_false(hole);
			for (size_t i = a; i < a + n; i++)
				prot_of[i] = prot;
			break;
		case 2:
			assert_int_equal(upage_munmap(w + a * PG, n * PG), 0);
			for (size_t i = a; i < a + n; i++)
				prot_of[i] = -1;
			break;
		default:
			/* Writes fault through the daemon; reads check. */
			for (size_t i = a; i < a + n; i++) {
				if (prot_of[i] < 0)
					continue;
				assert_int_equal(w[i * PG], val[i]);
				if (prot_of[i] & PROT_WRITE)
					w[i * PG] = val[i] =
						(unsigned char)(op + i);
			}
			break;
		}
		if (op % 16 == 0)
			check_maps_vs_kernel(getpid(), lo, hi);
	}
	for (size_t i = 0; i < W; i++)
		if (prot_of[i] >= 0)
			assert_int_equal(w[i * PG], val[i]);
	assert_int_equal(upage_munmap(w, W * PG), 0);
	check_maps_vs_kernel(getpid(), lo, hi);
}

/*
 * Run as `test_upagectl --client SOCKET` (under setpriv, as nobody): a
 * client of its own with one mapping, that says "ready BASE SIZE ADDR" and
 * lives until its stdin closes.
 */
static int client_main(const char *sock)
{
	struct upage_options o = { .socket_path = sock,
				   .arena_size = 1UL << 28 };
	unsigned char *p;
	void *base;
	size_t size;
	char c;
	int r;

	r = upage_connect(&o);
	if (r < 0) {
		printf("fail %d\n", -r);
		return 1;
	}
	p = upage_mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || upage_arena(&base, &size) < 0) {
		printf("fail %d\n", errno);
		return 1;
	}
	memset(p, 0x5a, 3 * PG);
	printf("ready %lu %lu %lu\n", (unsigned long)base, (unsigned long)size,
	       (unsigned long)p);
	fflush(stdout);
	while (read(0, &c, 1) > 0)
		;
	return 0;
}

/* A client that is not root sees itself, and root sees it too. */
static void test_nonroot_own(void **state)
{
	unsigned long base, size, addr;
	posix_spawn_file_actions_t fa;
	char self[512], line[128], arg[32], expr[256];
	int in[2], out[2], st, err;
	const char *argv[8];
	struct run r;
	ssize_t n;
	pid_t pid;
	FILE *f;

	if (geteuid() != 0)
		skip();
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = '\0';
	assert_int_equal(chmod(h.dir, 0711), 0);
	assert_int_equal(chmod(h.sock, 0666), 0);
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	argv[0] = "/usr/bin/setpriv";
	argv[1] = "--reuid=65534";
	argv[2] = "--regid=65534";
	argv[3] = "--clear-groups";
	argv[4] = self;
	argv[5] = "--client";
	argv[6] = h.sock;
	argv[7] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	assert_int_equal(posix_spawn(&pid, argv[0], &fa, NULL,
				     (char *const *)argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	f = fdopen(out[0], "r");
	assert_non_null(f);
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	if (sscanf(line, "fail %d", &err) == 1) {
		/* No userfaultfd at all for nobody here. */
		fprintf(stderr, "nobody cannot be a client: %s\n",
			strerror(err));
		close(in[1]);
		fclose(f);
		waitpid(pid, &st, 0);
		skip();
	}
	assert_int_equal(sscanf(line, "ready %lu %lu %lu", &base, &size,
				&addr), 3);
	/* nobody sees exactly itself... */
	run_ctl(&r, NOBODY, "--json", "clients");
	assert_int_equal(r.status, 0);
	snprintf(expr, sizeof(expr), "[(c['pid'], c['uid'], c['vmas'], "
		 "c['mapped_kb']) for c in d['clients']] == [(%d, %d, 1, 32)]",
		 pid, NOBODY);
	assert_json(r.out, expr);
	run_free(&r);
	/* ...its maps, equal to the kernel's... */
	assert_int_equal(check_maps_as(NOBODY, pid, base, base + size), 1);
	/* ...but not ours. */
	snprintf(arg, sizeof(arg), "%d", getpid());
	run_ctl(&r, NOBODY, "maps", arg);
	assert_int_equal(r.status, 5);
	run_free(&r);
	/* Root sees it, owned by nobody. */
	run_ctl(&r, 0, "--json", "clients");
	assert_int_equal(r.status, 0);
	snprintf(expr, sizeof(expr), "[c['uid'] for c in d['clients'] if "
		 "c['pid'] == %d] == [%d]", pid, NOBODY);
	assert_json(r.out, expr);
	run_free(&r);
	close(in[1]);
	fclose(f);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_int_equal(st, 0);
	assert_int_equal(chmod(h.sock, 0660), 0);
	assert_int_equal(chmod(h.dir, 0700), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ping),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_maps_match_kernel),
		cmocka_unit_test(test_maps_json_fields),
		cmocka_unit_test(test_maps_many_vmas),
		cmocka_unit_test(test_pmap_totals),
		cmocka_unit_test(test_fork_clients),
		cmocka_unit_test(test_status_moves),
		cmocka_unit_test(test_maps_random),
		cmocka_unit_test(test_nonroot),
		cmocka_unit_test(test_nonroot_own),
		cmocka_unit_test(test_top),
		cmocka_unit_test(test_files_who_maps),
	};

	if (argc == 3 && !strcmp(argv[1], "--client"))
		return client_main(argv[2]);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

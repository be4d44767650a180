/*
 * test_daemon_evict.c - paging under a memory budget (--max-resident) end
 * to end: two processes scan a file four times the budget while the
 * daemon's page cache is sampled (its STATUS and the kernel's count of its
 * memfds); random writes through shared mappings evicted with write-back,
 * then synced, SIGKILLed or the daemon SIGTERMed, the file compared byte
 * for byte with a replay of every write; a hot set that survives scans; the
 * madvise hints with the kernel's data semantics; anonymous private pages
 * never evicted.
 *
 * Every test starts its own daemon with a 16 MiB budget. "Within budget"
 * means at most the budget plus SLACK_PAGES (4 MiB): pages read ahead
 * may arrive before eviction makes room for them, and a reader keeps up to
 * three 1 MiB readahead windows in flight (RA_MAX_PAGES, the window being
 * read and two ahead), plus the run its own fault reads.
 *
 * Helper processes are this program run again ("helper ROLE ..."): each is
 * a client of its own, reports on stdout and waits for stdin to close.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <upage/upage.h>

#include "upaged_harness.h"
#include "upaged_filetest.h"

#define PG FT_PG
#define BUDGET "16M"
#define BUDGET_PAGES 4096UL
#define SLACK_PAGES 1024UL
#define LIMIT_PAGES (BUDGET_PAGES + SLACK_PAGES)
/* The file the scans read: four times the budget. */
#define SCAN_PAGES (4 * BUDGET_PAGES)

static struct harness h;
static char dir[64];

static void path_of(char *buf, const char *name)
{
	snprintf(buf, 128, "%s/%s", dir, name);
}

static int group_setup(void **state)
{
	strcpy(dir, "/tmp/upaged-evict-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	ft_rmdir(dir);
	return 0;
}

static void sampler_stop(void);

/* Each test: a daemon of its own, so that its counters start at zero. */
static int setup(void **state)
{
	static const char *const args[] = { "--max-resident", BUDGET, NULL };

	if (harness_start_args(&h, args) < 0)
		return -1;
	return harness_connect(&h, 1UL << 30) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	sampler_stop();
	upage_disconnect();
	/* A test that stopped the daemon itself has checked its status. */
	if (h.pid > 0 && harness_stop(&h) != 0)
		return -1;
	return 0;
}

static struct upage_status_reply status(void)
{
	struct upage_status_reply s;

	memset(&s, 0, sizeof(s));
	if (ft_status_of(h.sock, &s) < 0)
		fail_msg("STATUS failed");
	return s;
}

/* STATUS once resident_pages reaches want, or after 10 s. */
static struct upage_status_reply status_when_resident(uint64_t want)
{
	struct upage_status_reply s;
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		s = status();
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (s.resident_pages >= want || t.tv_sec - t0.tv_sec >= 10)
			return s;
		sched_yield();
	}
}

/* The npages of path mapped shared, read-only or read-write. */
static unsigned char *map_ro(const char *path, unsigned long npages)
{
	return ft_map_file(path, O_RDONLY, npages * PG, PROT_READ, MAP_SHARED,
			   0);
}

static unsigned char *map_rw(const char *path, unsigned long npages)
{
	return ft_map_file(path, O_RDWR, npages * PG, PROT_READ | PROT_WRITE,
			   MAP_SHARED, 0);
}

/* Makes the file name of npages (pattern seed) and maps it read-only, or
   read-write; path gets its path. */
static unsigned char *make_mapped(char *path, const char *name,
				  unsigned long npages, unsigned seed, bool rw)
{
	unsigned char *p;

	path_of(path, name);
	assert_int_equal(ft_make_file(path, npages * PG, seed), 0);
	p = rw ? map_rw(path, npages) : map_ro(path, npages);
	assert_ptr_not_equal(p, MAP_FAILED);
	return p;
}

static unsigned char *make_ro(char *path, const char *name,
			      unsigned long npages, unsigned seed)
{
	return make_mapped(path, name, npages, seed, false);
}

/* Read-write, advised MADV_RANDOM. */
static unsigned char *make_rw_random(char *path, const char *name,
				     unsigned long npages, unsigned seed)
{
	unsigned char *p = make_mapped(path, name, npages, seed, true);

	assert_int_equal(upage_madvise(p, npages * PG, MADV_RANDOM), 0);
	return p;
}

/* Page i of a mapping of pattern seed is intact; else fails the test. */
static void check_page(const unsigned char *p, unsigned long pg,
		       unsigned seed)
{
	for (unsigned long i = pg * PG; i < (pg + 1) * PG; i++)
		if (p[i] != ft_pat(i, seed))
			fail_msg("byte %#lx differs", i);
}

/* Pages of [p, p + n pages) the kernel has in the page cache; vec gets
   one byte per page. */
static unsigned long resident(const void *p, unsigned long n,
			      unsigned char *vec)
{
	unsigned long r = 0;

	if (mincore((void *)p, n * PG, vec) < 0)
		fail_msg("mincore: %s", strerror(errno));
	for (unsigned long i = 0; i < n; i++)
		r += vec[i] & 1;
	return r;
}

/*
 * Waits until exactly want of the n pages at p are resident (a hint's
 * reads and write-backs run after the daemon's reply, as the kernel's own
 * WILLNEED readahead does, and nothing signals their end to the client):
 * polls mincore for at most 10 s. Returns the last count.
 */
static unsigned long wait_resident(const void *p, unsigned long n,
				   unsigned long want, unsigned char *vec)
{
	struct timespec t0, t;
	unsigned long r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		r = resident(p, n, vec);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (r == want || t.tv_sec - t0.tv_sec >= 10)
			return r;
		sched_yield();
	}
}

/* ---- the daemon's page cache, sampled while a test runs ---- */

struct sampler {
	pthread_t thread;
	bool running;
	atomic_bool stop;
	int sock;
	uint64_t max_pages;   /* STATUS resident_pages */
	long long max_bytes;  /* the kernel's count of the memfds */
	unsigned long samples;
	int err;
};

/* One at a time; teardown stops it if a failed test could not. */
static struct sampler sm;

static void *sampler_main(void *arg)
{
	/* The sampling period, not a wait: 1 ms against eviction runs that
	   the daemon's own peak (resident_peak_pages) checks in between. */
	const struct timespec period = { 0, 1000000 };

	while (!atomic_load(&sm.stop)) {
		struct upage_status_reply s;
		long long b = ft_daemon_cache_bytes(h.pid);
		int r = ft_status(sm.sock, &s);

		if (r < 0 || b < 0) {
			sm.err = r < 0 ? r : -EIO;
			break;
		}
		if (s.resident_pages > sm.max_pages)
			sm.max_pages = s.resident_pages;
		if (b > sm.max_bytes)
			sm.max_bytes = b;
		sm.samples++;
		nanosleep(&period, NULL);
	}
	return NULL;
}

static void sampler_start(void)
{
	memset(&sm, 0, sizeof(sm));
	sm.sock = ft_status_connect(h.sock);
	assert_true(sm.sock >= 0);
	assert_int_equal(pthread_create(&sm.thread, NULL, sampler_main, NULL),
			 0);
	sm.running = true;
}

static void sampler_stop(void)
{
	if (!sm.running)
		return;
	atomic_store(&sm.stop, true);
	pthread_join(sm.thread, NULL);
	close(sm.sock);
	sm.running = false;
}

/* Prints the daemon's budget figures. */
static void print_budget(const struct upage_status_reply *s)
{
	print_message("budget %lu, low %lu, peak %lu pages; %lu evicted in "
		      "%lu runs, %lu written first, %lu kept, %lu refaults\n",
		      (unsigned long)s->budget_pages,
		      (unsigned long)s->low_pages,
		      (unsigned long)s->resident_peak_pages,
		      (unsigned long)s->evicted_pages,
		      (unsigned long)s->evict_runs,
		      (unsigned long)s->evict_writeback_pages,
		      (unsigned long)s->evict_kept_pages,
		      (unsigned long)s->refaults);
}

/* Stops it and checks that no sample was over limit pages. */
static void sampler_check_limit(unsigned long limit)
{
	struct upage_status_reply s = status();

	sampler_stop();
	print_message("sampled: at most %lu pages (STATUS), %lld KiB "
		      "(kernel), %lu samples\n", (unsigned long)sm.max_pages,
		      sm.max_bytes >> 10, sm.samples);
	print_budget(&s);
	assert_int_equal(sm.err, 0);
	/* Enough samples that the run was watched, not glanced at. */
	assert_true(sm.samples >= 20);
	assert_true(sm.max_pages <= limit);
	assert_true(sm.max_bytes <= (long long)(limit * PG));
	assert_true(s.resident_peak_pages <= limit);
	/* The budget was used, not avoided by caching nothing. */
	assert_true(s.resident_peak_pages >= s.low_pages);
}

/* The same for the budget plus slack. */
static void sampler_check(void)
{
	sampler_check_limit(LIMIT_PAGES);
}

/* ---- the writers' workload, replayed by the test to know the file ---- */

/*
 * Writer (parity, seed) writes, at its step k, len bytes at off in a page
 * of its parity only, so that two writers never touch the same page and
 * the file's final contents are known.
 */
struct rw_plan {
	uint64_t x;
	int parity;
	unsigned seed;
	unsigned long npages, step;
};

static void rw_init(struct rw_plan *w, unsigned long npages, int parity,
		    unsigned seed)
{
	*w = (struct rw_plan){ .x = 0x9e3779b97f4a7c15ULL * (seed + 1),
			       .parity = parity, .seed = seed,
			       .npages = npages };
}

static void rw_next(struct rw_plan *w, uint64_t *off, size_t *len)
{
	uint64_t r;
	size_t in;

	w->x ^= w->x << 13;
	w->x ^= w->x >> 7;
	w->x ^= w->x << 17;
	r = w->x;
	in = (r >> 24) % PG;
	*len = 1 + (r >> 40) % 512;
	if (in + *len > PG)
		*len = PG - in;
	*off = ((r % (w->npages / 2)) * 2 + w->parity) * PG + in;
	w->step++;
}

static unsigned char rw_byte(const struct rw_plan *w, uint64_t off)
{
	return (unsigned char)(w->step * 29 + off * 13 + w->seed);
}

/* Applies steps more of w's writes to buf (the whole file). */
static void rw_replay(struct rw_plan *w, unsigned char *buf,
		      unsigned long steps)
{
	uint64_t off;
	size_t len;

	while (steps--) {
		rw_next(w, &off, &len);
		for (size_t i = 0; i < len; i++)
			buf[off + i] = rw_byte(w, off + i);
	}
}

/* The file's contents when pattern 1 was written over by these writers. */
static unsigned char *expected(unsigned long npages, int nwriters,
			       const unsigned *seeds,
			       const unsigned long *steps)
{
	unsigned char *buf = malloc(npages * PG);
	struct rw_plan w;

	assert_non_null(buf);
	for (unsigned long i = 0; i < npages * PG; i++)
		buf[i] = ft_pat(i, 1);
	for (int k = 0; k < nwriters; k++) {
		rw_init(&w, npages, k, seeds[k]);
		rw_replay(&w, buf, steps[k]);
	}
	return buf;
}

/* The file at path is exactly buf; reports the first byte that is not. */
static void check_file(const char *path, const unsigned char *buf,
		       size_t size)
{
	unsigned char chunk[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, size);
	for (size_t off = 0; off < size; off += sizeof(chunk)) {
		size_t n = size - off < sizeof(chunk) ? size - off :
						       sizeof(chunk);

		assert_int_equal(pread(fd, chunk, n, (off_t)off), (ssize_t)n);
		if (memcmp(chunk, buf + off, n))
			for (size_t i = 0; i < n; i++)
				if (chunk[i] != buf[off + i])
					fail_msg("file byte %#zx is %#x, "
						 "written %#x", off + i,
						 chunk[i], buf[off + i]);
	}
	close(fd);
}

/* ---- helpers (other processes) ---- */

static int helper_connect(const char *sock)
{
	struct upage_options o = { .socket_path = sock,
				   .arena_size = 1UL << 30 };

	return upage_connect(&o);
}

/*
 * scan SOCK PATH NPAGES FIRST PASSES: maps the file (pattern 1) shared,
 * reads it PASSES times from page FIRST round to the end and on from the
 * start, checks every byte, reports "ok" and stays until told to go.
 */
static int helper_scan(char **argv)
{
	unsigned long n = strtoul(argv[2], NULL, 0);
	unsigned long first = strtoul(argv[3], NULL, 0);
	int passes = atoi(argv[4]);
	unsigned char *p;

	if (helper_connect(argv[0]) < 0)
		return 2;
	p = map_ro(argv[1], n);
	if (p == MAP_FAILED)
		return 3;
	for (int k = 0; k < passes; k++)
		for (unsigned long j = 0; j < n; j++) {
			unsigned long pg = (first + j) % n;

			for (unsigned long i = pg * PG; i < (pg + 1) * PG; i++)
				if (p[i] != ft_pat(i, 1)) {
					printf("bad %#lx pass %d\n", i, k);
					return 5;
				}
		}
	printf("ok\n");
	fflush(stdout);
	ft_wait_for_eof();
	return 0;
}

/* Makes steps more writes of w through p, checking each against shadow. */
static int writer_steps(struct rw_plan *w, unsigned char *p,
			unsigned char *shadow, unsigned long steps)
{
	uint64_t off;
	size_t len;

	while (steps--) {
		rw_next(w, &off, &len);
		if (memcmp(p + off, shadow + off, len)) {
			printf("bad write %lu at %#lx\n", w->step,
			       (unsigned long)off);
			return -1;
		}
		for (size_t i = 0; i < len; i++)
			p[off + i] = shadow[off + i] = rw_byte(w, off + i);
	}
	return 0;
}

/*
 * writer SOCK PATH NPAGES PARITY SEED N1 N2: maps the file (pattern 1)
 * shared read-write and makes N1 writes of its plan, each checking first
 * that the bytes it overwrites are the ones it last left there; checks
 * every byte of its pages, msyncs, reports "synced". After a byte on
 * stdin it makes N2 more (never synced) and reports "written".
 */
static int helper_writer(char **argv)
{
	unsigned long n = strtoul(argv[2], NULL, 0);
	unsigned long n1 = strtoul(argv[5], NULL, 0);
	unsigned long n2 = strtoul(argv[6], NULL, 0);
	unsigned char *p, *shadow = malloc(n * PG);
	struct rw_plan w;
	char c;

	if (!shadow || helper_connect(argv[0]) < 0)
		return 2;
	p = map_rw(argv[1], n);
	if (p == MAP_FAILED)
		return 3;
	for (unsigned long i = 0; i < n * PG; i++)
		shadow[i] = ft_pat(i, 1);
	rw_init(&w, n, atoi(argv[3]), (unsigned)atoi(argv[4]));
	if (writer_steps(&w, p, shadow, n1) < 0)
		return 4;
	/* Every page of ours, evicted or not, then synced. */
	for (unsigned long pg = w.parity; pg < n; pg += 2)
		if (memcmp(p + pg * PG, shadow + pg * PG, PG)) {
			printf("bad page %lu\n", pg);
			return 5;
		}
	if (upage_msync(p, n * PG, MS_SYNC) < 0)
		return 6;
	printf("synced\n");
	fflush(stdout);
	if (read(0, &c, 1) != 1)
		return 0;
	if (writer_steps(&w, p, shadow, n2) < 0)
		return 7;
	printf("written\n");
	fflush(stdout);
	free(shadow);
	ft_wait_for_eof();
	return 0;
}

static int helper_main(int argc, char **argv)
{
	if (argc >= 8 && !strcmp(argv[2], "scan"))
		return helper_scan(argv + 3);
	if (argc >= 10 && !strcmp(argv[2], "writer"))
		return helper_writer(argv + 3);
	if (argc >= 7 && !strcmp(argv[2], "reader"))
		return ft_helper_reader(argv + 3);
	return 100;
}

static void spawn_writer(struct ft_helper *hp, const char *path,
			 unsigned long npages, int parity, unsigned seed,
			 unsigned long n1, unsigned long n2)
{
	char a[5][24];
	char *argv[] = { "test", "helper", "writer", h.sock, (char *)path,
			 a[0], a[1], a[2], a[3], a[4], NULL };

	snprintf(a[0], sizeof(a[0]), "%lu", npages);
	snprintf(a[1], sizeof(a[1]), "%d", parity);
	snprintf(a[2], sizeof(a[2]), "%u", seed);
	snprintf(a[3], sizeof(a[3]), "%lu", n1);
	snprintf(a[4], sizeof(a[4]), "%lu", n2);
	assert_int_equal(ft_spawn(hp, argv), 0);
}

static void expect_report(struct ft_helper *hp, const char *want)
{
	char line[128];

	assert_int_equal(ft_report(hp, line, sizeof(line)), 0);
	assert_string_equal(line, want);
}

/* ---- tests ---- */

/*
 * Starts the sampler, then two scanners of the npages of path (passes
 * each), from its start and its middle; returns when both report ok.
 */
static void scan_by_two(struct ft_helper hp[2], char *path,
			      unsigned long npages, char *passes)
{
	char n[24], first[2][24];

	snprintf(n, sizeof(n), "%lu", npages);
	sampler_start();
	for (int i = 0; i < 2; i++) {
		char *argv[] = { "test", "helper", "scan", h.sock, path, n,
				 first[i], passes, NULL };

		snprintf(first[i], sizeof(first[i]), "%lu", i * npages / 2);
		assert_int_equal(ft_spawn(&hp[i], argv), 0);
	}
	for (int i = 0; i < 2; i++)
		expect_report(&hp[i], "ok");
}

/*
 * Two processes scan a file four times the budget three times each, half
 * a file apart: every byte checked, the cache never over budget + slack.
 */
static void test_two_scanners_within_budget(void **state)
{
	char path[128];
	struct upage_status_reply s;
	struct ft_helper hp[2];

	path_of(path, "scan");
	assert_int_equal(ft_make_file(path, SCAN_PAGES * PG, 1), 0);
	s = status();
	assert_int_equal(s.budget_pages, BUDGET_PAGES);
	assert_true(s.low_pages > 0 && s.low_pages < s.budget_pages);
	scan_by_two(hp, path, SCAN_PAGES, "3");
	/* While the file is still mapped: its pages were evicted to fit. */
	s = status();
	assert_true(s.evicted_pages >= SCAN_PAGES - LIMIT_PAGES);
	assert_true(s.evict_runs > 0);
	assert_true(s.resident_pages <= LIMIT_PAGES);
	sampler_check();
	for (int i = 0; i < 2; i++)
		assert_int_equal(ft_finish(&hp[i], 0), 0);
	unlink(path);
}

/*
 * A hot set of 256 pages re-read after every quarter of the budget that a
 * scan reads. The first pass teaches the policy (the hot set may be
 * evicted once and refault); in the passes after it the hot set is found
 * resident before every re-read and refaults stay near zero: at most
 * 1/32 of the hot set over both passes, where losing the hot set even
 * once would refault all of it.
 */
static void test_hot_set_survives_scans(void **state)
{
	enum { HOT = 256, SEG = BUDGET_PAGES / 4, PASSES = 3 };
	unsigned char vec[HOT], *hot, *scan;
	struct upage_status_reply s0, s1;
	unsigned long missing_first = 0;
	char hpath[128], spath[128];

	hot = make_ro(hpath, "hot", HOT, 2);
	scan = make_ro(spath, "scan", SCAN_PAGES, 1);
	for (unsigned long pg = 0; pg < HOT; pg++)
		check_page(hot, pg, 2);
	s0 = status();
	for (int pass = 0; pass < PASSES; pass++) {
		if (pass == 1)
			s0 = status();
		for (unsigned long seg = 0; seg < SCAN_PAGES / SEG; seg++) {
			unsigned long in;

			for (unsigned long k = 0; k < SEG; k++)
				check_page(scan, seg * SEG + k, 1);
			in = resident(hot, HOT, vec);
			if (pass == 0)
				missing_first += HOT - in;
			else if (in != HOT)
				fail_msg("pass %d, after scan segment %lu: "
					 "%lu hot pages evicted", pass, seg,
					 HOT - in);
			for (unsigned long pg = 0; pg < HOT; pg++)
				check_page(hot, pg, 2);
		}
		if (pass == 0) {
			s1 = status();
			print_message("first pass: %lu hot pages found "
				      "evicted, %lu refaults\n", missing_first,
				      (unsigned long)(s1.refaults -
						      s0.refaults));
			/* Pages read again one segment after their eviction
			   are refaults, whatever the policy. */
			if (missing_first)
				assert_true(s1.refaults > s0.refaults);
		}
	}
	s1 = status();
	print_message("later passes: %lu refaults, %lu pages evicted\n",
		      (unsigned long)(s1.refaults - s0.refaults),
		      (unsigned long)(s1.evicted_pages - s0.evicted_pages));
	assert_true(s1.refaults - s0.refaults <= HOT / 32);
	/* The scan did go on cycling through the cache meanwhile. */
	assert_true(s1.evicted_pages - s0.evicted_pages >=
		    (PASSES - 1) * (SCAN_PAGES - LIMIT_PAGES));
	assert_int_equal(upage_munmap(hot, HOT * PG), 0);
	assert_int_equal(upage_munmap(scan, SCAN_PAGES * PG), 0);
	unlink(hpath);
	unlink(spath);
}

/*
 * Two writers, random writes to the pages of their parity of a file four
 * times the budget (dirty pages evicted with write-back, and read back by
 * the writers' own checks), then msync: the file is exactly as written.
 */
static void test_random_writes_then_sync(void **state)
{
	static const unsigned seeds[2] = { 11, 12 };
	static const unsigned long steps[2] = { 8000, 8000 };
	unsigned char *want;
	struct upage_status_reply s;
	struct ft_helper hp[2];
	char path[128];

	path_of(path, "writes");
	assert_int_equal(ft_make_file(path, SCAN_PAGES * PG, 1), 0);
	want = expected(SCAN_PAGES, 2, seeds, steps);
	sampler_start();
	for (int i = 0; i < 2; i++)
		spawn_writer(&hp[i], path, SCAN_PAGES, i, seeds[i], steps[i],
			     0);
	for (int i = 0; i < 2; i++)
		expect_report(&hp[i], "synced");
	check_file(path, want, SCAN_PAGES * PG);
	s = status();
	print_budget(&s);
	assert_true(s.evict_writeback_pages > 0);
	assert_true(s.writeback_ios > 0);
	assert_true(s.evicted_pages > 0);
	sampler_check();
	for (int i = 0; i < 2; i++) {
		assert_int_equal(write(hp[i].in, "g", 1), 1);
		expect_report(&hp[i], "written");
		assert_int_equal(ft_finish(&hp[i], 0), 0);
	}
	check_file(path, want, SCAN_PAGES * PG);
	free(want);
	unlink(path);
}

#ifndef SYS_cachestat
#define SYS_cachestat 451
#endif

/* Pages of [pg, pg + n) of fd in the kernel's page cache; -1 if unknown. */
static long kernel_cached(int fd, unsigned long pg, unsigned long n)
{
	struct { uint64_t off, len; } r = { pg * PG, n * PG };
	struct { uint64_t cache, dirty, writeback, evicted, recent; } cs;

	if (syscall(SYS_cachestat, fd, &r, &cs, 0) < 0)
		return -1;
	return (long)cs.cache;
}

/*
 * Written pages go back with O_DIRECT in a cache of small pages too: the
 * kernel's cached copy of a page written back is dropped (no second copy
 * beside the budget, nothing of ours left dirty there), while a page
 * only read stays cached (one far enough away not to share the written
 * page's large folio: the file was written 64 KiB at a time). The file
 * has the bytes.
 */
static void test_writeback_bypasses_kernel_cache(void **state)
{
	unsigned char *p, v;
	char path[128];
	bool direct;
	int fd;

	path_of(path, "direct-wb");
	assert_int_equal(ft_make_file(path, 64 * PG, 1), 0);
	fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	direct = fd >= 0;
	if (direct)
		close(fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	/* A file system without O_DIRECT (buffered it is), or a kernel
	   without cachestat (it cannot tell). */
	if (!direct || kernel_cached(fd, 5, 1) < 0) {
		close(fd);
		unlink(path);
		skip();
	}
	p = ft_map_file(path, O_RDWR, 64 * PG, PROT_READ | PROT_WRITE,
			MAP_SHARED, 0);
	assert_ptr_not_equal(p, MAP_FAILED);
	for (size_t pg = 0; pg < 64; pg++)
		assert_int_equal(p[pg * PG + 7], ft_pat(pg * PG + 7, 1));
	assert_int_equal(kernel_cached(fd, 5, 1), 1);
	assert_int_equal(kernel_cached(fd, 48, 1), 1);
	p[5 * PG + 3] = 0xc3;
	assert_int_equal(upage_msync(p, 64 * PG, MS_SYNC), 0);
	assert_int_equal(kernel_cached(fd, 5, 1), 0);
	assert_int_equal(kernel_cached(fd, 48, 1), 1);
	assert_int_equal(pread(fd, &v, 1, 5 * PG + 3), 1);
	assert_int_equal(v, 0xc3);
	assert_int_equal(ft_file_has(path, 6 * PG, 58 * PG, 1), 0);
	assert_int_equal(upage_munmap(p, 64 * PG), 0);
	close(fd);
	unlink(path);
}

/*
 * A writer synced, wrote more and was SIGKILLed: the synced writes were on
 * the file at once, and nothing is lost of the later ones either (a shared
 * mapping's writes outlive the writer, as with the kernel).
 */
static void test_writer_sigkill_after_sync(void **state)
{
	static const unsigned seeds[1] = { 21 };
	unsigned long steps[1] = { 6000 };
	unsigned char *want, *p;
	struct ft_helper hp;
	char path[128];

	path_of(path, "kill");
	assert_int_equal(ft_make_file(path, SCAN_PAGES * PG, 1), 0);
	spawn_writer(&hp, path, SCAN_PAGES, 0, seeds[0], steps[0], 3000);
	expect_report(&hp, "synced");
	want = expected(SCAN_PAGES, 1, seeds, steps);
	check_file(path, want, SCAN_PAGES * PG);
	free(want);
	assert_int_equal(write(hp.in, "g", 1), 1);
	expect_report(&hp, "written");
	assert_true(WIFSIGNALED(ft_finish(&hp, SIGKILL)));
	/* A writable mapping of ours: its msync writes back whatever is
	   resident, whether or not the writer's exit has been seen yet. */
	p = map_rw(path, SCAN_PAGES);
	assert_ptr_not_equal(p, MAP_FAILED);
	assert_int_equal(upage_msync(p, SCAN_PAGES * PG, MS_SYNC), 0);
	steps[0] += 3000;
	want = expected(SCAN_PAGES, 1, seeds, steps);
	check_file(path, want, SCAN_PAGES * PG);
	for (unsigned long pg = 0; pg < SCAN_PAGES; pg++)
		if (memcmp(p + pg * PG, want + pg * PG, PG))
			fail_msg("mapped page %lu differs", pg);
	free(want);
	assert_int_equal(upage_munmap(p, SCAN_PAGES * PG), 0);
	unlink(path);
}

/* Dirty pages never synced, the daemon SIGTERMed: all reach the file. */
static void test_sigterm_writes_back_dirty(void **state)
{
	static const unsigned seeds[1] = { 31 };
	static const unsigned long steps[1] = { 8000 };
	unsigned char *want;
	struct ft_helper hp;
	char path[128];

	path_of(path, "term");
	assert_int_equal(ft_make_file(path, SCAN_PAGES * PG, 1), 0);
	spawn_writer(&hp, path, SCAN_PAGES, 0, seeds[0], 0, steps[0]);
	expect_report(&hp, "synced");
	assert_int_equal(write(hp.in, "g", 1), 1);
	expect_report(&hp, "written");
	upage_disconnect();
	assert_int_equal(harness_stop(&h), 0);
	want = expected(SCAN_PAGES, 1, seeds, steps);
	check_file(path, want, SCAN_PAGES * PG);
	free(want);
	assert_int_equal(ft_finish(&hp, 0), 0);
	unlink(path);
}

/* WILLNEED reads the advised pages in, and only them: no userfault after. */
static void test_willneed_prefetches(void **state)
{
	enum { N = 1024, FROM = 256, LEN = 512 };
	struct upage_status_reply s0, s1;
	unsigned char vec[N], *p;
	char path[128];

	p = make_ro(path, "willneed", N, 1);
	assert_int_equal(resident(p, N, vec), 0);
	s0 = status();
	assert_int_equal(upage_madvise(p + FROM * PG, LEN * PG,
				       MADV_WILLNEED), 0);
	assert_int_equal(wait_resident(p + FROM * PG, LEN, LEN, vec), LEN);
	/* Nothing before the range was asked for. */
	assert_int_equal(resident(p, FROM, vec), 0);
	/* The pages are in the page cache a moment before the daemon hears
	   that their copy ended: its count is polled the same way. */
	s1 = status_when_resident(s0.resident_pages + LEN);
	assert_true(s1.advised_pages - s0.advised_pages >= LEN);
	assert_true(s1.resident_pages - s0.resident_pages >= LEN);
	for (unsigned long pg = FROM; pg < FROM + LEN; pg++)
		check_page(p, pg, 1);
	s0 = status();
	assert_int_equal(s0.faults, s1.faults);
	assert_int_equal(upage_munmap(p, N * PG), 0);
	unlink(path);
}

/* Touches page 5 of every 16, in a scrambled order; checks each. */
static void touch_scattered(const unsigned char *p, unsigned long n)
{
	for (unsigned long k = 0; k < n / 16; k++) {
		unsigned long pg = ((k * 37) % (n / 16)) * 16 + 5;

		check_page(p, pg, 1);
	}
}

/*
 * RANDOM: a fault reads its own page and nothing around it. The same
 * faults without the hint read around themselves, so the hint is what
 * makes the difference.
 */
static void test_random_reads_only_the_page(void **state)
{
	enum { N = 1024 };
	struct upage_status_reply s0, s1;
	unsigned char vec[N], *p;
	char path[128], npath[128];

	p = make_ro(path, "random", N, 1);
	assert_int_equal(upage_madvise(p, N * PG, MADV_RANDOM), 0);
	s0 = status();
	touch_scattered(p, N);
	s1 = status();
	print_message("random: %lu reads, %lu pages read ahead\n",
		      (unsigned long)(s1.read_ios - s0.read_ios),
		      (unsigned long)(s1.ra_pages - s0.ra_pages));
	assert_int_equal(resident(p, N, vec), N / 16);
	for (unsigned long pg = 0; pg < N; pg++)
		assert_int_equal(vec[pg] & 1, pg % 16 == 5);
	/* One read of one page per fault, none ahead. */
	assert_int_equal(s1.read_bytes - s0.read_bytes, N / 16 * PG);
	assert_int_equal(s1.ra_pages, s0.ra_pages);
	assert_int_equal(s1.resident_pages - s0.resident_pages, N / 16);
	assert_int_equal(upage_munmap(p, N * PG), 0);
	/* Without the hint, on a file not yet cached: reads around. */
	p = make_ro(npath, "normal", N, 1);
	touch_scattered(p, N);
	assert_true(resident(p, N, vec) > N / 16);
	assert_int_equal(upage_munmap(p, N * PG), 0);
	unlink(npath);
	unlink(path);
}

/*
 * SEQUENTIAL: a read from start to end of a file twice the budget is
 * served by readahead, and the pages behind the reader go first: a file
 * read before it, older in the cache, is still all there at the end.
 */
static void test_sequential_reads_ahead(void **state)
{
	enum { N = 2 * BUDGET_PAGES, NB = 256 };
	struct upage_status_reply s0, s1;
	unsigned char vb[NB], *p, *b;
	char path[128], bpath[128];

	b = make_ro(bpath, "before", NB, 3);
	p = make_ro(path, "seq", N, 1);
	for (unsigned long pg = 0; pg < NB; pg++)
		check_page(b, pg, 3);
	assert_int_equal(upage_madvise(p, N * PG, MADV_SEQUENTIAL), 0);
	s0 = status();
	for (unsigned long pg = 0; pg < N; pg++)
		check_page(p, pg, 1);
	s1 = status();
	print_message("sequential: %lu faults, %lu pages read ahead, %lu "
		      "evicted, %lu of the older file resident\n",
		      (unsigned long)(s1.faults - s0.faults),
		      (unsigned long)(s1.ra_pages - s0.ra_pages),
		      (unsigned long)(s1.evicted_pages - s0.evicted_pages),
		      resident(b, NB, vb));
	/* One fault per 64 pages at most: windows of 256 KiB and more. */
	assert_true(s1.faults - s0.faults <= N / 64);
	assert_true(s1.ra_pages - s0.ra_pages >= N / 2);
	assert_true(s1.evicted_pages - s0.evicted_pages >= N - LIMIT_PAGES);
	assert_int_equal(resident(b, NB, vb), NB);
	assert_int_equal(upage_munmap(p, N * PG), 0);
	assert_int_equal(upage_munmap(b, NB * PG), 0);
	unlink(path);
	unlink(bpath);
}

/*
 * DONTNEED, as the kernel does it. On a shared mapping it drops only the
 * mapping's page tables: written bytes (never synced) and read ones are
 * all still there, in this mapping and another, and the file changes only
 * with the msync. On a private mapping it drops the private copies: the
 * file's bytes show again, and nothing written ever reaches it.
 */
static void dontneed(bool shared)
{
	enum { N = 64, W = 16 };
	unsigned char *p, *other;
	unsigned seed = shared ? 2 : 1;
	char path[128];

	path_of(path, "dontneed");
	assert_int_equal(ft_make_file(path, N * PG, 1), 0);
	p = shared ? map_rw(path, N) :
		     ft_map_file(path, O_RDONLY, N * PG, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE, 0);
	other = map_ro(path, N);
	assert_ptr_not_equal(p, MAP_FAILED);
	assert_ptr_not_equal(other, MAP_FAILED);
	for (unsigned long pg = 0; pg < N; pg++)
		check_page(p, pg, 1);
	for (unsigned long i = 0; i < W * PG; i++)
		p[i] = ft_pat(i, 2);
	for (unsigned long pg = 0; pg < N; pg++) {
		check_page(p, pg, pg < W ? 2 : 1);
		check_page(other, pg, pg < W ? seed : 1);
	}
	assert_int_equal(upage_madvise(p, N * PG, MADV_DONTNEED), 0);
	assert_int_equal(upage_madvise(other, N * PG, MADV_DONTNEED), 0);
	for (unsigned long pg = 0; pg < N; pg++) {
		check_page(p, pg, pg < W ? seed : 1);
		check_page(other, pg, pg < W ? seed : 1);
	}
	assert_int_equal(ft_file_has(path, 0, N * PG, 1), 0);
	assert_int_equal(upage_msync(p, N * PG, MS_SYNC), 0);
	assert_int_equal(ft_file_has(path, 0, W * PG, seed), 0);
	assert_int_equal(ft_file_has(path, W * PG, (N - W) * PG, 1), 0);
	assert_int_equal(upage_munmap(p, N * PG), 0);
	assert_int_equal(upage_munmap(other, N * PG), 0);
	unlink(path);
}

static void test_dontneed_shared_keeps_data(void **state)
{
	dontneed(true);
}

static void test_dontneed_private_drops_copies(void **state)
{
	dontneed(false);
}

/*
 * COLD pages go first: B is read, then A, A is advised cold, then a third
 * file C is read until A's size has been evicted. B is older than A, so a
 * page of B going while any of A stays would be plain FIFO order. A is
 * larger than one eviction run (budget to low watermark) plus the
 * readahead that may land between two looks, so FIFO cannot hide inside
 * a single run.
 */
static void test_cold_goes_first(void **state)
{
	enum { NB = 256, NC = 2 * BUDGET_PAGES, CHUNK = 32 };
	struct upage_status_reply s0, s = status();
	unsigned long na = s.budget_pages - s.low_pages + 3 * 256, pg = 0;
	unsigned char vb[NB], *va = malloc(na), *a, *b, *c;
	char pa[128], pb[128], pc[128];

	assert_non_null(va);
	assert_true(na + NB + 256 <= BUDGET_PAGES);
	b = make_ro(pb, "b", NB, 3);
	a = make_ro(pa, "a", na, 2);
	c = make_ro(pc, "c", NC, 1);
	for (unsigned long i = 0; i < NB; i++)
		check_page(b, i, 3);
	for (unsigned long i = 0; i < na; i++)
		check_page(a, i, 2);
	assert_int_equal(upage_madvise(a, na * PG, MADV_COLD), 0);
	/* Cold is a preference, not a drop: all still there. */
	assert_int_equal(resident(a, na, va), na);
	s0 = status();
	do {
		for (unsigned long end = pg + CHUNK; pg < end; pg++)
			check_page(c, pg, 1);
		s = status();
		if (resident(b, NB, vb) < NB && resident(a, na, va) > 0)
			fail_msg("after %lu pages: a page of B evicted while "
				 "%lu cold pages of A stay", pg,
				 resident(a, na, va));
	} while (s.evicted_pages - s0.evicted_pages < na && pg < NC);
	assert_int_equal(resident(a, na, va), 0);
	/* Gone from the cache, not lost. */
	for (unsigned long i = 0; i < na; i++)
		check_page(a, i, 2);
	assert_int_equal(upage_munmap(a, na * PG), 0);
	assert_int_equal(upage_munmap(b, NB * PG), 0);
	assert_int_equal(upage_munmap(c, NC * PG), 0);
	free(va);
	unlink(pa);
	unlink(pb);
	unlink(pc);
}

/*
 * PAGEOUT evicts now the pages only this mapping maps, writing the dirty
 * ones back first; a page another process maps stays.
 */
static void test_pageout_evicts_now(void **state)
{
	enum { N = 128, OTHER = 32, NOTHER = 32 };
	struct upage_status_reply s0, s1;
	unsigned char vec[N], *p;
	char path[128], a[24], n[24], line[64];
	char *argv[] = { "test", "helper", "reader", h.sock, path, a, n, NULL };
	struct ft_helper hp;
	unsigned long addr;

	path_of(path, "pageout");
	assert_int_equal(ft_make_file(path, N * PG, 1), 0);
	p = map_rw(path, N);
	assert_ptr_not_equal(p, MAP_FAILED);
	for (unsigned long pg = 0; pg < N; pg++)
		check_page(p, pg, 1);
	for (unsigned long i = 0; i < 16 * PG; i++)
		p[i] = ft_pat(i, 2);
	for (unsigned long i = 64 * PG; i < 72 * PG; i++)
		p[i] = ft_pat(i, 2);
	/* Another process maps (and reads) pages 32..63. */
	snprintf(a, sizeof(a), "%d", OTHER);
	snprintf(n, sizeof(n), "%d", NOTHER);
	assert_int_equal(ft_spawn(&hp, argv), 0);
	assert_int_equal(ft_report(&hp, line, sizeof(line)), 0);
	assert_int_equal(sscanf(line, "ok %lx", &addr), 1);
	assert_int_equal(resident(p, N, vec), N);
	s0 = status();
	assert_int_equal(upage_madvise(p, N * PG, MADV_PAGEOUT), 0);
	assert_int_equal(wait_resident(p, N, NOTHER, vec), NOTHER);
	for (unsigned long pg = 0; pg < N; pg++)
		if ((vec[pg] & 1) != (pg >= OTHER && pg < OTHER + NOTHER))
			fail_msg("page %lu %s", pg, vec[pg] & 1 ?
				 "still resident" : "evicted, yet mapped "
				 "by another process");
	s1 = status();
	assert_true(s0.resident_pages - s1.resident_pages >= N - NOTHER);
	assert_true(s1.evicted_pages - s0.evicted_pages >= N - NOTHER);
	/* Written back before it went, without an msync. */
	assert_int_equal(ft_file_has(path, 0, 16 * PG, 2), 0);
	assert_int_equal(ft_file_has(path, 16 * PG, 48 * PG, 1), 0);
	assert_int_equal(ft_file_has(path, 64 * PG, 8 * PG, 2), 0);
	assert_int_equal(ft_file_has(path, 72 * PG, (N - 72) * PG, 1), 0);
	for (unsigned long pg = 0; pg < N; pg++)
		check_page(p, pg, pg < 16 || (pg >= 64 && pg < 72) ? 2 : 1);
	assert_int_equal(ft_finish(&hp, 0), 0);
	assert_int_equal(upage_munmap(p, N * PG), 0);
	unlink(path);
}

/*
 * Anonymous private memory larger than the budget is never evicted: all
 * of it stays resident and intact while a scan makes the page cache evict.
 */
static void test_anon_private_not_evicted(void **state)
{
	const size_t size = 3 * BUDGET_PAGES / 2 * PG;
	struct upage_status_reply s0, s1;
	unsigned char *anon, *scan;
	char path[128];
	long rss, pss;

	anon = upage_mmap(NULL, size, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_ptr_not_equal(anon, MAP_FAILED);
	for (size_t i = 0; i < size; i++)
		anon[i] = ft_pat(i, 5);
	s0 = status();
	scan = make_ro(path, "scan", SCAN_PAGES, 1);
	for (unsigned long pg = 0; pg < SCAN_PAGES; pg++)
		check_page(scan, pg, 1);
	s1 = status();
	assert_true(s1.evicted_pages - s0.evicted_pages >=
		    SCAN_PAGES - LIMIT_PAGES);
	assert_int_equal(ft_smaps(getpid(), (unsigned long)anon, &rss, &pss),
			 0);
	assert_true(rss >= (long)(size >> 10));
	for (size_t i = 0; i < size; i++)
		if (anon[i] != ft_pat(i, 5))
			fail_msg("anonymous byte %#zx lost", i);
	assert_int_equal(upage_munmap(scan, SCAN_PAGES * PG), 0);
	assert_int_equal(upage_munmap(anon, size), 0);
	unlink(path);
}

/*
 * A shared mapping of a writable fd made read-only, read through (four
 * times the budget), then made writable: the daemon protects it before the
 * client's mprotect takes effect, so the first write to every page is seen,
 * resident or not. The sync writes back exactly the pages written, and the
 * file is as written. While it cannot write, a read fault maps the pages
 * around it too (the kernel's fault-around: no write-protect yet).
 */
static void test_made_writable_later(void **state)
{
	static const unsigned long pages[] = { 0, 1, 5, 17, 1000, 4095, 4096,
					       9000, SCAN_PAGES - 64,
					       SCAN_PAGES - 2, SCAN_PAGES - 1 };
	const unsigned long n = sizeof(pages) / sizeof(pages[0]);
	struct upage_status_reply s0, s1;
	unsigned char *p, *want;
	char path[128];
	long rss, pss;

	path_of(path, "later");
	assert_int_equal(ft_make_file(path, SCAN_PAGES * PG, 4), 0);
	p = ft_map_file(path, O_RDWR, SCAN_PAGES * PG, PROT_READ, MAP_SHARED,
			0);
	assert_ptr_not_equal(p, MAP_FAILED);
	check_page(p, 0, 4);
	assert_int_equal(ft_smaps(getpid(), (unsigned long)p, &rss, &pss), 0);
	assert_true(rss > (long)(PG >> 10));
	for (unsigned long pg = 1; pg < SCAN_PAGES; pg++)
		check_page(p, pg, 4);
	assert_int_equal(upage_mprotect(p, SCAN_PAGES * PG,
					PROT_READ | PROT_WRITE), 0);
	want = malloc(SCAN_PAGES * PG);
	assert_non_null(want);
	for (unsigned long i = 0; i < SCAN_PAGES * PG; i++)
		want[i] = ft_pat(i, 4);
	s0 = status();
	/* From the end: the last pages read are the ones still mapped. */
	for (unsigned long k = n; k-- > 0;) {
		unsigned long off = pages[k] * PG + 100 + k;

		p[off] = want[off] = (unsigned char)(0xa0 + k);
	}
	assert_int_equal(upage_msync(p, SCAN_PAGES * PG, MS_SYNC), 0);
	s1 = status();
	assert_int_equal(s1.writeback_bytes - s0.writeback_bytes, n * PG);
	check_file(path, want, SCAN_PAGES * PG);
	free(want);
	assert_int_equal(upage_munmap(p, SCAN_PAGES * PG), 0);
	unlink(path);
}

/* A daemon whose budget is large enough for a huge page cache. */
#define HUGE_BUDGET "64M"
#define HUGE_BUDGET_PAGES 16384UL
#define HUGE_LIMIT_PAGES (HUGE_BUDGET_PAGES + HUGE_BUDGET_PAGES / 4)

static int setup_huge(void **state)
{
	static const char *const args[] = { "--max-resident", HUGE_BUDGET,
					    NULL };

	if (harness_start_args(&h, args) < 0)
		return -1;
	return harness_connect(&h, 1UL << 30) < 0 ? -1 : 0;
}

/*
 * Under a budget of 64M the page cache is in huge pages, dropped a whole
 * extent (2M) at a time. Two processes scan a file four times the budget
 * twice: every byte checked, the cache never over the budget plus a
 * quarter. This process maps it too: 2M at a time where the daemon has
 * its own tmpfs. Then MADV_RANDOM reads of single pages: each reads its
 * page alone (not its extent) and goes straight into the mapping; the
 * pages beside them still read as the file, not as a huge page's zeroes,
 * and a write to one of them reaches the file.
 */
static void test_huge_pages_within_budget(void **state)
{
	const unsigned long npages = 4 * HUGE_BUDGET_PAGES;
	static const unsigned long rand_pages[] = { 3, 700, 1500, 2049,
						    2600, 4095 };
	const unsigned long rpages = 4096;
	const size_t nrand = sizeof(rand_pages) / sizeof(rand_pages[0]);
	char path[128];
	struct upage_status_reply s0, s;
	struct ft_helper hp[2];
	unsigned char *p;
	int fs;

	path_of(path, "huge");
	assert_int_equal(ft_make_file(path, npages * PG, 1), 0);
	scan_by_two(hp, path, npages, "2");
	s = status();
	assert_int_equal(s.budget_pages, HUGE_BUDGET_PAGES);
	assert_true(s.evicted_pages >= npages - HUGE_LIMIT_PAGES);
	sampler_check_limit(HUGE_LIMIT_PAGES);
	for (int i = 0; i < 2; i++)
		assert_int_equal(ft_finish(&hp[i], 0), 0);

	p = map_ro(path, npages);
	assert_ptr_not_equal(p, MAP_FAILED);
	for (unsigned long pg = 1024; pg < 1536; pg++)
		check_page(p, pg, 1);
	fs = (int)syscall(SYS_fsopen, "tmpfs", 0);
	if (fs >= 0) {
		close(fs);
		assert_true(ft_smaps_kb(getpid(), (unsigned long)p,
					"ShmemPmdMapped") >= 2048);
	}
	assert_int_equal(upage_munmap(p, npages * PG), 0);
	unlink(path);

	/* A file of its own, none of it cached, mapped shared from a
	   writable fd (a read-only one is mapped privately, and a page
	   copied into a private mapping would be that process's own). */
	p = make_rw_random(path, "huge-random", rpages, 2);
	s0 = status();
	for (size_t i = 0; i < nrand; i++)
		check_page(p, rand_pages[i], 2);
	s = status();
	assert_int_equal(s.read_bytes - s0.read_bytes, nrand * PG);
	assert_int_equal(s.global.fill_pages - s0.global.fill_pages, nrand);
	/* Their neighbours, read the same way: the file's bytes. */
	for (size_t i = 0; i < nrand; i++) {
		check_page(p, rand_pages[i] - 1, 2);
		if (rand_pages[i] + 1 < rpages)
			check_page(p, rand_pages[i] + 1, 2);
	}
	/* A page put in that way is write-protected: its write is seen. */
	s0 = status();
	p[700 * PG + 7] ^= 0xff;
	assert_int_equal(upage_msync(p, rpages * PG, MS_SYNC), 0);
	s = status();
	assert_int_equal(s.writeback_bytes - s0.writeback_bytes, PG);
	{
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		unsigned char c;

		assert_true(fd >= 0);
		assert_int_equal(pread(fd, &c, 1, 700 * PG + 7), 1);
		close(fd);
		assert_int_equal(c, ft_pat(700 * PG + 7, 2) ^ 0xff);
	}
	assert_int_equal(upage_munmap(p, rpages * PG), 0);
	unlink(path);
}

/*
 * Random reads of a writable shared mapping, each written at once (read-
 * modify-write): after a few, the daemon puts the pages in writable and
 * dirty, so most writes take no write-protect fault; every write reaches
 * the file, and pages are written back no more than once. Reads that are
 * not written then turn the prediction off: some pages are written back
 * for nothing, as the file was, and then none any more.
 */
static void test_rmw_prediction(void **state)
{
	enum { N = 2048, K = 64 };
	struct upage_status_reply s0, s1;
	uint64_t *w;
	char path[128];
	unsigned char *p;

	p = make_rw_random(path, "rmw", N, 3);
	s0 = status();
	for (unsigned long i = 0; i < K; i++) {
		w = (uint64_t *)(p + (i * 29 % N) * PG);
		check_page(p, i * 29 % N, 3);
		*w += 1;
	}
	assert_int_equal(upage_msync(p, N * PG, MS_SYNC), 0);
	s1 = status();
	print_message("read-modify-write: %lu WP faults for %d writes\n",
		      (unsigned long)(s1.faults_wp - s0.faults_wp), K);
	assert_true(s1.faults_wp - s0.faults_wp < K / 2);
	assert_int_equal(s1.writeback_bytes - s0.writeback_bytes, K * PG);
	/* Reads only, of other pages: the prediction ends. */
	for (int round = 0; round < 2; round++) {
		s0 = status();
		for (unsigned long i = 0; i < K; i++)
			check_page(p, (i * 29 + 1 + round) % N, 3);
		assert_int_equal(upage_msync(p, N * PG, MS_SYNC), 0);
		s1 = status();
		print_message("reads, round %d: %lu pages written back\n",
			      round, (unsigned long)((s1.writeback_bytes -
						      s0.writeback_bytes) / PG));
		if (round == 0)
			assert_true(s1.writeback_bytes - s0.writeback_bytes <=
				    K / 2 * PG);
		else
			assert_int_equal(s1.writeback_bytes,
					 s0.writeback_bytes);
	}
	assert_int_equal(upage_munmap(p, N * PG), 0);
	/* The file: the written words one more, the rest as made. */
	{
		unsigned char *want = malloc(N * PG), *got = malloc(N * PG);
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		assert_non_null(want);
		assert_non_null(got);
		assert_true(fd >= 0);
		for (unsigned long i = 0; i < N * PG; i++)
			want[i] = ft_pat(i, 3);
		for (unsigned long i = 0; i < K; i++)
			*(uint64_t *)(want + (i * 29 % N) * PG) += 1;
		assert_int_equal(pread(fd, got, N * PG, 0), (ssize_t)(N * PG));
		close(fd);
		assert_memory_equal(got, want, N * PG);
		free(want);
		free(got);
	}
	unlink(path);
}

int main(int argc, char **argv)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_two_scanners_within_budget),
		T(test_hot_set_survives_scans),
		T(test_random_writes_then_sync),
		T(test_writer_sigkill_after_sync),
		T(test_sigterm_writes_back_dirty),
		T(test_willneed_prefetches),
		T(test_random_reads_only_the_page),
		T(test_sequential_reads_ahead),
		T(test_dontneed_shared_keeps_data),
		T(test_dontneed_private_drops_copies),
		T(test_cold_goes_first),
		T(test_pageout_evicts_now),
		T(test_anon_private_not_evicted),
		T(test_made_writable_later),
		T(test_rmw_prediction),
		T(test_writeback_bypasses_kernel_cache),
		cmocka_unit_test_setup_teardown(test_huge_pages_within_budget,
						setup_huge, teardown),
	};
#undef T

	if (argc >= 2 && !strcmp(argv[1], "helper"))
		return helper_main(argc, argv);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

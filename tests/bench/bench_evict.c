/*
 * bench_evict.c - out of core: a 2 GiB file paged through 512 MiB, upaged
 * (--max-resident 512M) against kernel mmap in a memory cgroup limited to
 * 512 MiB, in the same run. Three cases, 4 KiB pages:
 *   sequential read    every page once, in order
 *   random read        RAND_PAGES distinct pages in a random order, the
 *                      cache full of other pages first (see WARM_PAGES)
 *   read-modify-write  the same pages: read a word, write it back plus one,
 *                      then msync(MS_SYNC), all inside the clock
 * The random read case also runs two userfaultfd floors (uffd_floor.h): a
 * handler that preads each faulting page with O_DIRECT and copies it in,
 * with no budget and so no eviction, as a thread of the reading process
 * and as a process of its own that polls and copies into shared memory
 * (a daemon's shape and upaged's conditions): the least a userfaultfd
 * pager of either shape pays per fault here.
 * The read cases map the file read-only, read-modify-write read-write
 * (both sides, a writable fd each time). Every read is checked against
 * what the file must hold. Each figure is
 * the median of RUNS runs, kernel and upaged runs interleaved; every run
 * starts with `echo 3 > /proc/sys/vm/drop_caches` (root) and a fresh
 * mapping (upaged's cache goes with the last mapping).
 *
 * The kernel side runs in a child process moved into a memory cgroup (v1,
 * created under this process's own, removed at the end); where that is
 * impossible the output says so and the kernel runs unlimited. The daemon
 * reads with O_DIRECT unless $UPAGE_BENCH_DIRECT=0, so that its reads do
 * not fill the kernel's page cache beside its budget; the table shows how
 * much of the file the kernel's cache held after upaged's runs.
 *
 * $UPAGE_BENCH_DIR holds the file (default /var/tmp: a disk, not tmpfs);
 * $UPAGE_BENCH_RUNS sets the runs (3), $UPAGE_BENCH_ONLY keeps the cases
 * whose name contains it. Prints a Markdown table.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <upage/upage.h>

#include "../upaged_harness.h"
#include "../upaged_filetest.h"
#include "uffd_floor.h"

#define PG 4096UL
#define SIZE (2UL << 30)
#define NPAGES (SIZE / PG)
#define BUDGET "512M"
#define BUDGET_BYTES (512UL << 20)
/*
 * Random cases: the cache is first filled, before the clock starts, by a
 * sequential read of the file's last WARM_PAGES (more than the budget);
 * then RAND_PAGES distinct pages of the rest are read in a random order,
 * every one a fault that must evict. Both sides advise MADV_RANDOM, so
 * each fault reads its own page: without it the kernel reads a whole
 * readahead window (read_ahead_kb, 8 MiB on the machine this was written
 * on) around every fault, which measures the disk, not paging.
 */
#define WARM_PAGES (5 * (BUDGET_BYTES / PG) / 4)
#define RAND_PAGES 65536UL
#define RUNS_MAX 9

enum { KERNEL, UPAGED };
enum kind { SEQ, RAND, RMW };

static char path[256], cgroup[640];
static const char *cgroup_why = "";
static uint32_t *perm;
static struct harness h;
static int runs = 3;          /* $UPAGE_BENCH_RUNS, odd, up to RUNS_MAX */
static unsigned long rmw_done; /* read-modify-write passes on the file */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Word i of the file is its own offset; the first word of a page gains
   one per read-modify-write pass. */
static int make_file(void)
{
	int fd = ft_bench_file(path, sizeof(path), "upaged-bench-evict", SIZE);

	return fd < 0 ? -1 : close(fd);
}

/* The random order: the same in every process, built before the clock. */
static int make_perm(void)
{
	perm = malloc(NPAGES * sizeof(*perm));
	if (!perm)
		return -1;
	ft_shuffle(perm, NPAGES - WARM_PAGES, 0x9e3779b97f4a7c15ULL);
	return 0;
}

static bool drop_caches(void)
{
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	bool ok = fd >= 0 && write(fd, "3\n", 2) == 2;

	if (fd >= 0)
		close(fd);
	return ok;
}

/* Fills the cache with the file's last pages, as the random cases start. */
static unsigned long warm_up(volatile uint64_t *p)
{
	unsigned long bad = 0;

	for (unsigned long pg = NPAGES - WARM_PAGES; pg < NPAGES; pg++)
		bad += p[pg * (PG / 8) + 1] != pg * PG + 8;
	return bad;
}

/* The run itself; returns the words that were not what the file holds. */
static unsigned long access_pages(volatile uint64_t *p, enum kind k,
				  unsigned long rmw_before)
{
	const unsigned long wpp = PG / 8;
	unsigned long bad = 0;

	switch (k) {
	case SEQ:
		for (unsigned long pg = 0; pg < NPAGES; pg++)
			bad += p[pg * wpp + 1] != pg * PG + 8;
		break;
	case RAND:
		for (unsigned long i = 0; i < RAND_PAGES; i++) {
			unsigned long pg = perm[i];

			bad += p[pg * wpp + 1] != pg * PG + 8;
		}
		break;
	case RMW:
		for (unsigned long i = 0; i < RAND_PAGES; i++) {
			unsigned long pg = perm[i];
			uint64_t w = p[pg * wpp];

			bad += w != pg * PG + rmw_before;
			p[pg * wpp] = w + 1;
		}
		break;
	}
	return bad;
}

struct result {
	double secs;
	unsigned long bad;
	long long mem_peak; /* kernel: the cgroup's peak usage, bytes */
};

/*
 * The kernel's side, in a process of its own: joins the cgroup
 * ($UPAGE_BENCH_CGROUP, if any), maps the file, runs, reports on fd 1.
 * Run as "kernel KIND RMW_BEFORE PATH".
 */
/* Only the case that writes maps for writing. */
static int map_prot(enum kind k)
{
	return k == RMW ? PROT_READ | PROT_WRITE : PROT_READ;
}

/*
 * What every child run starts with: it dies with the bench (a bench
 * stopped half-way takes its runs along) and builds the same order of
 * pages for the file at file_arg. 0, or -1.
 */
static int child_start(const char *file_arg)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	snprintf(path, sizeof(path), "%s", file_arg);
	return make_perm();
}

/* Runs this program as argv (a child run) and returns what it reports;
   exits, naming who, if it fails. */
static struct result spawn_run(char **argv, const char *who)
{
	struct result r = { .secs = -1 };
	struct ft_helper hp;

	if (ft_spawn(&hp, argv) < 0 ||
	    fread(&r, sizeof(r), 1, hp.out) != 1 || ft_finish(&hp, 0) != 0) {
		fprintf(stderr, "bench: %s run failed\n", who);
		exit(1);
	}
	return r;
}

static int kernel_child(char **argv)
{
	const char *cg = getenv("UPAGE_BENCH_CGROUP");
	enum kind k = (enum kind)atoi(argv[0]);
	struct result r = { 0 };
	volatile uint64_t *p;
	char buf[32];
	double t0;
	int fd;

	if (child_start(argv[2]) < 0)
		return 1;
	if (cg && *cg) {
		char procs[700];

		snprintf(procs, sizeof(procs), "%s/cgroup.procs", cg);
		fd = open(procs, O_WRONLY | O_CLOEXEC);
		snprintf(buf, sizeof(buf), "%d\n", getpid());
		if (fd < 0 || write(fd, buf, strlen(buf)) < 0)
			return 2;
		close(fd);
	}
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return 3;
	p = mmap(NULL, SIZE, map_prot(k), MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return 4;
	if (k != SEQ && (warm_up(p) ||
			 madvise((void *)p, SIZE, MADV_RANDOM) < 0))
		return 4;
	t0 = now_s();
	r.bad = access_pages(p, k, strtoul(argv[1], NULL, 0));
	if (k == RMW && msync((void *)p, SIZE, MS_SYNC) < 0)
		return 5;
	r.secs = now_s() - t0;
	munmap((void *)p, SIZE);
	return write(1, &r, sizeof(r)) == sizeof(r) ? 0 : 6;
}

/* Writes val to the cgroup's file name; 0 or -1. */
static int cgroup_set(const char *name, const char *val)
{
	char f[700];
	int fd, r;

	snprintf(f, sizeof(f), "%s/%s", cgroup, name);
	fd = open(f, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	r = write(fd, val, strlen(val)) == (ssize_t)strlen(val) ? 0 : -1;
	close(fd);
	return r;
}

static long long cgroup_get(const char *name)
{
	char f[700];
	long long v = -1;
	FILE *fp;

	snprintf(f, sizeof(f), "%s/%s", cgroup, name);
	fp = fopen(f, "re");
	if (fp) {
		if (fscanf(fp, "%lld", &v) != 1)
			v = -1;
		fclose(fp);
	}
	return v;
}

/*
 * A memory cgroup (v1) limited to the budget, below the one this process
 * is in, so that the limit nests inside whatever holds us already.
 */
static void cgroup_make(void)
{
	char line[512], limit[32];
	FILE *f = fopen("/proc/self/cgroup", "re");
	const char *own = NULL;

	while (f && fgets(line, sizeof(line), f)) {
		char *c = strchr(line, ':');

		if (c && !strncmp(c + 1, "memory:", 7)) {
			own = c + 8;
			line[strcspn(line, "\n")] = '\0';
			break;
		}
	}
	if (f)
		fclose(f);
	if (!own) {
		cgroup_why = "no cgroup v1 memory controller";
		return;
	}
	snprintf(cgroup, sizeof(cgroup),
		 "/sys/fs/cgroup/memory%s%supaged-bench-%d", own,
		 own[strlen(own) - 1] == '/' ? "" : "/", getpid());
	snprintf(limit, sizeof(limit), "%lu", BUDGET_BYTES);
	if (mkdir(cgroup, 0755) < 0) {
		cgroup_why = "cannot create a memory cgroup";
		cgroup[0] = '\0';
		return;
	}
	if (cgroup_set("memory.limit_in_bytes", limit) < 0) {
		cgroup_why = "cannot set memory.limit_in_bytes";
		rmdir(cgroup);
		cgroup[0] = '\0';
	}
}

static struct result run_kernel(enum kind k)
{
	char kind[16], before[32];
	char *argv[] = { "bench_evict", "kernel", kind, before, path, NULL };
	struct result r;

	snprintf(kind, sizeof(kind), "%d", k);
	snprintf(before, sizeof(before), "%lu", rmw_done);
	if (cgroup[0])
		cgroup_set("memory.max_usage_in_bytes", "0");
	r = spawn_run(argv, "the kernel's");
	r.mem_peak = cgroup[0] ? cgroup_get("memory.max_usage_in_bytes") : -1;
	return r;
}

/* Pages of the file in the kernel's own page cache, found by mincore. */
static unsigned long kernel_cached_pages(void)
{
	static unsigned char vec[NPAGES];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	unsigned long n = 0;
	void *p;

	if (fd < 0)
		return 0;
	p = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return 0;
	if (mincore(p, SIZE, vec) == 0)
		for (unsigned long i = 0; i < NPAGES; i++)
			n += vec[i] & 1;
	munmap(p, SIZE);
	return n;
}

static struct result run_upaged(enum kind k, unsigned long *kcached)
{
	struct result r = { .mem_peak = -1 };
	volatile uint64_t *p;
	unsigned long c;
	double t0;
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		exit(1);
	p = upage_mmap(NULL, SIZE, map_prot(k), MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		fprintf(stderr, "bench: map: %s\n", strerror(errno));
		exit(1);
	}
	if (k != SEQ && (warm_up(p) ||
			 upage_madvise((void *)p, SIZE, MADV_RANDOM) < 0)) {
		fprintf(stderr, "bench: warm-up or madvise failed\n");
		exit(1);
	}
	t0 = now_s();
	r.bad = access_pages(p, k, rmw_done);
	if (k == RMW && upage_msync((void *)p, SIZE, MS_SYNC) < 0) {
		fprintf(stderr, "bench: msync: %s\n", strerror(errno));
		exit(1);
	}
	r.secs = now_s() - t0;
	upage_munmap((void *)p, SIZE);
	c = kernel_cached_pages();
	if (c > *kcached)
		*kcached = c;
	return r;
}

/*
 * A floor's random read, in a process of its own: the same pages in the
 * same order, each one read from the file (O_DIRECT) and copied in by the
 * handler. Nothing is warmed up or evicted: a floor has no
 * budget. Run as "floor KIND PATH"; reports on fd 1.
 */
static int floor_child(char **argv)
{
	struct result r = { .mem_peak = -1 };
	struct uffd_floor f;
	volatile uint64_t *p;
	double t0;
	int fd;

	if (child_start(argv[1]) < 0)
		return 1;
	fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 3;
	p = uffd_floor_start(&f, SIZE, 1, fd,
			     (enum uffd_floor_kind)atoi(argv[0]));
	t0 = now_s();
	r.bad = access_pages(p, RAND, 0);
	r.secs = now_s() - t0;
	if (uffd_floor_stop(&f))
		return 5; /* a read or a copy failed */
	close(fd);
	return write(1, &r, sizeof(r)) == sizeof(r) ? 0 : 6;
}

static struct result run_floor(enum uffd_floor_kind kind)
{
	char k[16];
	char *argv[] = { "bench_evict", "floor", k, path, NULL };

	snprintf(k, sizeof(k), "%d", kind);
	return spawn_run(argv, "a floor's");
}

/* The file and the cgroup go whichever way the bench ends. */
static void cleanup(void)
{
	if (cgroup[0])
		rmdir(cgroup);
	if (path[0])
		unlink(path);
}

static void on_signal(int sig)
{
	cleanup(); /* rmdir and unlink only: safe in a handler */
	_exit(128 + sig);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct bcase {
	const char *name;
	enum kind kind;
	unsigned long pages;
};

int main(int argc, char **argv)
{
	static const struct bcase cases[] = {
		{ "sequential read", SEQ, NPAGES },
		{ "random read", RAND, RAND_PAGES },
		{ "read-modify-write", RMW, RAND_PAGES },
	};
	static const char *const args[] = { "--max-resident", BUDGET, NULL };
	const char *only = getenv("UPAGE_BENCH_ONLY"), *rs;
	const char *direct = getenv("UPAGE_BENCH_DIRECT");
	struct upage_status_reply s0, s1;
	double floor_us[UFFD_FLOOR_KINDS] = { 0 },
	       floor_k[UFFD_FLOOR_KINDS] = { 0 }, floor_u = 0;
	bool dropped = true;
	int r;

	if (argc == 5 && !strcmp(argv[1], "kernel"))
		return kernel_child(argv + 2);
	if (argc == 4 && !strcmp(argv[1], "floor"))
		return floor_child(argv + 2);
	rs = getenv("UPAGE_BENCH_RUNS");
	if (rs && atoi(rs) > 0)
		runs = atoi(rs) > RUNS_MAX ? RUNS_MAX : atoi(rs) | 1;
	if (!direct || strcmp(direct, "0"))
		setenv("UPAGED_DIRECT_IO", "1", 1);
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	r = harness_bench_start(&h, args);
	unsetenv("UPAGED_DIRECT_IO");
	if (r)
		return r;
	/* cleanup() removes what is made, whatever fails. */
	if (make_file() < 0 || make_perm() < 0) {
		fprintf(stderr, "bench: cannot make %s: %s\n", path,
			strerror(errno));
		return 1;
	}
	cgroup_make();
	if (cgroup[0])
		setenv("UPAGE_BENCH_CGROUP", cgroup, 1);

	printf("\n### bench_evict: 2 GiB file, 512 MiB of memory "
	       "(median of %d runs)\n\n", runs);
	printf("upaged: --max-resident %s, reads %s. Kernel: mmap, %s%s. "
	       "Random cases: a cache filled first with the last %lu MiB "
	       "(untimed), then %lu distinct other pages, MADV_RANDOM on both "
	       "sides. "
	       "File: %s.\n\n", BUDGET,
	       direct && !strcmp(direct, "0") ? "buffered" : "with O_DIRECT",
	       cgroup[0] ? "in a memory cgroup limited to 512 MiB" :
	       "NO memory limit: ", cgroup_why, WARM_PAGES * PG >> 20,
	       RAND_PAGES, path);
	printf("| %-17s | %6s | %12s | %12s | %12s | %12s | %13s | "
	       "%11s | %11s | %9s | %11s |\n", "case", "pages",
	       "kernel µs/pg", "kernel pg/s", "upaged µs/pg", "upaged pg/s",
	       "upaged/kernel", "kernel peak", "upaged peak", "refaults",
	       "kernel cache");
	printf("|-------------------|--------|--------------|--------------|"
	       "--------------|--------------|---------------|-------------|"
	       "-------------|-----------|-------------|\n");
	fflush(stdout);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bcase *c = &cases[i];
		double tk[RUNS_MAX], tu[RUNS_MAX], k, u;
		double tf[UFFD_FLOOR_KINDS][RUNS_MAX];
		long long kpeak = 0;
		unsigned long kcached = 0;

		if (only && *only && !strstr(c->name, only))
			continue;
		if (ft_status_of(h.sock, &s0) < 0)
			return 1;
		for (int run = 0; run < runs; run++) {
			struct result rk, ru;

			sync();
			dropped &= drop_caches();
			rk = run_kernel(c->kind);
			rmw_done += c->kind == RMW;
			sync();
			dropped &= drop_caches();
			ru = run_upaged(c->kind, &kcached);
			rmw_done += c->kind == RMW;
			for (int fk = 0;
			     c->kind == RAND && fk < UFFD_FLOOR_KINDS; fk++) {
				struct result rf;

				sync();
				dropped &= drop_caches();
				rf = run_floor((enum uffd_floor_kind)fk);
				if (rf.bad) {
					fprintf(stderr, "bench: %s: %lu words "
						"wrong (floor)\n", c->name,
						rf.bad);
					return 1;
				}
				tf[fk][run] = rf.secs;
			}
			if (rk.bad || ru.bad) {
				fprintf(stderr, "bench: %s: %lu words wrong "
					"(kernel), %lu (upaged)\n", c->name,
					rk.bad, ru.bad);
				return 1;
			}
			tk[run] = rk.secs;
			tu[run] = ru.secs;
			if (rk.mem_peak > kpeak)
				kpeak = rk.mem_peak;
		}
		if (ft_status_of(h.sock, &s1) < 0)
			return 1;
		qsort(tk, runs, sizeof(tk[0]), cmp_double);
		qsort(tu, runs, sizeof(tu[0]), cmp_double);
		k = tk[runs / 2];
		u = tu[runs / 2];
		printf("| %-17s | %5luK | %12.2f | %12.0f | %12.2f | %12.0f | "
		       "%12.2fx | %7lld MiB | %7lu MiB | %9lu | %7lu MiB |\n",
		       c->name, c->pages >> 10, k * 1e6 / c->pages,
		       c->pages / k, u * 1e6 / c->pages, c->pages / u, u / k,
		       kpeak >> 20,
		       (unsigned long)(s1.resident_peak_pages * PG >> 20),
		       (unsigned long)((s1.refaults - s0.refaults) / runs),
		       kcached * PG >> 20);
		for (int fk = 0; c->kind == RAND && fk < UFFD_FLOOR_KINDS;
		     fk++) {
			qsort(tf[fk], runs, sizeof(tf[fk][0]), cmp_double);
			floor_us[fk] = tf[fk][runs / 2] * 1e6 / c->pages;
			floor_k[fk] = tf[fk][runs / 2] / k;
		}
		if (c->kind == RAND) /* the floor of upaged's shape */
			floor_u = u / tf[UFFD_FLOOR_PROCESS][runs / 2];
		fflush(stdout);
	}
	if (floor_u > 0)
		printf("\nuserfaultfd floors, random read (uffd_floor.h: a "
		       "handler preads each page with O_DIRECT and copies it "
		       "in; no budget, nothing evicted): as a thread of the "
		       "reading process %.2f µs per page, %.2fx the kernel's "
		       "time; as a process of its own, polling and copying "
		       "into shared memory as upaged does, %.2f µs per page, "
		       "%.2fx the kernel's; upaged %.2fx the latter's.\n",
		       floor_us[UFFD_FLOOR_THREAD],
		       floor_k[UFFD_FLOOR_THREAD],
		       floor_us[UFFD_FLOOR_PROCESS],
		       floor_k[UFFD_FLOOR_PROCESS], floor_u);
	printf("\nupaged/kernel: time ratio, below 1 is faster than the "
	       "kernel. Peaks: the cgroup's memory.max_usage_in_bytes "
	       "(kernel), the daemon's resident_peak_pages (upaged). "
	       "refaults: per upaged run. kernel cache: the most of the "
	       "file in the kernel's page cache after an upaged run.%s\n",
	       dropped ? "" : " CACHES NOT DROPPED (not root): runs may "
	       "start warm.");
	if (cgroup[0] && rmdir(cgroup) < 0)
		fprintf(stderr, "bench: cannot remove %s: %s\n", cgroup,
			strerror(errno));
	cgroup[0] = '\0';
	free(perm);
	upage_disconnect();
	harness_stop(&h);
	return 0;
}

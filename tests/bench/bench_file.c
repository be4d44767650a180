/*
 * bench_file.c - file-backed first touch, kernel mmap against upaged in
 * the same run: a 1 GiB file, one read of every page, sequential and in a
 * random order (one thread, then two), with the file in the kernel's page
 * cache ("hot") and not ("cold"), and two processes scanning the file at
 * once. Each figure is the median of RUNS runs; the mapping is made before
 * the clock starts and removed after it stops (upaged's page cache goes
 * with the last mapping, so every run starts empty).
 *
 * Cold: as root, `echo 3 > /proc/sys/vm/drop_caches` before each run;
 * otherwise posix_fadvise(DONTNEED) on the file. The output says which.
 * The file lives in $UPAGE_BENCH_DIR (default /var/tmp: a disk, not tmpfs)
 * and is removed at the end. $UPAGE_BENCH_RUNS sets the runs (3),
 * $UPAGE_BENCH_ONLY keeps the cases whose name contains it. Prints a
 * Markdown table.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

#define PG 4096UL
#define SIZE (1UL << 30)
#define NPAGES (SIZE / PG)
#define RUNS_MAX 9

enum { KERNEL, UPAGED };

static char path[256];
static int file_fd = -1;
static uint32_t *perm;
static const char *cold_how;
static struct harness h;
static int runs = 3; /* $UPAGE_BENCH_RUNS, odd, up to RUNS_MAX */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int make_file(void)
{
	file_fd = ft_bench_file(path, sizeof(path), "upaged-bench", SIZE);
	return file_fd < 0 ? -1 : 0;
}

static void make_cold(void)
{
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);

	if (fd >= 0 && write(fd, "3\n", 2) == 2) {
		cold_how = "echo 3 > /proc/sys/vm/drop_caches";
	} else {
		posix_fadvise(file_fd, 0, 0, POSIX_FADV_DONTNEED);
		cold_how = "posix_fadvise(POSIX_FADV_DONTNEED)";
	}
	if (fd >= 0)
		close(fd);
}

static void make_hot(void)
{
	static char buf[1 << 20];

	for (off_t off = 0; off < (off_t)SIZE; off += sizeof(buf))
		if (pread(file_fd, buf, sizeof(buf), off) <= 0)
			break;
}

static volatile unsigned char *map_file(int sys)
{
	void *p;

	if (sys == KERNEL)
		p = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, file_fd, 0);
	else
		p = upage_mmap(NULL, SIZE, PROT_READ, MAP_SHARED, file_fd, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "bench: map: %s\n", strerror(errno));
		exit(1);
	}
	return p;
}

static void unmap_file(int sys, volatile unsigned char *p)
{
	if (sys == KERNEL)
		munmap((void *)p, SIZE);
	else
		upage_munmap((void *)p, SIZE);
}

struct scan {
	volatile unsigned char *p;
	size_t from, to;   /* indices into perm, or pages when !perm */
	bool random;
	unsigned long sum;
};

static void *scan_thread(void *arg)
{
	struct scan *s = arg;
	unsigned long sum = 0;

	for (size_t i = s->from; i < s->to; i++)
		sum += s->p[(s->random ? perm[i] : i) * PG];
	s->sum = sum;
	return NULL;
}

/* Seconds for one run: map, touch every page with nthreads, unmap. */
static double run_threads(int sys, bool hot, bool random, int nthreads)
{
	pthread_t t[2];
	struct scan s[2];
	volatile unsigned char *p;
	double t0, t1;

	if (hot)
		make_hot();
	else
		make_cold();
	p = map_file(sys);
	t0 = now_s();
	for (int i = 0; i < nthreads; i++) {
		s[i] = (struct scan){ .p = p, .random = random,
				      .from = NPAGES * i / nthreads,
				      .to = NPAGES * (i + 1) / nthreads };
		pthread_create(&t[i], NULL, scan_thread, &s[i]);
	}
	for (int i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	t1 = now_s();
	unmap_file(sys, p);
	return t1 - t0;
}

/* Two processes, each its own client, scan the whole file at once. */
static double run_procs(int sys, bool hot)
{
	int go[2], ready[2];
	pid_t pid[2];
	double t0;
	char c;

	if (hot)
		make_hot();
	else
		make_cold();
	if (pipe2(go, O_CLOEXEC) < 0 || pipe2(ready, O_CLOEXEC) < 0)
		exit(1);
	for (int i = 0; i < 2; i++) {
		pid[i] = fork();
		if (pid[i] == 0) {
			struct upage_options o = { .socket_path = h.sock,
						   .arena_size = 4UL << 30 };
			struct scan s = { .from = 0, .to = NPAGES };

			close(go[1]);
			if (sys == UPAGED && upage_connect(&o) < 0)
				_exit(2);
			s.p = map_file(sys);
			if (write(ready[1], "r", 1) != 1 ||
			    read(go[0], &c, 1) < 0)
				_exit(3);
			scan_thread(&s);
			_exit(0);
		}
	}
	close(ready[1]);
	close(go[0]);
	for (int i = 0; i < 2; i++)
		if (read(ready[0], &c, 1) != 1)
			exit(1);
	t0 = now_s();
	close(go[1]);
	for (int i = 0; i < 2; i++)
		waitpid(pid[i], NULL, 0);
	close(ready[0]);
	return now_s() - t0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct bcase {
	const char *name;
	bool hot, random;
	int threads;  /* 0: two processes */
};

static double measure(const struct bcase *c, int sys)
{
	double t[RUNS_MAX];

	for (int r = 0; r < runs; r++)
		t[r] = c->threads ? run_threads(sys, c->hot, c->random, c->threads)
				  : run_procs(sys, c->hot);
	qsort(t, runs, sizeof(t[0]), cmp_double);
	return t[runs / 2];
}

int main(void)
{
	static const struct bcase cases[] = {
		{ "hot, sequential", true, false, 1 },
		{ "hot, random", true, true, 1 },
		{ "hot, random, 2 threads", true, true, 2 },
		{ "hot, 2 processes, sequential", true, false, 0 },
		{ "cold, sequential", false, false, 1 },
		{ "cold, random", false, true, 1 },
		{ "cold, random, 2 threads", false, true, 2 },
		{ "cold, 2 processes, sequential", false, false, 0 },
	};
	const char *only = getenv("UPAGE_BENCH_ONLY"), *rs;
	int r;

	rs = getenv("UPAGE_BENCH_RUNS");
	if (rs && atoi(rs) > 0)
		runs = atoi(rs) > RUNS_MAX ? RUNS_MAX : atoi(rs) | 1;

	r = harness_bench_start(&h, NULL);
	if (r)
		return r;
	if (make_file() < 0) {
		fprintf(stderr, "bench: cannot write %s: %s\n", path,
			strerror(errno));
		unlink(path);
		return 1;
	}
	perm = malloc(NPAGES * sizeof(*perm));
	if (!perm)
		return 1;
	ft_shuffle(perm, NPAGES, 0x9e3779b97f4a7c15ULL);
	make_cold();
	printf("\n### bench_file: 1 GiB file, first touch of every page "
	       "(median of %d runs)\n\n", runs);
	printf("Cold cache: %s. File: %s.\n\n", cold_how, path);
	printf("| %-30s | %10s | %10s | %10s | %10s | %12s |\n", "case",
	       "kernel µs/pg", "kernel MiB/s", "upaged µs/pg", "upaged MiB/s",
	       "upaged/kernel");
	printf("|--------------------------------|--------------|--------------|"
	       "--------------|--------------|---------------|\n");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bcase *c = &cases[i];
		double k, u;

		/* $UPAGE_BENCH_ONLY: the cases whose name contains it. */
		if (only && *only && !strstr(c->name, only))
			continue;
		k = measure(c, KERNEL);
		u = measure(c, UPAGED);
		/* Two processes read the file twice over. */
		double bytes = c->threads ? SIZE : 2.0 * SIZE;

		printf("| %-30s | %12.3f | %12.0f | %12.3f | %12.0f | "
		       "%12.2fx |\n", c->name, k * 1e6 / NPAGES,
		       bytes / k / (1 << 20), u * 1e6 / NPAGES,
		       bytes / u / (1 << 20), u / k);
		fflush(stdout);
	}
	printf("\nupaged/kernel: time ratio, below 1 is faster than the "
	       "kernel. µs/pg: wall time per page of the file.\n");
	close(file_fd);
	unlink(path);
	free(perm);
	upage_disconnect();
	harness_stop(&h);
	return 0;
}

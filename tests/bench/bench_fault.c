/*
 * bench_fault.c - anonymous first-touch fault cost, in one run:
 *   kernel      plain mmap, the kernel's own anonymous fault
 *   in-process  a minimal userfaultfd handler thread in this process
 *               (UFFDIO_COPY of zeroes): the mechanism's floor
 *   upaged      a private daemon ($UPAGED_BIN) through libupage
 * each one page per fault and with a cluster of 16 pages per fault.
 * Sequential write first touch of every page; each touch is timed, and
 * the table gives p50/p99 per touch (µs) and pages/s over the whole range.
 * Prints a Markdown table; exits 77 when userfaultfd is unavailable.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <upage/upage.h>

#include "../upaged_harness.h"
#include "uffd_floor.h"

#define PG 4096UL
#define PAGES 16384UL /* 64 MiB per run */
#define RUNS 5

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct result {
	double p50, p99, pps;
};

static double lat[PAGES];

/* Touches every page of p once, timing each touch. */
static struct result touch(unsigned char *p)
{
	struct result r;
	double t0 = now_us(), t;

	for (size_t i = 0; i < PAGES; i++) {
		t = now_us();
		p[i * PG] = 1;
		lat[i] = now_us() - t;
	}
	t = now_us() - t0;
	qsort(lat, PAGES, sizeof(lat[0]), cmp_double);
	r.p50 = lat[PAGES / 2];
	r.p99 = lat[PAGES * 99 / 100];
	r.pps = PAGES / (t / 1e6);
	return r;
}

static struct result median(struct result *r, int n)
{
	double a[RUNS], b[RUNS], c[RUNS];
	struct result m;

	for (int i = 0; i < n; i++) {
		a[i] = r[i].p50;
		b[i] = r[i].p99;
		c[i] = r[i].pps;
	}
	qsort(a, n, sizeof(double), cmp_double);
	qsort(b, n, sizeof(double), cmp_double);
	qsort(c, n, sizeof(double), cmp_double);
	m.p50 = a[n / 2];
	m.p99 = b[n / 2];
	m.pps = c[n / 2];
	return m;
}

static struct result bench_kernel(void)
{
	struct result r[RUNS];

	for (int i = 0; i < RUNS; i++) {
		unsigned char *p = mmap(NULL, PAGES * PG, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		r[i] = touch(p);
		munmap(p, PAGES * PG);
	}
	return median(r, RUNS);
}

/* The in-process handler (uffd_floor.h), copying zeroes. */
static struct result bench_inproc(unsigned long cluster)
{
	struct result r[RUNS];

	for (int i = 0; i < RUNS; i++) {
		struct uffd_floor f;
		unsigned char *p = uffd_floor_start(&f, PAGES * PG, cluster, -1,
						  UFFD_FLOOR_THREAD);

		r[i] = touch(p);
		uffd_floor_stop(&f);
	}
	return median(r, RUNS);
}

static struct result bench_upaged(const char *cluster)
{
	const char *args[] = { "--cluster", cluster, NULL };
	struct upage_options o = { .arena_size = 1UL << 32 };
	struct result r[RUNS];
	struct harness h;

	if (harness_start_args(&h, args) < 0) {
		fprintf(stderr, "bench: cannot start %s\n", harness_bin());
		exit(1);
	}
	o.socket_path = h.sock;
	if (upage_connect(&o) < 0)
		exit(1);
	for (int i = 0; i < RUNS; i++) {
		unsigned char *p = upage_mmap(NULL, PAGES * PG,
					      PROT_READ | PROT_WRITE,
					      MAP_PRIVATE | MAP_ANONYMOUS, -1,
					      0);
		if (p == MAP_FAILED)
			exit(1);
		r[i] = touch(p);
		upage_munmap(p, PAGES * PG);
	}
	upage_disconnect();
	harness_stop(&h);
	return median(r, RUNS);
}

static void row(const char *name, struct result r, struct result floor)
{
	printf("| %-28s | %8.2f | %8.2f | %12.0f | %6.2fx |\n", name, r.p50,
	       r.p99, r.pps, r.pps / floor.pps);
}

int main(void)
{
	struct result k, ip1, ip16, up1, up16;

	if (access("/dev/userfaultfd", R_OK | W_OK) < 0 && geteuid() != 0)
		return 77;
	k = bench_kernel();
	ip1 = bench_inproc(1);
	ip16 = bench_inproc(16);
	up1 = bench_upaged("1");
	up16 = bench_upaged("16");

	printf("\n### Anonymous first-touch faults, %lu pages sequential, "
	       "median of %d runs\n\n", PAGES, RUNS);
	printf("| %-28s | %8s | %8s | %12s | %7s |\n", "what", "p50 µs",
	       "p99 µs", "pages/s", "vs in-proc 1");
	printf("|------------------------------|----------|----------|"
	       "--------------|---------|\n");
	row("kernel native", k, ip1);
	row("in-process uffd, 1 page", ip1, ip1);
	row("in-process uffd, cluster 16", ip16, ip1);
	row("upaged, 1 page", up1, ip1);
	row("upaged, cluster 16", up16, ip1);
	printf("\nupaged 1-page p50 / in-process p50: %.2f (target <= 1.2)\n",
	       up1.p50 / ip1.p50);
	printf("upaged cluster-16 pages/s / in-process 1-page pages/s: %.1fx "
	       "(target >= 5)\n", up16.pps / ip1.pps);
	return 0;
}

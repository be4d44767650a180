/*
 * bench_vma.c - how the VMA engine scales: lookups, merging maps, splitting
 * unmaps, protection changes and reverse-map queries on an mm of 1 000,
 * 100 000 and 1 000 000 VMAs, and what each VMA costs in memory.
 *
 * The mm is one file mapped privately in 3-page VMAs with a 1-page hole
 * after each and alternating protection, so no two VMAs can merge and the
 * file's reverse map holds every one of them. Each modifying operation is
 * paired with the one that undoes it, so the mm is the same before every
 * round. Each figure is the median of five rounds; printed as Markdown.
 *
 * Two floor rows time the least any lookup structure can do for a random
 * address: a branch-free, prefetching binary search of a sorted array of
 * every vm_end, alone and then reading the VMA it finds, as find_vma's
 * callers do.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "vma.h"

#define BASE 0x10000000UL
#define STRIDE 4 /* pages per VMA slot: 3 mapped, 1 hole */
#define ROUNDS 5
#define NSIZES 3

static const long sizes[NSIZES] = { 1000, 100000, 1000000 };

enum { OP_FIND, OP_FIND_SEQ, OP_MERGE, OP_SPLIT, OP_PROTECT, OP_RMAP,
       OP_FLOOR, OP_FLOOR_VMA, NOPS };

static const char *const op_names[NOPS] = {
	"find_vma, random address",
	"find_vma, ascending addresses (a fault stream)",
	"map a page that merges, unmap it (per call)",
	"unmap a page mid-VMA (split), map it back (per call)",
	"mprotect a page mid-VMA and back (per call)",
	"rmap query, random 4-page range",
	"floor: binary search of a sorted vm_end array, random address",
	"floor: the same, then read the VMA found",
};
static const char *const op_targets[NOPS] = {
	"< 100 ns", "< 100 ns", "< 1 µs at 1M", "< 1 µs at 1M", "< 1 µs at 1M", "",
	"", "",
};

static double results[NOPS][NSIZES];
static double bytes_per_vma[NSIZES];

static struct mm_struct mm;
static struct address_space file;
static uint64_t rng_state = 0x853c49e6748fea9bULL;

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}

static void die(const char *what, long ret)
{
	fprintf(stderr, "bench_vma: %s failed: %ld\n", what, ret);
	exit(1);
}

/* Protection of slot i: alternating, so neighbours never merge. */
static int slot_prot(long i)
{
	return i & 1 ? PROT_READ | PROT_WRITE : PROT_READ;
}

static unsigned long slot_addr(long i)
{
	return BASE + (unsigned long)i * STRIDE * PAGE_SIZE;
}

/* Maps npages of the file at page `page` of slot i, where they belong. */
static long map_file(long i, unsigned long page, unsigned long npages)
{
	struct mmap_req req = {
		.addr = slot_addr(i) + page * PAGE_SIZE,
		.len = npages * PAGE_SIZE,
		.prot = slot_prot(i),
		.flags = MAP_PRIVATE | MAP_FIXED,
		.pgoff = (unsigned long)i * STRIDE + page,
		.obj = &file,
		.fmode = MAP_FMODE_READ | MAP_FMODE_WRITE | MAP_FMODE_EXEC,
	};

	return do_mmap(&mm, &req, NULL);
}

static void build(long n)
{
	mm_init(&mm, BASE, slot_addr(n + 16));
	for (long i = 0; i < n; i++) {
		long ret = map_file(i, 0, STRIDE - 1);

		if (ret < 0)
			die("building the mm", ret);
	}
	if (mm.map_count != n)
		die("building: wrong map_count", mm.map_count);
}

/* Random slot indices, drawn before the clock starts. */
static long *random_slots(long n, long count)
{
	long *v = malloc(count * sizeof(*v));

	if (!v)
		die("malloc", -ENOMEM);
	for (long k = 0; k < count; k++)
		v[k] = (long)(rng() % (uint64_t)n);
	return v;
}

static volatile unsigned long sink;

/* The floor rows' sorted arrays: every VMA's end, and the VMA. */
static unsigned long *floor_ends;
static struct vm_area_struct **floor_vmas;

static void floor_build(long n)
{
	struct vm_area_struct *vma;
	long i = 0;

	floor_ends = malloc(n * sizeof(*floor_ends));
	floor_vmas = malloc(n * sizeof(*floor_vmas));
	if (!floor_ends || !floor_vmas)
		die("malloc", -ENOMEM);
	for_each_vma(&mm, vma) {
		floor_ends[i] = vma->vm_end;
		floor_vmas[i++] = vma;
	}
}

/*
 * Index of the first end above addr (addr below the last end). No branch
 * on the keys, and both places the next step may look are fetched while
 * this one compares: the fastest plain search measured here (a branchy one
 * takes a third longer at a million keys).
 */
static long floor_search(long n, unsigned long addr)
{
	const unsigned long *base = floor_ends;

	while (n > 1) {
		long half = n / 2;

		if (half > 1) {
			__builtin_prefetch(base + half / 2 - 1);
			__builtin_prefetch(base + half + half / 2 - 1);
		}
		base += (long)(base[half - 1] <= addr) * half;
		n -= half;
	}
	return base - floor_ends;
}

/* Returns ns per call for one round of `count` iterations of op. */
static double round_ns(int op, long n, const long *slot, long count)
{
	unsigned long acc = 0;
	double t0 = now_ns(), t;
	int calls = 1;
	long ret;

	switch (op) {
	case OP_FIND:
		for (long k = 0; k < count; k++) {
			unsigned long addr = slot_addr(slot[k]) +
					     (unsigned long)(k % 3) * PAGE_SIZE;

			acc += find_vma(&mm, addr)->vm_start;
		}
		break;
	case OP_FIND_SEQ:
		/* Page after page, holes included, as faults on a scan come. */
		for (long k = 0; k < count; k++) {
			unsigned long page = (unsigned long)k %
					     ((unsigned long)n * STRIDE);
			struct vm_area_struct *vma;

			vma = find_vma(&mm, BASE + page * PAGE_SIZE);
			acc += vma ? vma->vm_start : 0;
		}
		break;
	case OP_MERGE:
		calls = 2;
		for (long k = 0; k < count; k++) {
			/* The hole after slot i: same prot as i, not as i+1. */
			ret = map_file(slot[k], STRIDE - 1, 1);
			ret |= do_munmap(&mm, slot_addr(slot[k]) +
					      (STRIDE - 1) * PAGE_SIZE,
					 PAGE_SIZE);
			if (ret < 0)
				die("merge round", ret);
		}
		break;
	case OP_SPLIT:
		calls = 2;
		for (long k = 0; k < count; k++) {
			ret = do_munmap(&mm, slot_addr(slot[k]) + PAGE_SIZE,
					PAGE_SIZE);
			ret |= map_file(slot[k], 1, 1);
			if (ret < 0)
				die("split round", ret);
		}
		break;
	case OP_PROTECT:
		calls = 2;
		for (long k = 0; k < count; k++) {
			unsigned long a = slot_addr(slot[k]) + PAGE_SIZE;

			ret = do_mprotect(&mm, a, PAGE_SIZE, PROT_NONE);
			ret |= do_mprotect(&mm, a, PAGE_SIZE,
					   slot_prot(slot[k]));
			if (ret < 0)
				die("protect round", ret);
		}
		break;
	case OP_RMAP:
		for (long k = 0; k < count; k++) {
			unsigned long first = (unsigned long)slot[k] * STRIDE +
					      (unsigned long)(k & 3);
			struct vm_area_struct *vma;

			rmap_for_each(vma, &file, first, first + 3)
				acc += vma->vm_start;
		}
		break;
	case OP_FLOOR:
	case OP_FLOOR_VMA:
		for (long k = 0; k < count; k++) {
			unsigned long addr = slot_addr(slot[k]) +
					     (unsigned long)(k % 3) * PAGE_SIZE;
			long i = floor_search(n, addr);

			acc += op == OP_FLOOR ? (unsigned long)i
					      : floor_vmas[i]->vm_start;
		}
		break;
	}
	t = now_ns() - t0;
	sink += acc;
	if (mm.map_count != n)
		die("round changed map_count", mm.map_count);
	return t / (double)(count * calls);
}

static void bench_size(int s)
{
	static const long counts[NOPS] = { 500000, 500000, 50000, 50000,
					   50000, 200000, 500000, 500000 };
	long n = sizes[s];
	double t0 = now_ns();

	build(n);
	fprintf(stderr, "%ld VMAs built in %.2f s\n", n,
		(now_ns() - t0) / 1e9);
	bytes_per_vma[s] = (double)vma_slab_bytes() / mm.map_count;
	for (int op = 0; op < NOPS; op++) {
		long *slot = random_slots(n, counts[op]);
		double v[ROUNDS];

		if (op == OP_FLOOR) /* from the VMAs as the rounds left them */
			floor_build(n);
		for (int r = 0; r < ROUNDS; r++)
			v[r] = round_ns(op, n, slot, counts[op]);
		results[op][s] = median(v, ROUNDS);
		free(slot);
	}
	if (validate_mm(&mm) || validate_rmap(&file))
		die("validation after the rounds", -1);
	free(floor_ends);
	free(floor_vmas);
	exit_mmap(&mm);
}

static void print_cell_ns(double ns)
{
	if (ns >= 1000)
		printf(" %.2f µs |", ns / 1000);
	else
		printf(" %.0f ns |", ns);
}

int main(void)
{
	double t0 = now_ns();

	address_space_init(&file, makedev(8, 1), 1);
	for (int s = 0; s < NSIZES; s++)
		bench_size(s);

	printf("\n### VMA engine (median of %d rounds, ns per call)\n\n",
	       ROUNDS);
	printf("| operation | 1 000 VMAs | 100 000 VMAs | 1 000 000 VMAs "
	       "| target |\n");
	printf("| --- | ---: | ---: | ---: | --- |\n");
	for (int op = 0; op < NOPS; op++) {
		printf("| %s |", op_names[op]);
		for (int s = 0; s < NSIZES; s++)
			print_cell_ns(results[op][s]);
		printf(" %s |\n", op_targets[op]);
	}
	printf("| bytes per VMA (slab / map_count) |");
	for (int s = 0; s < NSIZES; s++)
		printf(" %.1f |", bytes_per_vma[s]);
	printf(" <= 128 |\n");
	printf("| sizeof(struct vm_area_struct) | %zu | %zu | %zu | <= 128 |\n",
	       sizeof(struct vm_area_struct), sizeof(struct vm_area_struct),
	       sizeof(struct vm_area_struct));
	printf("\nEvery VMA maps the same file, so the reverse map holds all of "
	       "them; total %.1f s.\n", (now_ns() - t0) / 1e9);
	return 0;
}

/*
 * test_vma_random.c - randomized differential test of the VMA engine.
 *
 * Thousands of random mmap/munmap/mprotect/madvise/mremap calls, forks and
 * exits run on two mms and, in parallel, on a page-by-page model that knows
 * nothing about VMAs: per page only whether it is mapped, its flags, ops,
 * object and offset. After every step the engine must hold exactly the
 * model's canonical form (maximal runs of pages that could be one VMA), the
 * reverse map must answer range queries as the model does, every validator
 * must pass and open/close must balance. Errors must be the ones the model
 * predicts, and a failed call must change nothing. A second test drives one
 * mm to tens of thousands of VMAs, so that the index is deep (see below).
 *
 * Fixed seeds by default. To replay or dig deeper:
 *   UPAGED_SEED=N [UPAGED_ITERATIONS=M] build/tests/test_vma_random
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>

#include <cmocka.h>

#include "vma.h"

#define NPAGES 256
#define BASE 0x10000000UL
#define TOP (BASE + NPAGES * PAGE_SIZE)
#define PG(n) (BASE + (unsigned long)(n) * PAGE_SIZE)
#define NP(n) ((unsigned long)(n) * PAGE_SIZE)
#define NMM 2
#define NOBJ 3
#define NOPS 3
#define MAX_PGOFF 96

#define DEFAULT_ITERATIONS 10000

/* ---- random numbers (xorshift64*, seeded through splitmix64) ---- */

static uint64_t rng_state;

static void rng_seed(uint64_t seed)
{
	uint64_t z = seed + 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	rng_state = (z ^ (z >> 31)) | 1;
}

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

/* Uniform in [0, n). */
static unsigned long rnd(unsigned long n)
{
	return n ? rng() % n : 0;
}

/* True with probability pct percent. */
static bool chance(unsigned int pct)
{
	return rnd(100) < pct;
}

/* ---- the engine side ---- */

static long opens, closes;

static void count_open(struct vm_area_struct *vma)
{
	(void)vma;
	opens++;
}

static void count_close(struct vm_area_struct *vma)
{
	(void)vma;
	closes++;
}

static const struct vm_operations_struct ops_a = {
	.name = "a", .open = count_open, .close = count_close,
};
static const struct vm_operations_struct ops_b = {
	.name = "b", .open = count_open, .close = count_close,
};
/* Index 0: no ops at all, which is legal too. */
static const struct vm_operations_struct *const ops_table[NOPS] = {
	NULL, &ops_a, &ops_b,
};

static struct mm_struct mms[NMM];
static struct address_space objs[NOBJ];

/* ---- the model ---- */

struct page {
	bool mapped;
	signed char obj; /* -1: anonymous private */
	unsigned char ops;
	unsigned int flags;
	unsigned long pgoff; /* 0 for anonymous pages */
};

struct model_mm {
	struct page p[NPAGES];
};

static struct model_mm model[NMM];

/* A maximal run of pages that the engine must hold as one VMA. */
struct run {
	int mm;
	unsigned long start, end; /* pages */
};

/* Could page i+1 continue the VMA that holds page i? */
static bool pages_join(const struct page *a, const struct page *b)
{
	if (!a->mapped || !b->mapped || a->flags != b->flags ||
	    a->ops != b->ops || a->obj != b->obj)
		return false;
	return a->obj < 0 || b->pgoff == a->pgoff + 1;
}

static int model_runs(int m, struct run *runs)
{
	const struct page *p = model[m].p;
	int n = 0;

	for (unsigned long i = 0; i < NPAGES; i++) {
		if (!p[i].mapped)
			continue;
		if (n && runs[n - 1].end == i && pages_join(&p[i - 1], &p[i])) {
			runs[n - 1].end = i + 1;
			continue;
		}
		runs[n++] = (struct run){ m, i, i + 1 };
	}
	return n;
}

/* The run containing page i of mm m (which must be mapped). */
static struct run run_at(int m, unsigned long i)
{
	const struct page *p = model[m].p;
	struct run r = { m, i, i + 1 };

	while (r.start > 0 && pages_join(&p[r.start - 1], &p[r.start]))
		r.start--;
	while (r.end < NPAGES && pages_join(&p[r.end - 1], &p[r.end]))
		r.end++;
	return r;
}

static bool range_free(int m, unsigned long first, unsigned long n)
{
	if (first + n > NPAGES)
		return false;
	for (unsigned long i = first; i < first + n; i++)
		if (model[m].p[i].mapped)
			return false;
	return true;
}

/* get_unmapped_area() on the model, in pages: the hint, else top-down. */
static long model_gua(int m, unsigned long hint, unsigned long n)
{
	unsigned long free = 0;

	if (n == 0)
		return -EINVAL;
	if (n > NPAGES)
		return -ENOMEM;
	if (hint) {
		hint = PAGE_ALIGN(hint);
		if (hint >= BASE && hint < TOP &&
		    range_free(m, (hint - BASE) >> PAGE_SHIFT, n))
			return (long)((hint - BASE) >> PAGE_SHIFT);
	}
	for (long i = NPAGES - 1; i >= 0; i--) {
		free = model[m].p[i].mapped ? 0 : free + 1;
		if (free == n)
			return i;
	}
	return -ENOMEM;
}

static void model_set(int m, unsigned long first, unsigned long n,
		      const struct page *proto)
{
	for (unsigned long i = 0; i < n; i++) {
		struct page *p = &model[m].p[first + i];

		*p = *proto;
		p->pgoff = proto->obj < 0 ? 0 : proto->pgoff + i;
	}
}

static void model_clear(int m, unsigned long first, unsigned long n)
{
	memset(&model[m].p[first], 0, n * sizeof(struct page));
}

/* ---- reporting ---- */

static uint64_t cur_seed;
static long cur_step;
static char cur_op[256];

static void describe(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cur_op, sizeof(cur_op), fmt, ap);
	va_end(ap);
}

static void dump_state(void)
{
	struct run runs[NPAGES];
	struct vm_area_struct *vma;

	for (int m = 0; m < NMM; m++) {
		int n = model_runs(m, runs);

		fprintf(stderr, "mm%d model:", m);
		for (int i = 0; i < n; i++) {
			const struct page *p = &model[m].p[runs[i].start];

			fprintf(stderr, " [%lu,%lu)f%#x o%d@%lu ops%d",
				runs[i].start, runs[i].end, p->flags, p->obj,
				p->pgoff, p->ops);
		}
		fprintf(stderr, "\nmm%d engine:", m);
		for_each_vma(&mms[m], vma)
			fprintf(stderr, " [%lu,%lu)f%#x o%d@%lu",
				(vma->vm_start - BASE) >> PAGE_SHIFT,
				(vma->vm_end - BASE) >> PAGE_SHIFT,
				vma->vm_flags,
				vma->vm_file ? (int)(vma->vm_file - objs) : -1,
				vma->vm_pgoff);
		fprintf(stderr, "\n");
	}
}

#define CHECK(cond, ...)                                                    \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "seed %" PRIu64 " step %ld: %s\n  ", \
				cur_seed, cur_step, cur_op);                \
			fprintf(stderr, __VA_ARGS__);                       \
			fprintf(stderr, "\n  replay: UPAGED_SEED=%" PRIu64  \
				" UPAGED_ITERATIONS=%ld "                   \
				"build/tests/test_vma_random\n",           \
				cur_seed, cur_step + 1);                    \
			dump_state();                                       \
			fail();                                             \
		}                                                           \
	} while (0)

/* ---- comparing engine and model ---- */

static void check_layout(int m)
{
	struct run runs[NPAGES];
	struct vm_area_struct *vma;
	unsigned long pages = 0;
	int n = model_runs(m, runs), i = 0;

	for_each_vma(&mms[m], vma) {
		const struct page *p;

		CHECK(i < n, "mm%d: engine has more than %d VMAs", m, n);
		p = &model[m].p[runs[i].start];
		CHECK(vma->vm_start == PG(runs[i].start) &&
			      vma->vm_end == PG(runs[i].end),
		      "mm%d: VMA %d is [%lu,%lu), model [%lu,%lu)", m, i,
		      (vma->vm_start - BASE) >> PAGE_SHIFT,
		      (vma->vm_end - BASE) >> PAGE_SHIFT, runs[i].start,
		      runs[i].end);
		CHECK(vma->vm_flags == p->flags,
		      "mm%d: VMA %d flags %#x, model %#x", m, i, vma->vm_flags,
		      p->flags);
		CHECK(vma->vm_ops == ops_table[p->ops], "mm%d: VMA %d ops", m,
		      i);
		CHECK(vma->vm_file == (p->obj < 0 ? NULL : &objs[p->obj]),
		      "mm%d: VMA %d backing object", m, i);
		CHECK(p->obj < 0 || vma->vm_pgoff == p->pgoff,
		      "mm%d: VMA %d pgoff %lu, model %lu", m, i, vma->vm_pgoff,
		      p->pgoff);
		CHECK(vma->vm_mm == &mms[m], "mm%d: VMA %d vm_mm", m, i);
		pages += runs[i].end - runs[i].start;
		i++;
	}
	CHECK(i == n, "mm%d: engine has %d VMAs, model %d", m, i, n);
	CHECK(mms[m].map_count == n, "mm%d: map_count %d, model %d", m,
	      mms[m].map_count, n);
	CHECK(mms[m].total_vm == pages, "mm%d: total_vm %lu, model %lu", m,
	      mms[m].total_vm, pages);
}

/* One reverse-map query against every run of every mm. */
static void check_rmap_query(int o, unsigned long first, unsigned long last)
{
	struct run want[NMM * NPAGES];
	bool seen[NMM * NPAGES] = { false };
	struct vm_area_struct *vma;
	int nwant = 0, found = 0;

	for (int m = 0; m < NMM; m++) {
		struct run runs[NPAGES];
		int n = model_runs(m, runs);

		for (int i = 0; i < n; i++) {
			const struct page *p = &model[m].p[runs[i].start];
			unsigned long plast =
				p->pgoff + (runs[i].end - runs[i].start) - 1;

			if (p->obj == o && p->pgoff <= last && plast >= first)
				want[nwant++] = runs[i];
		}
	}
	rmap_for_each(vma, &objs[o], first, last) {
		int i;

		for (i = 0; i < nwant; i++)
			if (!seen[i] && vma->vm_mm == &mms[want[i].mm] &&
			    vma->vm_start == PG(want[i].start) &&
			    vma->vm_end == PG(want[i].end))
				break;
		CHECK(i < nwant,
		      "rmap obj%d [%lu,%lu]: unexpected VMA [%lu,%lu) pgoff %lu",
		      o, first, last, (vma->vm_start - BASE) >> PAGE_SHIFT,
		      (vma->vm_end - BASE) >> PAGE_SHIFT, vma->vm_pgoff);
		seen[i] = true;
		found++;
	}
	CHECK(found == nwant, "rmap obj%d [%lu,%lu]: %d VMAs, model %d", o,
	      first, last, found, nwant);
}

static void check_all(void)
{
	struct vm_area_struct *vma;
	long live = 0;

	for (int m = 0; m < NMM; m++) {
		CHECK(validate_mm(&mms[m]) == 0, "validate_mm(mm%d) failed", m);
		check_layout(m);
		for_each_vma(&mms[m], vma)
			live += vma->vm_ops != NULL;
	}
	CHECK(opens - closes == live, "opens %ld - closes %ld != %ld VMAs",
	      opens, closes, live);
	for (int o = 0; o < NOBJ; o++) {
		unsigned long count = 0;
		struct run runs[NPAGES];

		CHECK(validate_rmap(&objs[o]) == 0, "validate_rmap(obj%d)", o);
		for (int m = 0; m < NMM; m++) {
			int n = model_runs(m, runs);

			for (int i = 0; i < n; i++)
				count += model[m].p[runs[i].start].obj == o;
		}
		CHECK(objs[o].i_mmap_count == count,
		      "obj%d: i_mmap_count %lu, model %lu", o,
		      objs[o].i_mmap_count, count);
		for (int q = 0; q < 3; q++) {
			unsigned long first = rnd(MAX_PGOFF + 40);
			unsigned long last = first + rnd(24);

			check_rmap_query(o, first, last);
		}
		check_rmap_query(o, 0, ~0UL);
	}
	/* find_vma at a random address: the first run ending above it. */
	{
		int m = (int)rnd(NMM);
		unsigned long addr = BASE - PAGE_SIZE + rnd(NP(NPAGES + 2));
		struct run runs[NPAGES];
		int n = model_runs(m, runs), i;

		for (i = 0; i < n; i++)
			if (PG(runs[i].end) > addr)
				break;
		vma = find_vma(&mms[m], addr);
		CHECK(i == n ? vma == NULL
			     : vma && vma->vm_start == PG(runs[i].start),
		      "find_vma(mm%d, %#lx)", m, addr);
	}
}

/* Calls that succeeded and failed, to show what a seed exercised. */
static long n_ok, n_err, max_vmas;

/* The result must be what the model predicted. */
static void check_ret(long got, long want)
{
	CHECK(got == want, "returned %ld, model expects %ld", got, want);
	if (got < 0)
		n_err++;
	else
		n_ok++;
}

/* ---- operations ---- */

static unsigned int prot_bits(int prot)
{
	return (prot & PROT_READ ? VM_READ : 0) |
	       (prot & PROT_WRITE ? VM_WRITE : 0) |
	       (prot & PROT_EXEC ? VM_EXEC : 0);
}

static int random_prot(void)
{
	return (int)rnd(8); /* any mix of READ, WRITE, EXEC */
}

/* Extra flags callers pass: mostly none, so that neighbours merge. */
static unsigned int random_extra_flags(void)
{
	static const unsigned int extra[] = { VM_DONTCOPY, VM_LOCKED,
					      VM_DONTDUMP, VM_SEQ_READ };

	return chance(15) ? extra[rnd(4)] : 0;
}

static unsigned long random_len_pages(void)
{
	return chance(85) ? 1 + rnd(12) : 1 + rnd(64);
}

static void op_mmap(int m)
{
	struct mmap_req req = { 0 };
	struct page proto = { .mapped = true };
	unsigned long n = random_len_pages(), first;
	int kind = (int)rnd(3), defect = chance(10) ? 1 + (int)rnd(6) : 0;
	int place = (int)rnd(100);
	long want, got, at;

	req.len = NP(n);
	req.prot = random_prot();
	req.vm_flags = random_extra_flags();
	proto.ops = (unsigned char)(chance(80) ? 1 : rnd(NOPS));
	req.ops = ops_table[proto.ops];
	first = rnd(NPAGES);
	if (kind == 0) {
		req.flags = MAP_PRIVATE | MAP_ANONYMOUS;
		proto.obj = -1;
	} else {
		req.flags = kind == 1 ? MAP_SHARED : MAP_PRIVATE;
		proto.obj = (signed char)rnd(NOBJ);
		req.obj = &objs[proto.obj];
		req.fmode = MAP_FMODE_READ | MAP_FMODE_EXEC |
			    (chance(80) ? MAP_FMODE_WRITE : 0);
		req.pgoff = rnd(MAX_PGOFF);
		/* Often continue the object where the page below maps it. */
		if (first > 0 && chance(50) &&
		    model[m].p[first - 1].mapped &&
		    model[m].p[first - 1].obj == proto.obj)
			req.pgoff = model[m].p[first - 1].pgoff + 1;
	}
	/* Placement: fixed, fixed-noreplace, a hint, or anywhere. */
	if (place < 50 || defect) {
		req.flags |= MAP_FIXED;
		if (first + n > NPAGES)
			n = NPAGES - first;
		req.len = NP(n);
		req.addr = PG(first);
	} else if (place < 60) {
		req.flags |= MAP_FIXED_NOREPLACE;
		if (first + n > NPAGES)
			n = NPAGES - first;
		req.len = NP(n);
		req.addr = PG(first);
	} else if (place < 80) {
		req.addr = PG(first);
	}
	/* At most one defect per call, so the expected errno is unambiguous. */
	switch (defect) {
	case 1:
		req.len = 0;
		break;
	case 2:
		req.addr += 1 + rnd(PAGE_SIZE - 1);
		break;
	case 3:
		req.flags &= ~(MAP_SHARED | MAP_PRIVATE);
		break;
	case 4:
		if (req.obj)
			req.fmode &= ~MAP_FMODE_READ;
		else
			req.flags = (req.flags & ~MAP_PRIVATE) | MAP_SHARED;
		break;
	case 5:
		if (req.obj)
			req.fmode &= ~MAP_FMODE_EXEC;
		break;
	case 6:
		if (req.obj && (req.flags & MAP_SHARED))
			req.fmode &= ~MAP_FMODE_WRITE;
		break;
	}
	describe("mm%d mmap addr %#lx len %#lx prot %d flags %#x obj %d "
		 "pgoff %lu fmode %u vm_flags %#x ops %d",
		 m, req.addr, req.len, req.prot, req.flags, proto.obj,
		 req.pgoff, req.fmode, req.vm_flags, proto.ops);

	/* The model's verdict, then its flags. */
	proto.flags = prot_bits(req.prot) | VM_MAY_FLAGS | req.vm_flags;
	if (req.obj && !(req.fmode & MAP_FMODE_EXEC))
		proto.flags &= ~VM_MAYEXEC;
	if (req.flags & MAP_SHARED) {
		proto.flags |= VM_SHARED | VM_MAYSHARE;
		if (req.obj && !(req.fmode & MAP_FMODE_WRITE))
			proto.flags &= ~(VM_MAYWRITE | VM_SHARED);
	}
	proto.pgoff = req.obj ? req.pgoff : 0;
	if (req.len == 0 || ((req.flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) &&
			     !PAGE_ALIGNED(req.addr)))
		want = -EINVAL;
	else if (!(req.flags & (MAP_SHARED | MAP_PRIVATE)))
		want = -EINVAL;
	else if (!req.obj && (req.flags & MAP_SHARED))
		want = -EINVAL;
	else if (req.obj && !(req.fmode & MAP_FMODE_READ))
		want = -EACCES;
	else if (req.obj && !(req.fmode & MAP_FMODE_EXEC) &&
		 (req.prot & PROT_EXEC))
		want = -EPERM;
	else if (req.obj && (req.flags & MAP_SHARED) &&
		 (req.prot & PROT_WRITE) && !(req.fmode & MAP_FMODE_WRITE))
		want = -EACCES;
	else if (req.flags & MAP_FIXED)
		want = (long)first;
	else if (req.flags & MAP_FIXED_NOREPLACE)
		want = range_free(m, first, n) ? (long)first : -EEXIST;
	else
		want = model_gua(m, req.addr, n);

	got = do_mmap(&mms[m], &req, NULL);
	if (want >= 0) {
		at = (long)((got - (long)BASE) >> PAGE_SHIFT);
		CHECK(got >= (long)BASE && got + (long)req.len <= (long)TOP &&
			      PAGE_ALIGNED((unsigned long)got),
		      "do_mmap returned %#lx, outside the arena", got);
		if (!(req.flags & MAP_FIXED))
			CHECK(range_free(m, (unsigned long)at, n),
			      "do_mmap chose %#lx, which is not free", got);
		check_ret(got, (long)PG(want));
		model_set(m, (unsigned long)want, n, &proto);
	} else {
		check_ret(got, want);
	}
}

static void op_munmap(int m)
{
	unsigned long first = rnd(NPAGES), n = random_len_pages();
	unsigned long start = PG(first), len = NP(n);
	long want = 0;

	if (chance(3)) {
		len = 0;
		want = -EINVAL;
	} else if (chance(3)) {
		start += 1 + rnd(PAGE_SIZE - 1);
		want = -EINVAL;
	} else if (chance(20)) {
		len -= rnd(PAGE_SIZE); /* rounds up to the same pages */
	}
	if (want == 0 && first + n > NPAGES)
		want = -EINVAL; /* runs past the arena */
	describe("mm%d munmap %#lx len %#lx", m, start, len);
	check_ret(do_munmap(&mms[m], start, len), want);
	if (want == 0)
		model_clear(m, first, n);
}

static void op_mprotect(int m)
{
	unsigned long first = rnd(NPAGES), n = 1 + rnd(16);
	int prot = random_prot();
	unsigned int bits = prot_bits(prot);
	long want = 0;

	if (first + n > NPAGES)
		n = NPAGES - first;
	describe("mm%d mprotect %#lx len %#lx prot %d", m, PG(first), NP(n),
		 prot);
	/*
	 * Like the kernel, the first problem in address order wins: a hole
	 * is -ENOMEM, a page whose VMA forbids the protection -EACCES.
	 */
	for (unsigned long i = first; i < first + n && !want; i++)
		if (!model[m].p[i].mapped)
			want = -ENOMEM;
		else if (bits & ~(model[m].p[i].flags >> 4) & VM_ACCESS_FLAGS)
			want = -EACCES;
	check_ret(do_mprotect(&mms[m], PG(first), NP(n), prot), want);
	if (want == 0)
		for (unsigned long i = first; i < first + n; i++)
			model[m].p[i].flags =
				(model[m].p[i].flags & ~VM_ACCESS_FLAGS) | bits;
}

static void op_madvise(int m)
{
	static const struct {
		int advice;
		unsigned int clear, set;
	} advice[] = {
		{ MADV_NORMAL, VM_SEQ_READ | VM_RAND_READ, 0 },
		{ MADV_SEQUENTIAL, VM_RAND_READ, VM_SEQ_READ },
		{ MADV_RANDOM, VM_SEQ_READ, VM_RAND_READ },
		{ MADV_DONTFORK, 0, VM_DONTCOPY },
		{ MADV_DOFORK, VM_DONTCOPY, 0 },
		{ MADV_DONTDUMP, 0, VM_DONTDUMP },
		{ MADV_DODUMP, VM_DONTDUMP, 0 },
		{ MADV_WILLNEED, 0, 0 },
	};
	unsigned long first = rnd(NPAGES), n = 1 + rnd(20);
	int a = (int)rnd(sizeof(advice) / sizeof(advice[0]));
	long want = 0;

	if (first + n > NPAGES)
		n = NPAGES - first;
	describe("mm%d madvise %#lx len %#lx advice %d", m, PG(first), NP(n),
		 advice[a].advice);
	/* Applied to what is mapped; a hole is reported afterwards. */
	for (unsigned long i = first; i < first + n; i++) {
		struct page *p = &model[m].p[i];

		if (!p->mapped) {
			want = -ENOMEM;
			continue;
		}
		p->flags = (p->flags & ~advice[a].clear) | advice[a].set;
	}
	check_ret(do_madvise(&mms[m], PG(first), NP(n), advice[a].advice),
		  want);
}

/* The pages [old, old + old_n) copied to [dst, dst + new_n). */
static void model_move(int m, unsigned long old, unsigned long old_n,
		       unsigned long dst, unsigned long new_n, bool dontunmap)
{
	struct page proto = model[m].p[old];

	model_set(m, dst, new_n, &proto);
	if (!dontunmap)
		model_clear(m, old, old_n);
}

static void op_mremap(int m)
{
	unsigned long old = rnd(NPAGES), old_n = 1 + rnd(12);
	unsigned long new_n = chance(50) ? old_n + rnd(12) : 1 + rnd(old_n);
	unsigned long dst = 0, new_addr = 0;
	int kind = (int)rnd(100), flags;
	struct run r;
	long want, got;

	/* Usually start inside a VMA, so that the call can succeed. */
	if (chance(80)) {
		unsigned long tries = 0;

		while (!model[m].p[old].mapped && tries++ < NPAGES)
			old = (old + 1) % NPAGES;
		if (model[m].p[old].mapped) {
			r = run_at(m, old);
			if (chance(70) && old + old_n > r.end)
				old_n = r.end - old;
		}
	}
	if (old + old_n > NPAGES)
		old_n = NPAGES - old;
	if (kind < 25) {
		flags = 0;
	} else if (kind < 55) {
		flags = MREMAP_MAYMOVE;
	} else if (kind < 85) {
		flags = MREMAP_MAYMOVE | MREMAP_FIXED;
		if (chance(30)) {
			flags |= MREMAP_DONTUNMAP;
			new_n = old_n;
		}
		dst = rnd(NPAGES - new_n + 1);
		new_addr = PG(dst);
	} else {
		flags = MREMAP_MAYMOVE | MREMAP_DONTUNMAP;
		new_n = old_n;
		new_addr = chance(50) ? PG(rnd(NPAGES)) : 0;
	}
	/* The engine keeps VM_LOCKED on a DONTUNMAP source; Linux drops it. */
	if ((flags & MREMAP_DONTUNMAP) && (model[m].p[old].flags & VM_LOCKED))
		flags &= ~MREMAP_DONTUNMAP;
	describe("mm%d mremap %#lx len %#lx -> len %#lx flags %d new %#lx", m,
		 PG(old), NP(old_n), NP(new_n), flags, new_addr);

	if ((flags & MREMAP_FIXED) && dst < old + old_n && old < dst + new_n) {
		want = -EINVAL;
		goto call;
	}
	if (!model[m].p[old].mapped) {
		want = -EFAULT;
		goto call;
	}
	r = run_at(m, old);
	if (old + old_n > r.end) {
		want = -EFAULT;
		goto call;
	}
	if (flags & MREMAP_FIXED) {
		want = (long)dst;
	} else if (flags & MREMAP_DONTUNMAP) {
		want = model_gua(m, new_addr, new_n);
		dst = (unsigned long)want;
	} else if (new_n <= old_n) {
		want = (long)old;
	} else if (old + old_n == r.end &&
		   range_free(m, r.end, old + new_n - r.end)) {
		want = (long)old; /* grows in place */
	} else if (!(flags & MREMAP_MAYMOVE)) {
		want = -ENOMEM;
	} else {
		want = model_gua(m, 0, new_n);
		dst = (unsigned long)want;
	}
call:
	got = do_mremap(&mms[m], PG(old), NP(old_n), NP(new_n), flags,
			new_addr);
	if (want < 0) {
		check_ret(got, want);
		return;
	}
	check_ret(got, (long)PG(want));
	if ((unsigned long)want == old && !(flags & MREMAP_FIXED) &&
	    !(flags & MREMAP_DONTUNMAP)) {
		struct page proto = model[m].p[old];

		if (new_n < old_n) {
			model_clear(m, old + new_n, old_n - new_n);
		} else if (new_n > old_n) {
			/* Grown in place: offsets continue from page old. */
			model_set(m, old, new_n, &proto);
		}
		return;
	}
	model_move(m, old, old_n, dst, new_n, flags & MREMAP_DONTUNMAP);
}

static void op_fork_or_exit(void)
{
	if (chance(10)) {
		describe("exit_mmap(mm0)");
		exit_mmap(&mms[0]);
		memset(&model[0], 0, sizeof(model[0]));
		return;
	}
	if (mms[1].map_count || chance(30)) {
		describe("exit_mmap(mm1)");
		exit_mmap(&mms[1]);
		memset(&model[1], 0, sizeof(model[1]));
		return;
	}
	describe("dup_mmap(mm1, mm0)");
	check_ret(dup_mmap(&mms[1], &mms[0]), 0);
	for (unsigned long i = 0; i < NPAGES; i++) {
		struct page p = model[0].p[i];

		if (!p.mapped || (p.flags & VM_DONTCOPY)) {
			memset(&model[1].p[i], 0, sizeof(struct page));
			continue;
		}
		p.flags &= ~(VM_LOCKED | VM_LOCKONFAULT);
		model[1].p[i] = p;
	}
}

/* get_unmapped_area() alone: it must not change anything. */
static void op_gua(int m)
{
	unsigned long n = random_len_pages();
	unsigned long hint = chance(50) ? PG(rnd(NPAGES)) : 0;
	long want, got;

	if (chance(30)) {
		hint = PG(rnd(NPAGES));
		if ((hint - BASE) / PAGE_SIZE + n > NPAGES)
			n = NPAGES - (hint - BASE) / PAGE_SIZE;
		describe("mm%d get_unmapped_area %#lx len %#lx NOREPLACE", m,
			 hint, NP(n));
		want = range_free(m, (hint - BASE) >> PAGE_SHIFT, n)
			       ? (long)hint
			       : -EEXIST;
		check_ret(get_unmapped_area(&mms[m], hint, NP(n),
					    MAP_FIXED_NOREPLACE),
			  want);
		return;
	}
	describe("mm%d get_unmapped_area %#lx len %#lx", m, hint, NP(n));
	want = model_gua(m, hint, n);
	got = get_unmapped_area(&mms[m], hint, NP(n), 0);
	check_ret(got, want < 0 ? want : (long)PG(want));
}

static void run_seed(uint64_t seed, long iterations)
{
	cur_seed = seed;
	rng_seed(seed);
	opens = closes = 0;
	n_ok = n_err = max_vmas = 0;
	memset(model, 0, sizeof(model));
	for (int m = 0; m < NMM; m++)
		mm_init(&mms[m], BASE, TOP);
	for (int o = 0; o < NOBJ; o++)
		address_space_init(&objs[o], makedev(8, 1), 100 + o);

	for (cur_step = 0; cur_step < iterations; cur_step++) {
		int m = chance(75) ? 0 : 1;
		int op = (int)rnd(100);

		if (op < 35)
			op_mmap(m);
		else if (op < 50)
			op_munmap(m);
		else if (op < 65)
			op_mprotect(m);
		else if (op < 75)
			op_madvise(m);
		else if (op < 92)
			op_mremap(m);
		else if (op < 96)
			op_gua(m);
		else
			op_fork_or_exit();
		check_all();
		if (mms[0].map_count > max_vmas)
			max_vmas = mms[0].map_count;
	}
	printf("seed %" PRIu64 ": %ld steps, %ld calls succeeded, %ld failed "
	       "as predicted, up to %ld VMAs\n",
	       seed, iterations, n_ok, n_err, max_vmas);
	describe("final exit_mmap");
	for (int m = 0; m < NMM; m++)
		exit_mmap(&mms[m]);
	CHECK(opens == closes, "after exit: opens %ld closes %ld", opens,
	      closes);
	for (int o = 0; o < NOBJ; o++)
		CHECK(objs[o].i_mmap_count == 0, "obj%d still mapped", o);
}

static long iterations(void)
{
	const char *s = getenv("UPAGED_ITERATIONS");
	long n = s ? strtol(s, NULL, 0) : 0;

	return n > 0 ? n : DEFAULT_ITERATIONS;
}

static void test_random_seed(void **state)
{
	run_seed(*(const uint64_t *)*state, iterations());
}

/* ---- the index at depth ---- */

/*
 * The tests above keep an mm small. Here one mm holds tens of thousands of
 * VMAs, so that the index's leaves and inner nodes split and merge and its
 * root grows and shrinks: 65 536 pages of anonymous memory in three
 * protections, against a model of each page's protection alone (the
 * canonical VMAs are then its maximal runs of equal pages). Random fixed
 * maps, unmaps, mprotects, top-down placements and lookups; lookups and
 * placements are checked at once, the whole list and validate_mm() every
 * few hundred steps; a last phase unmaps everything, down to an empty
 * index.
 */
#define DEEP_PAGES 65536L
#define DEEP_UNMAPPED (-1)
#define DEEP_CHECK_EVERY 500
#define DEEP_STEPS_PER_ITERATION 6

static const int deep_prots[] = {
	PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE,
};
#define DEEP_NPROTS 3

static struct mm_struct deep_mm;
static signed char deep_model[DEEP_PAGES]; /* deep_prots[] index, or
					      DEEP_UNMAPPED */

static long deep_map(long first, long n, int p)
{
	struct mmap_req req = {
		.addr = PG(first),
		.len = (unsigned long)n * PAGE_SIZE,
		.prot = deep_prots[p],
		.flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
	};

	return do_mmap(&deep_mm, &req, NULL);
}

static void deep_set(long first, long n, int v)
{
	memset(&deep_model[first], v, (size_t)n);
}

/* The run of equal pages around page i: [*lo, *hi). */
static void deep_run(long i, long *lo, long *hi)
{
	*lo = i;
	while (*lo > 0 && deep_model[*lo - 1] == deep_model[i])
		(*lo)--;
	*hi = i + 1;
	while (*hi < DEEP_PAGES && deep_model[*hi] == deep_model[i])
		(*hi)++;
}

/* Every VMA, in order, against the model's runs. */
static void deep_check(void)
{
	struct vm_area_struct *vma = mm_first_vma(&deep_mm);
	long i = 0, lo, hi, count = 0;

	assert_int_equal(validate_mm(&deep_mm), 0);
	while (i < DEEP_PAGES) {
		if (deep_model[i] == DEEP_UNMAPPED) {
			i++;
			continue;
		}
		deep_run(i, &lo, &hi);
		assert_non_null(vma);
		assert_int_equal(vma->vm_start, PG(lo));
		assert_int_equal(vma->vm_end, PG(hi));
		assert_int_equal(vma->vm_flags & VM_ACCESS_FLAGS,
				 (deep_prots[deep_model[i]] & PROT_READ ? VM_READ : 0) |
				 (deep_prots[deep_model[i]] & PROT_WRITE ? VM_WRITE : 0));
		vma = vma_next(vma);
		count++;
		i = hi;
	}
	assert_null(vma);
	assert_int_equal(deep_mm.map_count, count);
}

/* find_vma at a random page (and just outside the arena's ends). */
static void deep_lookup(void)
{
	long i = (long)rnd(DEEP_PAGES + 1) - 1, j, lo, hi;
	unsigned long addr = i < 0 ? BASE - PAGE_SIZE : PG(i) + PAGE_SIZE / 2;
	struct vm_area_struct *vma = find_vma(&deep_mm, addr), *prev;

	for (j = i < 0 ? 0 : i; j < DEEP_PAGES && deep_model[j] == DEEP_UNMAPPED; j++)
		;
	if (j == DEEP_PAGES) {
		assert_null(vma);
		return;
	}
	deep_run(j, &lo, &hi);
	assert_non_null(vma);
	assert_int_equal(vma->vm_start, PG(lo));
	assert_int_equal(vma->vm_end, PG(hi));
	assert_ptr_equal(find_vma_prev(&deep_mm, addr, &prev), vma);
	assert_ptr_equal(prev, vma_prev(vma));
	for (j = lo - 1; j >= 0 && deep_model[j] == DEEP_UNMAPPED; j--)
		;
	if (j < 0)
		assert_null(prev);
	else
		assert_int_equal(prev->vm_end, PG(j + 1));
}

/* A top-down placement must take the highest free run that fits. */
static void deep_placement(void)
{
	long n = 1 + (long)rnd(rnd(4) ? 8 : 256), i, free_run = 0, want = -1;
	struct mmap_req req = {
		.len = (unsigned long)n * PAGE_SIZE,
		.prot = PROT_READ,
		.flags = MAP_PRIVATE | MAP_ANONYMOUS,
	};
	long addr;

	for (i = DEEP_PAGES - 1; i >= 0 && want < 0; i--) {
		free_run = deep_model[i] == DEEP_UNMAPPED ? free_run + 1 : 0;
		if (free_run == n)
			want = i;
	}
	/* Above the last VMA comes first: its run ends at the arena's top. */
	addr = do_mmap(&deep_mm, &req, NULL);
	if (want < 0) {
		assert_int_equal(addr, -ENOMEM);
		return;
	}
	for (i = DEEP_PAGES - 1; i >= 0 && deep_model[i] == DEEP_UNMAPPED; i--)
		;
	if (DEEP_PAGES - 1 - i >= n)
		want = DEEP_PAGES - n;
	assert_int_equal(addr, (long)PG(want));
	deep_set(want, n, 1);
}

static void deep_step(void)
{
	long op = (long)rnd(100), first = (long)rnd(DEEP_PAGES);
	long n = 1 + (long)rnd(8), i;
	int p = (int)rnd(DEEP_NPROTS);
	bool mapped = true;

	if (first + n > DEEP_PAGES)
		n = DEEP_PAGES - first;
	if (op < 40) {
		assert_int_equal(deep_map(first, n, p), (long)PG(first));
		deep_set(first, n, p);
	} else if (op < 60) {
		assert_int_equal(do_munmap(&deep_mm, PG(first), n * PAGE_SIZE), 0);
		deep_set(first, n, DEEP_UNMAPPED);
	} else if (op < 80) {
		for (i = first; i < first + n; i++)
			mapped &= deep_model[i] != DEEP_UNMAPPED;
		assert_int_equal(do_mprotect(&deep_mm, PG(first), n * PAGE_SIZE,
					     deep_prots[p]),
				 mapped ? 0 : -ENOMEM);
		if (mapped)
			deep_set(first, n, p);
	} else if (op < 82) {
		deep_placement();
	} else {
		deep_lookup();
	}
}

static void deep_run_seed(uint64_t seed)
{
	long i, k, order_n = DEEP_PAGES / 16, *order;
	int max_height = 0;

	rng_seed(seed);
	mm_init(&deep_mm, BASE, PG(DEEP_PAGES));
	memset(deep_model, DEEP_UNMAPPED, sizeof(deep_model));
	/* Dense first: short runs in random protections, many VMAs. */
	for (i = 0; i < DEEP_PAGES; i += 1 + (long)rnd(3)) {
		long n = 1 + (long)rnd(2);
		int p = (int)rnd(DEEP_NPROTS);

		if (i + n > DEEP_PAGES)
			n = DEEP_PAGES - i;
		assert_int_equal(deep_map(i, n, p), (long)PG(i));
		deep_set(i, n, p);
	}
	deep_check();
	for (k = 0; k < DEEP_STEPS_PER_ITERATION * iterations(); k++) {
		deep_step();
		if (deep_mm.mm_index.height > max_height)
			max_height = deep_mm.mm_index.height;
		if (k % DEEP_CHECK_EVERY == 0)
			deep_check();
	}
	deep_check();
	printf("seed %" PRIu64 ": %d VMAs at the end, index %d inner levels "
	       "at most\n", seed, deep_mm.map_count, max_height);
	assert_true(max_height >= 3);

	/* Tear down in 4 096 random 16-page pieces: the index shrinks away. */
	order = malloc(order_n * sizeof(*order));
	assert_non_null(order);
	for (i = 0; i < order_n; i++)
		order[i] = i;
	for (i = order_n - 1; i > 0; i--) {
		long j = (long)rnd((unsigned long)i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (i = 0; i < order_n; i++) {
		assert_int_equal(do_munmap(&deep_mm, PG(order[i] * 16),
					   16 * PAGE_SIZE), 0);
		deep_set(order[i] * 16, 16, DEEP_UNMAPPED);
		if (i % 256 == 0)
			deep_check();
	}
	free(order);
	deep_check();
	assert_int_equal(deep_mm.map_count, 0);
	assert_null(deep_mm.mm_index.root);
	exit_mmap(&deep_mm);
}

static void test_deep_seed(void **state)
{
	deep_run_seed(*(const uint64_t *)*state);
}

static uint64_t seeds[] = { 1, 2, 3, 42, 1234, 0xdeadbeef, 20240601,
			    987654321 };
#define NSEEDS (sizeof(seeds) / sizeof(seeds[0]))
#define NDEEP 3 /* the first seeds drive the depth test too */

int main(void)
{
	static char names[NSEEDS + NDEEP][48];
	struct CMUnitTest tests[NSEEDS + NDEEP];
	const char *env = getenv("UPAGED_SEED");
	size_t n = NSEEDS, deep = NDEEP, i;

	if (env) {
		seeds[0] = strtoull(env, NULL, 0);
		n = deep = 1;
	}
	for (i = 0; i < n + deep; i++) {
		bool is_deep = i >= n;
		const uint64_t *seed = &seeds[is_deep ? i - n : i];

		snprintf(names[i], sizeof(names[i]), "%s_seed_%" PRIu64,
			 is_deep ? "index_depth" : "random_ops", *seed);
		tests[i] = (struct CMUnitTest){
			.name = names[i],
			.test_func = is_deep ? test_deep_seed : test_random_seed,
			.initial_state = (void *)seed,
		};
	}
	printf("%zu seed(s), %ld steps each\n", n, iterations());
	return _cmocka_run_group_tests("test_vma_random", tests, n + deep,
				       NULL, NULL);
}

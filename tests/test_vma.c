/*
 * test_vma.c - hand-written cases for the VMA engine (daemon/vma.h).
 *
 * One test per case: how do_mmap merges and refuses to merge, how munmap,
 * mprotect, madvise and mremap split and re-merge, fork copies and exit
 * teardown, free-area search, the error codes of each call, the reverse map
 * after each kind of change, open/close balance, and the /proc/PID/maps
 * lines. Every operation is followed by validate_mm()/validate_rmap() and an
 * open/close balance check. The arena is small and never touched: the
 * engine only models addresses.
 */
#include <errno.h>
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

#define BASE 0x10000000UL
#define TOP 0x20000000UL
#define ARENA_PAGES ((TOP - BASE) >> PAGE_SHIFT)
/* Page n of the arena, and n pages in bytes. */
#define PG(n) (BASE + (unsigned long)(n) * PAGE_SIZE)
#define NP(n) ((unsigned long)(n) * PAGE_SIZE)

#define RW (PROT_READ | PROT_WRITE)
#define FMODE_ALL (MAP_FMODE_READ | MAP_FMODE_WRITE | MAP_FMODE_EXEC)
#define ANON (MAP_PRIVATE | MAP_ANONYMOUS)

static struct mm_struct mm, mm2, mm3;
static struct address_space file_a, file_b;

/* open/close counting: opens - closes must equal the VMAs alive. */
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

static long counted_vmas(struct mm_struct *m)
{
	struct vm_area_struct *vma;
	long n = 0;

	for_each_vma(m, vma)
		if (vma->vm_ops && vma->vm_ops->open == count_open)
			n++;
	return n;
}

static void dump_mm(const char *what, struct mm_struct *m)
{
	struct vm_area_struct *vma;

	fprintf(stderr, "%s: %d VMAs\n", what, m->map_count);
	for_each_vma(m, vma)
		fprintf(stderr, "  [%lu, %lu) flags %#x file %p pgoff %lu\n",
			(vma->vm_start - BASE) >> PAGE_SHIFT,
			(vma->vm_end - BASE) >> PAGE_SHIFT, vma->vm_flags,
			(void *)vma->vm_file, vma->vm_pgoff);
}

/* After every operation: every invariant holds and open/close balance. */
static void check_all(void)
{
	assert_int_equal(validate_mm(&mm), 0);
	assert_int_equal(validate_mm(&mm2), 0);
	assert_int_equal(validate_mm(&mm3), 0);
	assert_int_equal(validate_rmap(&file_a), 0);
	assert_int_equal(validate_rmap(&file_b), 0);
	assert_int_equal(opens - closes,
			 counted_vmas(&mm) + counted_vmas(&mm2) +
				 counted_vmas(&mm3));
}

static int setup(void **state)
{
	(void)state;
	mm_init(&mm, BASE, TOP);
	mm_init(&mm2, BASE, TOP);
	mm_init(&mm3, BASE, TOP);
	address_space_init(&file_a, makedev(8, 1), 1234);
	address_space_init(&file_b, makedev(8, 1), 5678);
	opens = closes = 0;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	exit_mmap(&mm);
	exit_mmap(&mm2);
	exit_mmap(&mm3);
	if (opens != closes || file_a.i_mmap_count || file_b.i_mmap_count) {
		fprintf(stderr, "teardown: opens %ld closes %ld rmap %lu %lu\n",
			opens, closes, file_a.i_mmap_count,
			file_b.i_mmap_count);
		return -1;
	}
	return 0;
}

/* Request builders: fixed mappings with the counting ops unless changed. */
static struct mmap_req anon_req(unsigned long page, unsigned long npages,
				int prot)
{
	return (struct mmap_req){
		.addr = PG(page), .len = NP(npages), .prot = prot,
		.flags = ANON | MAP_FIXED, .ops = &ops_a,
	};
}

static struct mmap_req file_req(unsigned long page, unsigned long npages,
				int prot, int flags,
				struct address_space *obj, unsigned long pgoff)
{
	return (struct mmap_req){
		.addr = PG(page), .len = NP(npages), .prot = prot,
		.flags = flags | MAP_FIXED, .obj = obj, .pgoff = pgoff,
		.ops = &ops_a, .fmode = FMODE_ALL,
	};
}

static long mmap_check(struct mm_struct *m, struct mmap_req req)
{
	long ret = do_mmap(m, &req, NULL);

	check_all();
	return ret;
}

/* A fixed mapping that must succeed. */
static void map_ok(struct mm_struct *m, struct mmap_req req)
{
	long ret = mmap_check(m, req);

	if (ret != (long)req.addr)
		fprintf(stderr, "do_mmap at %#lx returned %ld\n", req.addr,
			ret);
	assert_int_equal(ret, req.addr);
}

static void anon(struct mm_struct *m, unsigned long page,
		 unsigned long npages, int prot)
{
	map_ok(m, anon_req(page, npages, prot));
}

static void filemap(struct mm_struct *m, unsigned long page,
		    unsigned long npages, int prot, int flags,
		    struct address_space *obj, unsigned long pgoff)
{
	map_ok(m, file_req(page, npages, prot, flags, obj, pgoff));
}

static int munmap_check(struct mm_struct *m, unsigned long start,
			unsigned long len)
{
	int ret = do_munmap(m, start, len);

	check_all();
	return ret;
}

static int mprotect_check(struct mm_struct *m, unsigned long start,
			  unsigned long len, int prot)
{
	int ret = do_mprotect(m, start, len, prot);

	check_all();
	return ret;
}

static int madvise_check(struct mm_struct *m, unsigned long start,
			 unsigned long len, int advice)
{
	int ret = do_madvise(m, start, len, advice);

	check_all();
	return ret;
}

static long mremap_check(struct mm_struct *m, unsigned long old_addr,
			 unsigned long old_len, unsigned long new_len,
			 int flags, unsigned long new_addr)
{
	long ret = do_mremap(m, old_addr, old_len, new_len, flags, new_addr);

	check_all();
	return ret;
}

/* Layouts are written in arena pages: { first, end (exclusive) }. */
struct span {
	unsigned long start, end;
};

static void expect_layout_(struct mm_struct *m, const struct span *s, int n)
{
	struct vm_area_struct *vma;
	unsigned long pages = 0;
	int i = 0, bad = 0;

	for_each_vma(m, vma) {
		if (i >= n || vma->vm_start != PG(s[i].start) ||
		    vma->vm_end != PG(s[i].end))
			bad = 1;
		i++;
	}
	for (i = 0; i < n; i++)
		pages += s[i].end - s[i].start;
	if (bad || i != m->map_count || m->total_vm != pages) {
		fprintf(stderr, "expected:");
		for (i = 0; i < n; i++)
			fprintf(stderr, " [%lu, %lu)", s[i].start, s[i].end);
		fprintf(stderr, "\n");
		dump_mm("got", m);
		fail();
	}
}

#define EXPECT_LAYOUT(m, ...)                                       \
	do {                                                        \
		const struct span s_[] = { __VA_ARGS__ };           \
		expect_layout_((m), s_, sizeof(s_) / sizeof(s_[0])); \
	} while (0)
#define EXPECT_EMPTY(m) expect_layout_((m), NULL, 0)

/* The VMA containing arena page `page`. */
static struct vm_area_struct *vma_at(struct mm_struct *m, unsigned long page)
{
	struct vm_area_struct *vma = find_vma(m, PG(page));

	assert_non_null(vma);
	assert_true(vma->vm_start <= PG(page));
	return vma;
}

static unsigned int access_at(struct mm_struct *m, unsigned long page)
{
	return vma_at(m, page)->vm_flags & VM_ACCESS_FLAGS;
}

/* Reverse-map answers, as { mm, first page, end page } of whole VMAs. */
struct hit {
	struct mm_struct *mm;
	unsigned long start, end;
};

static void expect_rmap_(struct address_space *as, unsigned long first,
			 unsigned long last, const struct hit *h, int n)
{
	struct vm_area_struct *vma;
	int seen[16] = { 0 };
	int i, found = 0, bad = 0;

	assert_true(n <= 16);
	rmap_for_each(vma, as, first, last) {
		unsigned long vfirst = vma->vm_pgoff;
		unsigned long vlast = vma->vm_pgoff + vma_pages(vma) - 1;

		if (vma->vm_file != as || vlast < first || vfirst > last)
			bad = 1;
		for (i = 0; i < n; i++) {
			if (!seen[i] && h[i].mm == vma->vm_mm &&
			    PG(h[i].start) == vma->vm_start &&
			    PG(h[i].end) == vma->vm_end)
				break;
		}
		if (i == n) {
			fprintf(stderr, "rmap [%lu, %lu]: unexpected VMA "
				"[%lu, %lu) pgoff %lu of mm %p\n", first, last,
				(vma->vm_start - BASE) >> PAGE_SHIFT,
				(vma->vm_end - BASE) >> PAGE_SHIFT,
				vma->vm_pgoff, (void *)vma->vm_mm);
			bad = 1;
		} else {
			seen[i] = 1;
		}
		found++;
	}
	if (bad || found != n) {
		fprintf(stderr, "rmap [%lu, %lu]: found %d, expected %d\n",
			first, last, found, n);
		fail();
	}
}

#define EXPECT_RMAP(as, first, last, ...)                                 \
	do {                                                              \
		const struct hit h_[] = { __VA_ARGS__ };                  \
		expect_rmap_((as), (first), (last), h_,                   \
			     sizeof(h_) / sizeof(h_[0]));                 \
	} while (0)
#define EXPECT_RMAP_NONE(as, first, last) \
	expect_rmap_((as), (first), (last), NULL, 0)

/* ---- do_mmap: merging ------------------------------------------------ */

static void test_mmap_merge_new_after_existing(void **state)
{
	(void)state;
	anon(&mm, 0, 4, RW);
	anon(&mm, 4, 4, RW);
	EXPECT_LAYOUT(&mm, { 0, 8 });
}

static void test_mmap_merge_new_before_existing(void **state)
{
	(void)state;
	anon(&mm, 4, 4, RW);
	anon(&mm, 0, 4, RW);
	EXPECT_LAYOUT(&mm, { 0, 8 });
}

static void test_mmap_merge_new_between_two(void **state)
{
	(void)state;
	anon(&mm, 0, 4, RW);
	anon(&mm, 8, 4, RW);
	EXPECT_LAYOUT(&mm, { 0, 4 }, { 8, 12 });
	anon(&mm, 4, 4, RW);
	EXPECT_LAYOUT(&mm, { 0, 12 });
}

static void test_mmap_merge_file_contiguous_pgoff(void **state)
{
	(void)state;
	filemap(&mm, 0, 4, PROT_READ, MAP_SHARED, &file_a, 10);
	filemap(&mm, 8, 4, PROT_READ, MAP_SHARED, &file_a, 18);
	filemap(&mm, 4, 4, PROT_READ, MAP_SHARED, &file_a, 14);
	EXPECT_LAYOUT(&mm, { 0, 12 });
	assert_int_equal(vma_at(&mm, 0)->vm_pgoff, 10);
	assert_ptr_equal(vma_at(&mm, 0)->vm_file, &file_a);
	assert_int_equal(file_a.i_mmap_count, 1);
	EXPECT_RMAP(&file_a, 0, 100, { &mm, 0, 12 });
}

static void test_mmap_no_merge_when_flags_differ(void **state)
{
	(void)state;
	anon(&mm, 0, 4, RW);
	anon(&mm, 4, 4, PROT_READ);
	EXPECT_LAYOUT(&mm, { 0, 4 }, { 4, 8 });
	/* Same access bits but different extra flags. */
	struct mmap_req req = anon_req(8, 4, PROT_READ);

	req.vm_flags = VM_DONTCOPY;
	map_ok(&mm, req);
	EXPECT_LAYOUT(&mm, { 0, 4 }, { 4, 8 }, { 8, 12 });
	/* Shared and private mappings of one file never merge either. */
	filemap(&mm, 20, 4, PROT_READ, MAP_SHARED, &file_a, 0);
	filemap(&mm, 24, 4, PROT_READ, MAP_PRIVATE, &file_a, 4);
	EXPECT_LAYOUT(&mm, { 0, 4 }, { 4, 8 }, { 8, 12 }, { 20, 24 },
		      { 24, 28 });
}

static void test_mmap_no_merge_when_object_differs(void **state)
{
	(void)state;
	filemap(&mm, 0, 4, PROT_READ, MAP_PRIVATE, &file_a, 0);
	filemap(&mm, 4, 4, PROT_READ, MAP_PRIVATE, &file_b, 4);
	EXPECT_LAYOUT(&mm, { 0, 4 }, { 4, 8 });
	/* A file next to anonymous memory: different backing. */
	anon(&mm, 8, 4, PROT_READ);
	EXPECT_LAYOUT(&mm, { 0, 4 }, { 4, 8 }, { 8, 12 });
}

static void test_mmap_no_merge_when_pgoff_not_contiguous(void **state)
{
	(void)state;
	filemap(&mm, 0, 4, PROT_READ, MAP_SHARED, &file_a, 0);
	filemap(&mm, 4, 4, PROT_READ, MAP_SHARED, &file_a, 5);
	EXPECT_LAYOUT(&mm, { 0, 4 }, { 4, 8 });
	/* Before the existing VMA, pgoff must end exactly where it starts. */
	filemap(&mm, 10, 2, PROT_READ, MAP_SHARED, &file_a, 30);
	filemap(&mm, 8, 2, PROT_READ, MAP_SHARED, &file_a, 29);
	EXPECT_LAYOUT(&mm, { 0, 4 }, { 4, 8 }, { 8, 10 }, { 10, 12 });
	assert_int_equal(file_a.i_mmap_count, 4);
}

static void test_mmap_no_merge_when_special(void **state)
{
	static const unsigned int special[] = { VM_IO, VM_DONTEXPAND,
						 VM_PFNMAP, VM_MIXEDMAP };
	unsigned long page = 0;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(special) / sizeof(special[0]); i++) {
		struct mmap_req req = anon_req(page, 2, RW);

		req.vm_flags = special[i];
		map_ok(&mm, req);
		req.addr = PG(page + 2);
		map_ok(&mm, req);
		assert_int_equal(vma_at(&mm, page)->vm_end, PG(page + 2));
		assert_true(vma_at(&mm, page)->vm_flags & special[i]);
		page += 8;
	}
	assert_int_equal(mm.map_count, 8);
}

static void test_mmap_no_merge_when_ops_differ(void **state)
{
	struct mmap_req req = anon_req(4, 4, RW);

	(void)state;
	anon(&mm, 0, 4, RW);
	req.ops = &ops_b;
	map_ok(&mm, req);
	EXPECT_LAYOUT(&mm, { 0, 4 }, { 4, 8 });
}

/*
 * Anonymous private memory has no object: neighbours merge on flags
 * alone, even when one of them was moved there by mremap.
 */
static void test_mmap_anon_private_merges_on_flags(void **state)
{
	struct mmap_req req = anon_req(0, 4, RW);

	(void)state;
	req.pgoff = 1000; /* meaningless for anonymous memory */
	map_ok(&mm, req);
	anon(&mm, 4, 4, RW);
	EXPECT_LAYOUT(&mm, { 0, 8 });
	assert_null(vma_at(&mm, 0)->vm_file);
	assert_int_equal(mremap_check(&mm, PG(0), NP(8), NP(8),
				      MREMAP_MAYMOVE | MREMAP_FIXED, PG(40)),
			 PG(40));
	anon(&mm, 48, 4, RW);
	anon(&mm, 36, 4, RW);
	EXPECT_LAYOUT(&mm, { 36, 52 });
}

static void test_mmap_fixed_replaces_middle(void **state)
{
	(void)state;
	filemap(&mm, 0, 12, PROT_READ, MAP_SHARED, &file_a, 100);
	anon(&mm, 4, 4, RW);
	EXPECT_LAYOUT(&mm, { 0, 4 }, { 4, 8 }, { 8, 12 });
	assert_int_equal(vma_at(&mm, 0)->vm_pgoff, 100);
	assert_int_equal(vma_at(&mm, 8)->vm_pgoff, 108);
	assert_null(vma_at(&mm, 4)->vm_file);
	EXPECT_RMAP(&file_a, 0, 1000, { &mm, 0, 4 }, { &mm, 8, 12 });
	EXPECT_RMAP_NONE(&file_a, 104, 107);
	/* Mapping the original back merges all three again. */
	filemap(&mm, 4, 4, PROT_READ, MAP_SHARED, &file_a, 104);
	EXPECT_LAYOUT(&mm, { 0, 12 });
	EXPECT_RMAP(&file_a, 105, 105, { &mm, 0, 12 });
}

static void test_mmap_out_returns_holding_vma(void **state)
{
	struct mmap_req req = anon_req(4, 4, RW);
	struct vm_area_struct *out = NULL;

	(void)state;
	anon(&mm, 0, 4, RW);
	assert_int_equal(do_mmap(&mm, &req, &out), PG(4));
	check_all();
	assert_non_null(out);
	assert_int_equal(out->vm_start, PG(0));
	assert_int_equal(out->vm_end, PG(8));
	assert_ptr_equal(out->vm_mm, &mm);
}

static void test_mmap_vm_flags_from_prot_and_flags(void **state)
{
	struct mmap_req req;

	(void)state;
	anon(&mm, 0, 1, PROT_READ | PROT_EXEC);
	assert_int_equal(vma_at(&mm, 0)->vm_flags &
				 (VM_ACCESS_FLAGS | VM_SHARED | VM_MAYSHARE),
			 VM_READ | VM_EXEC);
	assert_int_equal(vma_at(&mm, 0)->vm_flags & VM_MAY_FLAGS,
			 VM_MAY_FLAGS);
	filemap(&mm, 2, 1, RW, MAP_SHARED, &file_a, 0);
	assert_true(vma_at(&mm, 2)->vm_flags & VM_SHARED);
	assert_true(vma_at(&mm, 2)->vm_flags & VM_MAYSHARE);
	/* Shared, read-only fd: may never become writable. */
	req = file_req(4, 1, PROT_READ, MAP_SHARED, &file_a, 0);
	req.fmode = MAP_FMODE_READ | MAP_FMODE_EXEC;
	map_ok(&mm, req);
	assert_false(vma_at(&mm, 4)->vm_flags & VM_MAYWRITE);
	assert_true(vma_at(&mm, 4)->vm_flags & VM_MAYSHARE);
	/* Private, read-only fd: copy-on-write may still write. */
	req = file_req(6, 1, PROT_READ, MAP_PRIVATE, &file_a, 0);
	req.fmode = MAP_FMODE_READ | MAP_FMODE_EXEC;
	map_ok(&mm, req);
	assert_true(vma_at(&mm, 6)->vm_flags & VM_MAYWRITE);
	assert_false(vma_at(&mm, 6)->vm_flags & (VM_SHARED | VM_MAYSHARE));
}

/* ---- do_mmap: errors -------------------------------------------------- */

static void test_mmap_len_zero_einval(void **state)
{
	struct mmap_req req = anon_req(0, 0, RW);

	(void)state;
	assert_int_equal(mmap_check(&mm, req), -EINVAL);
	req.flags &= ~MAP_FIXED;
	assert_int_equal(mmap_check(&mm, req), -EINVAL);
	EXPECT_EMPTY(&mm);
}

static void test_mmap_fixed_unaligned_einval(void **state)
{
	struct mmap_req req = anon_req(4, 1, RW);

	(void)state;
	req.addr += 100;
	assert_int_equal(mmap_check(&mm, req), -EINVAL);
	EXPECT_EMPTY(&mm);
}

static void test_mmap_neither_shared_nor_private_einval(void **state)
{
	struct mmap_req req = file_req(0, 1, PROT_READ, 0, &file_a, 0);

	(void)state;
	assert_int_equal(mmap_check(&mm, req), -EINVAL);
	req = anon_req(0, 1, RW);
	req.flags = MAP_ANONYMOUS | MAP_FIXED;
	assert_int_equal(mmap_check(&mm, req), -EINVAL);
	EXPECT_EMPTY(&mm);
}

/*
 * MAP_SHARED | MAP_PRIVATE is MAP_SHARED_VALIDATE (0x03) in the Linux ABI:
 * a shared mapping, not an error. Any other mapping type is -EINVAL.
 */
static void test_mmap_both_shared_and_private_is_shared_validate(void **state)
{
	struct mmap_req req = file_req(0, 1, PROT_READ,
				       MAP_SHARED | MAP_PRIVATE, &file_a, 0);

	(void)state;
	assert_int_equal(mmap_check(&mm, req), PG(0));
	assert_true(vma_at(&mm, 0)->vm_flags & VM_MAYSHARE);
	req = file_req(2, 1, PROT_READ, 0x04, &file_a, 0);
	assert_int_equal(mmap_check(&mm, req), -EINVAL);
	req = file_req(2, 1, PROT_READ, 0x0f, &file_a, 0);
	assert_int_equal(mmap_check(&mm, req), -EINVAL);
	/* Anonymous memory given no object can only be private. */
	req = anon_req(2, 1, RW);
	req.flags = MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED;
	assert_int_equal(mmap_check(&mm, req), -EINVAL);
	EXPECT_LAYOUT(&mm, { 0, 1 });
}

/* A file on a noexec mount: PROT_EXEC is -EPERM and can never be added. */
static void test_mmap_exec_on_noexec_fd(void **state)
{
	struct mmap_req req = file_req(0, 1, PROT_READ | PROT_EXEC,
				       MAP_PRIVATE, &file_a, 0);

	(void)state;
	req.fmode = MAP_FMODE_READ | MAP_FMODE_WRITE;
	assert_int_equal(mmap_check(&mm, req), -EPERM);
	req.prot = PROT_READ;
	map_ok(&mm, req);
	assert_false(vma_at(&mm, 0)->vm_flags & VM_MAYEXEC);
	assert_int_equal(mprotect_check(&mm, PG(0), NP(1), PROT_EXEC),
			 -EACCES);
	assert_int_equal(mprotect_check(&mm, PG(0), NP(1), RW), 0);
}

static void test_mmap_fd_not_readable_eacces(void **state)
{
	struct mmap_req req = file_req(0, 1, PROT_READ, MAP_PRIVATE,
				       &file_a, 0);

	(void)state;
	req.fmode = MAP_FMODE_WRITE;
	assert_int_equal(mmap_check(&mm, req), -EACCES);
	req.flags = MAP_SHARED | MAP_FIXED;
	assert_int_equal(mmap_check(&mm, req), -EACCES);
	EXPECT_EMPTY(&mm);
	assert_int_equal(file_a.i_mmap_count, 0);
}

static void test_mmap_shared_write_on_readonly_fd_eacces(void **state)
{
	struct mmap_req req = file_req(0, 1, RW, MAP_SHARED, &file_a, 0);

	(void)state;
	req.fmode = MAP_FMODE_READ;
	assert_int_equal(mmap_check(&mm, req), -EACCES);
	EXPECT_EMPTY(&mm);
	/* The same fd may be mapped privately and written (COW). */
	req.flags = MAP_PRIVATE | MAP_FIXED;
	assert_int_equal(mmap_check(&mm, req), PG(0));
}

/* A refused MAP_FIXED must not have unmapped what it would replace. */
static void test_mmap_failed_fixed_leaves_mapping(void **state)
{
	struct mmap_req req = file_req(2, 4, RW, MAP_SHARED, &file_a, 0);

	(void)state;
	anon(&mm, 0, 8, RW);
	req.fmode = MAP_FMODE_READ;
	assert_int_equal(mmap_check(&mm, req), -EACCES);
	EXPECT_LAYOUT(&mm, { 0, 8 });
}

/* ---- get_unmapped_area ------------------------------------------------ */

static void test_gua_hint_honoured_when_free(void **state)
{
	struct mmap_req req = anon_req(100, 4, RW);

	(void)state;
	assert_int_equal(get_unmapped_area(&mm, PG(100), NP(4), 0), PG(100));
	req.flags &= ~MAP_FIXED;
	assert_int_equal(mmap_check(&mm, req), PG(100));
	/* Right next to an existing mapping is still free. */
	assert_int_equal(get_unmapped_area(&mm, PG(104), NP(4), 0), PG(104));
	assert_int_equal(get_unmapped_area(&mm, PG(96), NP(4), 0), PG(96));
}

static void test_gua_hint_ignored_when_taken(void **state)
{
	long addr;

	(void)state;
	anon(&mm, 100, 4, RW);
	/* Overlaps the mapping by one page: falls back to top-down. */
	addr = get_unmapped_area(&mm, PG(97), NP(4), 0);
	assert_int_equal(addr, TOP - NP(4));
	addr = get_unmapped_area(&mm, PG(102), NP(1), 0);
	assert_int_equal(addr, TOP - NP(1));
}

static void test_gua_topdown_highest_gap(void **state)
{
	unsigned long last = ARENA_PAGES;

	(void)state;
	/* Gaps from the top: 1 page, 3 pages, then 10 pages. */
	anon(&mm, last - 1, 1, RW);
	anon(&mm, last - 4, 2, PROT_READ);
	anon(&mm, last - 10, 3, RW);
	anon(&mm, last - 30, 10, PROT_READ);
	assert_int_equal(get_unmapped_area(&mm, 0, NP(1), 0), PG(last - 2));
	assert_int_equal(get_unmapped_area(&mm, 0, NP(3), 0), PG(last - 7));
	assert_int_equal(get_unmapped_area(&mm, 0, NP(4), 0), PG(last - 14));
	assert_int_equal(get_unmapped_area(&mm, 0, NP(10), 0),
			 PG(last - 20));
	assert_int_equal(get_unmapped_area(&mm, 0, NP(11), 0),
			 PG(last - 41));
	/* A non-fixed mmap lands where get_unmapped_area says. */
	struct mmap_req req = anon_req(0, 3, PROT_EXEC);

	req.flags &= ~MAP_FIXED;
	req.addr = 0;
	assert_int_equal(mmap_check(&mm, req), PG(last - 7));
}

static void test_gua_map_fixed_replaces(void **state)
{
	(void)state;
	anon(&mm, 0, 10, RW);
	assert_int_equal(get_unmapped_area(&mm, PG(2), NP(4), MAP_FIXED),
			 PG(2));
	anon(&mm, 2, 4, PROT_READ);
	EXPECT_LAYOUT(&mm, { 0, 2 }, { 2, 6 }, { 6, 10 });
	assert_int_equal(access_at(&mm, 3), VM_READ);
	assert_int_equal(access_at(&mm, 6), VM_READ | VM_WRITE);
}

static void test_gua_fixed_noreplace_eexist(void **state)
{
	struct mmap_req req = anon_req(8, 4, PROT_READ);

	(void)state;
	anon(&mm, 10, 4, RW);
	req.flags = ANON | MAP_FIXED_NOREPLACE;
	assert_int_equal(get_unmapped_area(&mm, PG(8), NP(4),
					   MAP_FIXED_NOREPLACE),
			 -EEXIST);
	assert_int_equal(mmap_check(&mm, req), -EEXIST);
	EXPECT_LAYOUT(&mm, { 10, 14 });
	/* Free range: works, and merges like any map. */
	req.addr = PG(6);
	req.prot = RW;
	assert_int_equal(mmap_check(&mm, req), PG(6));
	EXPECT_LAYOUT(&mm, { 6, 14 });
}

static void test_gua_enomem_when_nothing_fits(void **state)
{
	struct mmap_req req = anon_req(0, 2, RW);

	(void)state;
	assert_int_equal(get_unmapped_area(&mm, 0, TOP - BASE + PAGE_SIZE, 0),
			 -ENOMEM);
	/* Fill the arena leaving only one-page holes. */
	anon(&mm, 0, ARENA_PAGES / 2, RW);
	anon(&mm, ARENA_PAGES / 2 + 1, ARENA_PAGES / 2 - 2, PROT_READ);
	assert_int_equal(get_unmapped_area(&mm, 0, NP(2), 0), -ENOMEM);
	req.flags &= ~MAP_FIXED;
	assert_int_equal(mmap_check(&mm, req), -ENOMEM);
	assert_int_equal(get_unmapped_area(&mm, 0, NP(1), 0),
			 PG(ARENA_PAGES - 1));
}

static void test_gua_arena_bounds(void **state)
{
	long addr;

	(void)state;
	/* The whole arena fits exactly; a hint below it is ignored. */
	assert_int_equal(get_unmapped_area(&mm, 0, TOP - BASE, 0), BASE);
	addr = get_unmapped_area(&mm, BASE - NP(4), NP(2), 0);
	assert_int_equal(addr, TOP - NP(2));
	/* A hint running past the top is ignored too. */
	addr = get_unmapped_area(&mm, TOP - NP(1), NP(2), 0);
	assert_int_equal(addr, TOP - NP(2));
	/* MAP_FIXED outside the arena is refused, as past TASK_SIZE. */
	assert_int_equal(get_unmapped_area(&mm, TOP, NP(1), MAP_FIXED),
			 -ENOMEM);
	assert_int_equal(get_unmapped_area(&mm, TOP - NP(1), NP(2), MAP_FIXED),
			 -ENOMEM);
	assert_int_equal(get_unmapped_area(&mm, BASE - NP(1), NP(1),
					   MAP_FIXED),
			 -ENOMEM);
	assert_int_equal(mmap_check(&mm, anon_req(ARENA_PAGES, 1, RW)),
			 -ENOMEM);
	assert_int_equal(get_unmapped_area(&mm, TOP - NP(1), NP(1), MAP_FIXED),
			 TOP - NP(1));
	assert_int_equal(get_unmapped_area(&mm, BASE, NP(1), MAP_FIXED), BASE);
	EXPECT_EMPTY(&mm);
}

/* ---- do_munmap -------------------------------------------------------- */

static void test_munmap_truncate_start(void **state)
{
	(void)state;
	filemap(&mm, 0, 8, PROT_READ, MAP_SHARED, &file_a, 20);
	assert_int_equal(munmap_check(&mm, PG(0), NP(3)), 0);
	EXPECT_LAYOUT(&mm, { 3, 8 });
	assert_int_equal(vma_at(&mm, 3)->vm_pgoff, 23);
	EXPECT_RMAP_NONE(&file_a, 20, 22);
	EXPECT_RMAP(&file_a, 22, 23, { &mm, 3, 8 });
}

static void test_munmap_truncate_end(void **state)
{
	(void)state;
	filemap(&mm, 0, 8, PROT_READ, MAP_SHARED, &file_a, 20);
	assert_int_equal(munmap_check(&mm, PG(5), NP(3)), 0);
	EXPECT_LAYOUT(&mm, { 0, 5 });
	assert_int_equal(vma_at(&mm, 0)->vm_pgoff, 20);
	EXPECT_RMAP_NONE(&file_a, 25, 27);
	EXPECT_RMAP(&file_a, 24, 40, { &mm, 0, 5 });
}

static void test_munmap_split_middle(void **state)
{
	(void)state;
	filemap(&mm, 0, 8, PROT_READ, MAP_SHARED, &file_a, 20);
	assert_int_equal(munmap_check(&mm, PG(3), NP(2)), 0);
	EXPECT_LAYOUT(&mm, { 0, 3 }, { 5, 8 });
	assert_int_equal(vma_at(&mm, 0)->vm_pgoff, 20);
	assert_int_equal(vma_at(&mm, 5)->vm_pgoff, 25);
	assert_int_equal(file_a.i_mmap_count, 2);
	EXPECT_RMAP(&file_a, 0, 100, { &mm, 0, 3 }, { &mm, 5, 8 });
	EXPECT_RMAP_NONE(&file_a, 23, 24);
	/* The split piece was opened: it is a new VMA. */
	assert_int_equal(opens - closes, 2);
}

static void test_munmap_delete_whole(void **state)
{
	(void)state;
	filemap(&mm, 0, 8, PROT_READ, MAP_SHARED, &file_a, 20);
	anon(&mm, 10, 2, RW);
	assert_int_equal(munmap_check(&mm, PG(0), NP(8)), 0);
	EXPECT_LAYOUT(&mm, { 10, 12 });
	assert_int_equal(file_a.i_mmap_count, 0);
	assert_null(find_vma_intersection(&mm, PG(0), PG(8)));
}

static void test_munmap_across_vmas_and_holes(void **state)
{
	(void)state;
	anon(&mm, 0, 4, RW);
	anon(&mm, 6, 4, PROT_READ);
	filemap(&mm, 12, 4, PROT_READ, MAP_PRIVATE, &file_a, 0);
	anon(&mm, 18, 4, RW);
	assert_int_equal(munmap_check(&mm, PG(2), NP(18)), 0);
	EXPECT_LAYOUT(&mm, { 0, 2 }, { 20, 22 });
	assert_int_equal(file_a.i_mmap_count, 0);
}

static void test_munmap_nothing_mapped_succeeds(void **state)
{
	(void)state;
	assert_int_equal(munmap_check(&mm, PG(0), NP(10)), 0);
	anon(&mm, 20, 4, RW);
	assert_int_equal(munmap_check(&mm, PG(10), NP(10)), 0);
	assert_int_equal(munmap_check(&mm, PG(24), NP(10)), 0);
	EXPECT_LAYOUT(&mm, { 20, 24 });
}

static void test_munmap_len_zero_einval(void **state)
{
	(void)state;
	anon(&mm, 0, 4, RW);
	assert_int_equal(munmap_check(&mm, PG(0), 0), -EINVAL);
	EXPECT_LAYOUT(&mm, { 0, 4 });
}

static void test_munmap_unaligned_start_einval(void **state)
{
	(void)state;
	anon(&mm, 0, 4, RW);
	assert_int_equal(munmap_check(&mm, PG(1) + 8, NP(1)), -EINVAL);
	EXPECT_LAYOUT(&mm, { 0, 4 });
}

static void test_munmap_unaligned_len_rounds_up(void **state)
{
	(void)state;
	anon(&mm, 0, 4, RW);
	assert_int_equal(munmap_check(&mm, PG(1), 1), 0);
	EXPECT_LAYOUT(&mm, { 0, 1 }, { 2, 4 });
}

static void test_munmap_wraparound_einval(void **state)
{
	(void)state;
	anon(&mm, 0, 4, RW);
	assert_int_equal(munmap_check(&mm, PG(2), -PAGE_SIZE), -EINVAL);
	assert_int_equal(munmap_check(&mm, PG(2), ~0UL - PG(2) + PAGE_SIZE),
			 -EINVAL);
	EXPECT_LAYOUT(&mm, { 0, 4 });
}

static void test_munmap_outside_arena_einval(void **state)
{
	(void)state;
	anon(&mm, ARENA_PAGES - 4, 4, RW);
	assert_int_equal(munmap_check(&mm, TOP, NP(4)), -EINVAL);
	assert_int_equal(munmap_check(&mm, TOP - NP(2), NP(4)), -EINVAL);
	assert_int_equal(munmap_check(&mm, BASE - NP(4), NP(2)), -EINVAL);
	EXPECT_LAYOUT(&mm, { ARENA_PAGES - 4, ARENA_PAGES });
}

/* ---- do_mprotect ------------------------------------------------------ */

static void test_mprotect_split_at_start(void **state)
{
	(void)state;
	filemap(&mm, 0, 8, PROT_READ, MAP_PRIVATE, &file_a, 50);
	assert_int_equal(mprotect_check(&mm, PG(0), NP(2), RW), 0);
	EXPECT_LAYOUT(&mm, { 0, 2 }, { 2, 8 });
	assert_int_equal(access_at(&mm, 0), VM_READ | VM_WRITE);
	assert_int_equal(access_at(&mm, 2), VM_READ);
	assert_int_equal(vma_at(&mm, 2)->vm_pgoff, 52);
	EXPECT_RMAP(&file_a, 51, 52, { &mm, 0, 2 }, { &mm, 2, 8 });
}

static void test_mprotect_split_at_end(void **state)
{
	(void)state;
	filemap(&mm, 0, 8, PROT_READ, MAP_PRIVATE, &file_a, 50);
	assert_int_equal(mprotect_check(&mm, PG(6), NP(2), PROT_NONE), 0);
	EXPECT_LAYOUT(&mm, { 0, 6 }, { 6, 8 });
	assert_int_equal(access_at(&mm, 6), 0);
	assert_int_equal(vma_at(&mm, 6)->vm_pgoff, 56);
}

static void test_mprotect_split_middle(void **state)
{
	(void)state;
	anon(&mm, 0, 8, RW);
	assert_int_equal(mprotect_check(&mm, PG(3), NP(2), PROT_READ), 0);
	EXPECT_LAYOUT(&mm, { 0, 3 }, { 3, 5 }, { 5, 8 });
	assert_int_equal(access_at(&mm, 3), VM_READ);
	assert_int_equal(access_at(&mm, 5), VM_READ | VM_WRITE);
}

static void test_mprotect_whole_vma_changes_in_place(void **state)
{
	(void)state;
	anon(&mm, 0, 8, RW);
	anon(&mm, 10, 2, PROT_READ);
	assert_int_equal(mprotect_check(&mm, PG(0), NP(8), PROT_EXEC), 0);
	EXPECT_LAYOUT(&mm, { 0, 8 }, { 10, 12 });
	assert_int_equal(access_at(&mm, 0), VM_EXEC);
	/* No change at all: nothing splits. */
	assert_int_equal(mprotect_check(&mm, PG(2), NP(2), PROT_EXEC), 0);
	EXPECT_LAYOUT(&mm, { 0, 8 }, { 10, 12 });
}

static void test_mprotect_remerges_with_neighbours(void **state)
{
	(void)state;
	filemap(&mm, 0, 12, PROT_READ, MAP_SHARED, &file_a, 0);
	assert_int_equal(mprotect_check(&mm, PG(4), NP(4), RW), 0);
	EXPECT_LAYOUT(&mm, { 0, 4 }, { 4, 8 }, { 8, 12 });
	assert_int_equal(mprotect_check(&mm, PG(4), NP(4), PROT_READ), 0);
	EXPECT_LAYOUT(&mm, { 0, 12 });
	assert_int_equal(file_a.i_mmap_count, 1);
	/* Merging with only the previous, then only the next. */
	assert_int_equal(mprotect_check(&mm, PG(0), NP(6), RW), 0);
	EXPECT_LAYOUT(&mm, { 0, 6 }, { 6, 12 });
	assert_int_equal(mprotect_check(&mm, PG(6), NP(2), RW), 0);
	EXPECT_LAYOUT(&mm, { 0, 8 }, { 8, 12 });
	assert_int_equal(mprotect_check(&mm, PG(6), NP(2), PROT_READ), 0);
	EXPECT_LAYOUT(&mm, { 0, 6 }, { 6, 12 });
	assert_int_equal(vma_at(&mm, 6)->vm_pgoff, 6);
}

static void test_mprotect_across_vmas_merges_all(void **state)
{
	(void)state;
	anon(&mm, 0, 4, PROT_READ);
	anon(&mm, 4, 4, RW);
	anon(&mm, 8, 4, PROT_NONE);
	assert_int_equal(mprotect_check(&mm, PG(0), NP(12), RW), 0);
	EXPECT_LAYOUT(&mm, { 0, 12 });
}

static void test_mprotect_write_on_shared_readonly_fd_eacces(void **state)
{
	struct mmap_req req = file_req(0, 4, PROT_READ, MAP_SHARED, &file_a,
				       0);

	(void)state;
	req.fmode = MAP_FMODE_READ | MAP_FMODE_EXEC;
	map_ok(&mm, req);
	assert_int_equal(mprotect_check(&mm, PG(1), NP(2), RW), -EACCES);
	EXPECT_LAYOUT(&mm, { 0, 4 });
	assert_int_equal(access_at(&mm, 1), VM_READ);
	/* Private mapping of the same read-only fd: allowed. */
	req = file_req(10, 4, PROT_READ, MAP_PRIVATE, &file_a, 0);
	req.fmode = MAP_FMODE_READ | MAP_FMODE_EXEC;
	map_ok(&mm, req);
	assert_int_equal(mprotect_check(&mm, PG(10), NP(4), RW), 0);
	assert_int_equal(access_at(&mm, 10), VM_READ | VM_WRITE);
}

/* EACCES on a later VMA of the range: the earlier ones stay as they were. */
static void test_mprotect_eacces_changes_nothing(void **state)
{
	struct mmap_req req = file_req(4, 4, PROT_READ, MAP_SHARED, &file_a,
				       0);

	(void)state;
	anon(&mm, 0, 4, PROT_READ);
	req.fmode = MAP_FMODE_READ;
	map_ok(&mm, req);
	assert_int_equal(mprotect_check(&mm, PG(0), NP(8), RW), -EACCES);
	EXPECT_LAYOUT(&mm, { 0, 4 }, { 4, 8 });
	assert_int_equal(access_at(&mm, 0), VM_READ);
	assert_int_equal(access_at(&mm, 4), VM_READ);
}

static void test_mprotect_hole_enomem_changes_nothing(void **state)
{
	(void)state;
	anon(&mm, 0, 4, PROT_READ);
	anon(&mm, 6, 4, PROT_READ | PROT_EXEC);
	assert_int_equal(mprotect_check(&mm, PG(2), NP(6), RW), -ENOMEM);
	EXPECT_LAYOUT(&mm, { 0, 4 }, { 6, 10 });
	assert_int_equal(access_at(&mm, 2), VM_READ);
	assert_int_equal(access_at(&mm, 6), VM_READ | VM_EXEC);
	/* Unmapped start, and a range past the last VMA. */
	assert_int_equal(mprotect_check(&mm, PG(4), NP(4), RW), -ENOMEM);
	assert_int_equal(mprotect_check(&mm, PG(8), NP(4), RW), -ENOMEM);
	assert_int_equal(mprotect_check(&mm, PG(20), NP(1), RW), -ENOMEM);
	EXPECT_LAYOUT(&mm, { 0, 4 }, { 6, 10 });
	assert_int_equal(access_at(&mm, 8), VM_READ | VM_EXEC);
}

static void test_mprotect_bad_args(void **state)
{
	(void)state;
	anon(&mm, 0, 4, PROT_READ);
	assert_int_equal(mprotect_check(&mm, PG(1) + 1, NP(1), RW), -EINVAL);
	assert_int_equal(mprotect_check(&mm, PG(1), 0, RW), 0);
	EXPECT_LAYOUT(&mm, { 0, 4 });
	assert_int_equal(access_at(&mm, 1), VM_READ);
}

/* ---- do_madvise ------------------------------------------------------- */

static void test_madvise_sequential_splits(void **state)
{
	(void)state;
	filemap(&mm, 0, 8, PROT_READ, MAP_PRIVATE, &file_a, 0);
	assert_int_equal(madvise_check(&mm, PG(2), NP(4), MADV_SEQUENTIAL), 0);
	EXPECT_LAYOUT(&mm, { 0, 2 }, { 2, 6 }, { 6, 8 });
	assert_true(vma_at(&mm, 2)->vm_flags & VM_SEQ_READ);
	assert_false(vma_at(&mm, 0)->vm_flags & VM_SEQ_READ);
	assert_int_equal(vma_at(&mm, 6)->vm_pgoff, 6);
	EXPECT_RMAP(&file_a, 5, 6, { &mm, 2, 6 }, { &mm, 6, 8 });
}

static void test_madvise_random_replaces_sequential(void **state)
{
	(void)state;
	anon(&mm, 0, 8, RW);
	assert_int_equal(madvise_check(&mm, PG(0), NP(8), MADV_SEQUENTIAL), 0);
	assert_int_equal(madvise_check(&mm, PG(0), NP(4), MADV_RANDOM), 0);
	EXPECT_LAYOUT(&mm, { 0, 4 }, { 4, 8 });
	assert_int_equal(vma_at(&mm, 0)->vm_flags &
				 (VM_SEQ_READ | VM_RAND_READ),
			 VM_RAND_READ);
	assert_int_equal(vma_at(&mm, 4)->vm_flags &
				 (VM_SEQ_READ | VM_RAND_READ),
			 VM_SEQ_READ);
	/* MADV_NORMAL clears both and everything merges back. */
	assert_int_equal(madvise_check(&mm, PG(0), NP(8), MADV_NORMAL), 0);
	EXPECT_LAYOUT(&mm, { 0, 8 });
	assert_false(vma_at(&mm, 0)->vm_flags & (VM_SEQ_READ | VM_RAND_READ));
}

static void test_madvise_dontfork_dofork(void **state)
{
	(void)state;
	anon(&mm, 0, 8, RW);
	assert_int_equal(madvise_check(&mm, PG(6), NP(2), MADV_DONTFORK), 0);
	EXPECT_LAYOUT(&mm, { 0, 6 }, { 6, 8 });
	assert_true(vma_at(&mm, 6)->vm_flags & VM_DONTCOPY);
	assert_int_equal(dup_mmap(&mm2, &mm), 0);
	check_all();
	EXPECT_LAYOUT(&mm2, { 0, 6 });
	assert_int_equal(madvise_check(&mm, PG(6), NP(2), MADV_DOFORK), 0);
	EXPECT_LAYOUT(&mm, { 0, 8 });
}

static void test_madvise_dontdump_dodump(void **state)
{
	(void)state;
	anon(&mm, 0, 8, RW);
	assert_int_equal(madvise_check(&mm, PG(0), NP(1), MADV_DONTDUMP), 0);
	EXPECT_LAYOUT(&mm, { 0, 1 }, { 1, 8 });
	assert_true(vma_at(&mm, 0)->vm_flags & VM_DONTDUMP);
	assert_int_equal(madvise_check(&mm, PG(0), NP(8), MADV_DODUMP), 0);
	EXPECT_LAYOUT(&mm, { 0, 8 });
}

static void test_madvise_hole_enomem_applies_rest(void **state)
{
	(void)state;
	anon(&mm, 0, 4, RW);
	anon(&mm, 6, 4, RW);
	assert_int_equal(madvise_check(&mm, PG(2), NP(6), MADV_RANDOM),
			 -ENOMEM);
	EXPECT_LAYOUT(&mm, { 0, 2 }, { 2, 4 }, { 6, 8 }, { 8, 10 });
	assert_true(vma_at(&mm, 2)->vm_flags & VM_RAND_READ);
	assert_true(vma_at(&mm, 6)->vm_flags & VM_RAND_READ);
	assert_false(vma_at(&mm, 8)->vm_flags & VM_RAND_READ);
	assert_int_equal(madvise_check(&mm, PG(20), NP(2), MADV_RANDOM),
			 -ENOMEM);
}

static void test_madvise_other_advice_only_checks(void **state)
{
	(void)state;
	anon(&mm, 0, 8, RW);
	assert_int_equal(madvise_check(&mm, PG(2), NP(2), MADV_WILLNEED), 0);
	EXPECT_LAYOUT(&mm, { 0, 8 });
	assert_int_equal(madvise_check(&mm, PG(6), NP(4), MADV_WILLNEED),
			 -ENOMEM);
	EXPECT_LAYOUT(&mm, { 0, 8 });
	assert_int_equal(madvise_check(&mm, PG(2) + 1, NP(1), MADV_RANDOM),
			 -EINVAL);
	EXPECT_LAYOUT(&mm, { 0, 8 });
}

/* ---- do_mremap -------------------------------------------------------- */

static void test_mremap_shrink(void **state)
{
	(void)state;
	filemap(&mm, 0, 8, PROT_READ, MAP_SHARED, &file_a, 0);
	assert_int_equal(mremap_check(&mm, PG(0), NP(8), NP(3), 0, 0), PG(0));
	EXPECT_LAYOUT(&mm, { 0, 3 });
	EXPECT_RMAP_NONE(&file_a, 3, 10);
	/* Shrinking a range in the middle of a VMA unmaps its tail only. */
	anon(&mm, 10, 10, RW);
	assert_int_equal(mremap_check(&mm, PG(12), NP(4), NP(2), 0, 0),
			 PG(12));
	EXPECT_LAYOUT(&mm, { 0, 3 }, { 10, 14 }, { 16, 20 });
}

static void test_mremap_same_size_is_noop(void **state)
{
	(void)state;
	anon(&mm, 0, 8, RW);
	assert_int_equal(mremap_check(&mm, PG(2), NP(4), NP(4), 0, 0), PG(2));
	EXPECT_LAYOUT(&mm, { 0, 8 });
}

static void test_mremap_grow_in_place(void **state)
{
	(void)state;
	filemap(&mm, 0, 4, PROT_READ, MAP_SHARED, &file_a, 10);
	anon(&mm, 10, 2, RW);
	assert_int_equal(mremap_check(&mm, PG(0), NP(4), NP(10), 0, 0),
			 PG(0));
	EXPECT_LAYOUT(&mm, { 0, 10 }, { 10, 12 });
	assert_int_equal(vma_at(&mm, 0)->vm_pgoff, 10);
	EXPECT_RMAP(&file_a, 19, 19, { &mm, 0, 10 });
	EXPECT_RMAP_NONE(&file_a, 20, 30);
}

/* Growing up to a compatible neighbour leaves one VMA, not two. */
static void test_mremap_grow_in_place_merges_next(void **state)
{
	(void)state;
	anon(&mm, 0, 4, RW);
	anon(&mm, 6, 4, RW);
	assert_int_equal(mremap_check(&mm, PG(0), NP(4), NP(6), 0, 0), PG(0));
	EXPECT_LAYOUT(&mm, { 0, 10 });
}

static void test_mremap_grow_blocked_enomem(void **state)
{
	(void)state;
	anon(&mm, 0, 4, RW);
	anon(&mm, 5, 4, PROT_READ);
	assert_int_equal(mremap_check(&mm, PG(0), NP(4), NP(6), 0, 0),
			 -ENOMEM);
	EXPECT_LAYOUT(&mm, { 0, 4 }, { 5, 9 });
	/* Not at the VMA's end: cannot grow in place either. */
	assert_int_equal(mremap_check(&mm, PG(0), NP(2), NP(3), 0, 0),
			 -ENOMEM);
	/* Nor past the arena's top. */
	anon(&mm, ARENA_PAGES - 2, 2, RW);
	assert_int_equal(mremap_check(&mm, PG(ARENA_PAGES - 2), NP(2), NP(3),
				      0, 0),
			 -ENOMEM);
	EXPECT_LAYOUT(&mm, { 0, 4 }, { 5, 9 },
		      { ARENA_PAGES - 2, ARENA_PAGES });
}

static void test_mremap_grow_moves_with_maymove(void **state)
{
	long addr;

	(void)state;
	anon(&mm, 0, 4, RW);
	anon(&mm, 4, 4, PROT_READ);
	addr = mremap_check(&mm, PG(0), NP(4), NP(8), MREMAP_MAYMOVE, 0);
	/* Top-down: the highest free range. */
	assert_int_equal(addr, TOP - NP(8));
	EXPECT_LAYOUT(&mm, { 4, 8 }, { ARENA_PAGES - 8, ARENA_PAGES });
	assert_int_equal(access_at(&mm, ARENA_PAGES - 1), VM_READ | VM_WRITE);
	/* The moved VMA was opened and the old one closed. */
	assert_int_equal(opens - closes, 2);
}

static void test_mremap_fixed(void **state)
{
	(void)state;
	filemap(&mm, 0, 8, PROT_READ, MAP_SHARED, &file_a, 40);
	anon(&mm, 20, 8, RW);
	/* Move pages 2..5 onto the middle of the anonymous VMA. */
	assert_int_equal(mremap_check(&mm, PG(2), NP(4), NP(4),
				      MREMAP_MAYMOVE | MREMAP_FIXED, PG(22)),
			 PG(22));
	EXPECT_LAYOUT(&mm, { 0, 2 }, { 6, 8 }, { 20, 22 }, { 22, 26 },
		      { 26, 28 });
	assert_int_equal(vma_at(&mm, 22)->vm_pgoff, 42);
	assert_ptr_equal(vma_at(&mm, 22)->vm_file, &file_a);
	EXPECT_RMAP(&file_a, 43, 43, { &mm, 22, 26 });
	/* Fixed with a smaller new_len drops the tail of the old range. */
	assert_int_equal(mremap_check(&mm, PG(22), NP(4), NP(2),
				      MREMAP_MAYMOVE | MREMAP_FIXED, PG(2)),
			 PG(2));
	EXPECT_LAYOUT(&mm, { 0, 4 }, { 6, 8 }, { 20, 22 }, { 26, 28 });
	assert_int_equal(vma_at(&mm, 0)->vm_pgoff, 40);
}

static void test_mremap_fixed_bad_args_einval(void **state)
{
	(void)state;
	anon(&mm, 0, 8, RW);
	/* FIXED without MAYMOVE. */
	assert_int_equal(mremap_check(&mm, PG(0), NP(4), NP(4), MREMAP_FIXED,
				      PG(20)),
			 -EINVAL);
	/* Overlapping old and new ranges. */
	assert_int_equal(mremap_check(&mm, PG(0), NP(4), NP(4),
				      MREMAP_MAYMOVE | MREMAP_FIXED, PG(2)),
			 -EINVAL);
	/* Unaligned new address, unaligned old address, zero new length. */
	assert_int_equal(mremap_check(&mm, PG(0), NP(4), NP(4),
				      MREMAP_MAYMOVE | MREMAP_FIXED,
				      PG(20) + 4),
			 -EINVAL);
	assert_int_equal(mremap_check(&mm, PG(0) + 4, NP(4), NP(4),
				      MREMAP_MAYMOVE, 0),
			 -EINVAL);
	assert_int_equal(mremap_check(&mm, PG(0), NP(4), 0, MREMAP_MAYMOVE,
				      0),
			 -EINVAL);
	/* Unknown flag; DONTUNMAP without MAYMOVE or with a size change. */
	assert_int_equal(mremap_check(&mm, PG(0), NP(4), NP(4), 0x40, 0),
			 -EINVAL);
	assert_int_equal(mremap_check(&mm, PG(0), NP(4), NP(4),
				      MREMAP_DONTUNMAP, 0),
			 -EINVAL);
	assert_int_equal(mremap_check(&mm, PG(0), NP(4), NP(6),
				      MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0),
			 -EINVAL);
	EXPECT_LAYOUT(&mm, { 0, 8 });
}

static void test_mremap_dontunmap(void **state)
{
	(void)state;
	filemap(&mm, 0, 8, PROT_READ, MAP_PRIVATE, &file_a, 0);
	assert_int_equal(mremap_check(&mm, PG(0), NP(4), NP(4),
				      MREMAP_MAYMOVE | MREMAP_DONTUNMAP |
					      MREMAP_FIXED,
				      PG(30)),
			 PG(30));
	/* The old range stays mapped; the new one maps the same pages. */
	EXPECT_LAYOUT(&mm, { 0, 8 }, { 30, 34 });
	assert_int_equal(vma_at(&mm, 30)->vm_pgoff, 0);
	EXPECT_RMAP(&file_a, 2, 2, { &mm, 0, 8 }, { &mm, 30, 34 });
	/* Without FIXED it goes top-down. */
	assert_int_equal(mremap_check(&mm, PG(4), NP(2), NP(2),
				      MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0),
			 TOP - NP(2));
	assert_int_equal(vma_at(&mm, ARENA_PAGES - 1)->vm_pgoff, 4);
	EXPECT_LAYOUT(&mm, { 0, 8 }, { 30, 34 },
		      { ARENA_PAGES - 2, ARENA_PAGES });
}

static void test_mremap_efault_spans_two_vmas(void **state)
{
	(void)state;
	anon(&mm, 0, 4, RW);
	anon(&mm, 4, 4, PROT_READ);
	assert_int_equal(mremap_check(&mm, PG(2), NP(4), NP(8),
				      MREMAP_MAYMOVE, 0),
			 -EFAULT);
	assert_int_equal(mremap_check(&mm, PG(2), NP(4), NP(4),
				      MREMAP_MAYMOVE | MREMAP_FIXED, PG(20)),
			 -EFAULT);
	EXPECT_LAYOUT(&mm, { 0, 4 }, { 4, 8 });
}

static void test_mremap_efault_unmapped(void **state)
{
	(void)state;
	anon(&mm, 0, 4, RW);
	assert_int_equal(mremap_check(&mm, PG(10), NP(2), NP(4),
				      MREMAP_MAYMOVE, 0),
			 -EFAULT);
	/* Starts mapped but runs into a hole. */
	assert_int_equal(mremap_check(&mm, PG(2), NP(4), NP(4),
				      MREMAP_MAYMOVE | MREMAP_FIXED, PG(20)),
			 -EFAULT);
	/* The destination must not have been unmapped by the failure. */
	anon(&mm, 30, 4, PROT_READ);
	assert_int_equal(mremap_check(&mm, PG(10), NP(2), NP(2),
				      MREMAP_MAYMOVE | MREMAP_FIXED, PG(30)),
			 -EFAULT);
	EXPECT_LAYOUT(&mm, { 0, 4 }, { 30, 34 });
}

static void test_mremap_move_file_keeps_pgoff_and_rmap(void **state)
{
	long addr;

	(void)state;
	filemap(&mm, 0, 10, PROT_READ, MAP_SHARED, &file_a, 100);
	filemap(&mm2, 0, 10, PROT_READ, MAP_SHARED, &file_a, 100);
	anon(&mm, 10, 1, RW);
	/* Move and grow pages 104..107 of mm's mapping. */
	addr = mremap_check(&mm, PG(4), NP(4), NP(6), MREMAP_MAYMOVE, 0);
	assert_int_equal(addr, TOP - NP(6));
	EXPECT_LAYOUT(&mm, { 0, 4 }, { 8, 10 }, { 10, 11 },
		      { ARENA_PAGES - 6, ARENA_PAGES });
	assert_int_equal(vma_at(&mm, ARENA_PAGES - 6)->vm_pgoff, 104);
	assert_int_equal(vma_at(&mm, 8)->vm_pgoff, 108);
	EXPECT_RMAP(&file_a, 104, 104, { &mm2, 0, 10 },
		    { &mm, ARENA_PAGES - 6, ARENA_PAGES });
	EXPECT_RMAP(&file_a, 109, 109, { &mm2, 0, 10 }, { &mm, 8, 10 },
		    { &mm, ARENA_PAGES - 6, ARENA_PAGES });
	EXPECT_RMAP_NONE(&file_a, 110, 200);
	/* Moving it back where it came from re-merges the three pieces. */
	assert_int_equal(mremap_check(&mm, TOP - NP(6), NP(6), NP(4),
				      MREMAP_MAYMOVE | MREMAP_FIXED, PG(4)),
			 PG(4));
	EXPECT_LAYOUT(&mm, { 0, 10 }, { 10, 11 });
	assert_int_equal(file_a.i_mmap_count, 2);
}

/* ---- dup_mmap and exit_mmap ------------------------------------------ */

static void test_dup_mmap_copies_layout(void **state)
{
	struct vm_area_struct *a, *b;

	(void)state;
	anon(&mm, 0, 4, RW);
	filemap(&mm, 4, 4, PROT_READ | PROT_EXEC, MAP_PRIVATE, &file_a, 7);
	filemap(&mm, 10, 2, RW, MAP_SHARED, &file_b, 0);
	assert_int_equal(dup_mmap(&mm2, &mm), 0);
	check_all();
	EXPECT_LAYOUT(&mm2, { 0, 4 }, { 4, 8 }, { 10, 12 });
	for (a = mm_first_vma(&mm), b = mm_first_vma(&mm2); a && b;
	     a = vma_next(a), b = vma_next(b)) {
		assert_ptr_not_equal(a, b);
		assert_ptr_equal(b->vm_mm, &mm2);
		assert_int_equal(a->vm_flags, b->vm_flags);
		assert_ptr_equal(a->vm_file, b->vm_file);
		assert_ptr_equal(a->vm_ops, b->vm_ops);
		if (a->vm_file)
			assert_int_equal(a->vm_pgoff, b->vm_pgoff);
	}
	assert_int_equal(mm2.total_vm, mm.total_vm);
	/* The copies are independent. */
	assert_int_equal(munmap_check(&mm2, PG(0), NP(12)), 0);
	EXPECT_LAYOUT(&mm, { 0, 4 }, { 4, 8 }, { 10, 12 });
}

static void test_dup_mmap_skips_dontcopy(void **state)
{
	struct mmap_req req = anon_req(4, 4, RW);

	(void)state;
	anon(&mm, 0, 4, PROT_READ);
	req.vm_flags = VM_DONTCOPY;
	map_ok(&mm, req);
	anon(&mm, 8, 4, RW);
	assert_int_equal(dup_mmap(&mm2, &mm), 0);
	check_all();
	EXPECT_LAYOUT(&mm2, { 0, 4 }, { 8, 12 });
}

static void test_dup_mmap_clears_locked(void **state)
{
	struct mmap_req req = file_req(0, 4, PROT_READ, MAP_SHARED, &file_a,
				       0);

	(void)state;
	req.vm_flags = VM_LOCKED;
	map_ok(&mm, req);
	assert_true(vma_at(&mm, 0)->vm_flags & VM_LOCKED);
	assert_int_equal(dup_mmap(&mm2, &mm), 0);
	check_all();
	EXPECT_LAYOUT(&mm2, { 0, 4 });
	assert_false(vma_at(&mm2, 0)->vm_flags & VM_LOCKED);
	assert_int_equal(vma_at(&mm2, 0)->vm_flags,
			 vma_at(&mm, 0)->vm_flags & ~VM_LOCKED);
}

static void test_dup_mmap_rmap_has_both(void **state)
{
	(void)state;
	filemap(&mm, 0, 6, PROT_READ, MAP_SHARED, &file_a, 7);
	assert_int_equal(dup_mmap(&mm2, &mm), 0);
	check_all();
	assert_int_equal(file_a.i_mmap_count, 2);
	EXPECT_RMAP(&file_a, 10, 10, { &mm, 0, 6 }, { &mm2, 0, 6 });
	exit_mmap(&mm);
	check_all();
	EXPECT_RMAP(&file_a, 10, 10, { &mm2, 0, 6 });
}

static void test_dup_mmap_counts_opens(void **state)
{
	(void)state;
	anon(&mm, 0, 4, RW);
	anon(&mm, 6, 4, RW);
	assert_int_equal(opens - closes, 2);
	assert_int_equal(dup_mmap(&mm2, &mm), 0);
	check_all();
	assert_int_equal(opens - closes, 4);
}

static void test_exit_mmap_tears_down(void **state)
{
	(void)state;
	anon(&mm, 0, 4, RW);
	filemap(&mm, 4, 4, PROT_READ, MAP_SHARED, &file_a, 0);
	filemap(&mm, 10, 4, PROT_READ, MAP_PRIVATE, &file_b, 3);
	exit_mmap(&mm);
	check_all();
	EXPECT_EMPTY(&mm);
	assert_int_equal(mm.total_vm, 0);
	assert_null(find_vma(&mm, BASE));
	assert_int_equal(opens, closes);
	assert_int_equal(file_a.i_mmap_count, 0);
	assert_int_equal(file_b.i_mmap_count, 0);
	EXPECT_RMAP_NONE(&file_a, 0, ~0UL);
	/* The mm is reusable. */
	anon(&mm, 0, 4, RW);
	EXPECT_LAYOUT(&mm, { 0, 4 });
	exit_mmap(&mm2); /* exiting an empty mm is fine */
	check_all();
}

/* ---- max_map_count ---------------------------------------------------- */

/* At the limit, anything needing one more VMA fails and changes nothing. */
static void test_max_map_count_limits(void **state)
{
	(void)state;
	mm.max_map_count = 2;
	anon(&mm, 0, 4, RW);
	anon(&mm, 10, 4, PROT_READ);
	assert_int_equal(mmap_check(&mm, anon_req(20, 1, PROT_EXEC)), -ENOMEM);
	assert_int_equal(munmap_check(&mm, PG(1), NP(1)), -ENOMEM);
	assert_int_equal(mprotect_check(&mm, PG(1), NP(1), PROT_READ),
			 -ENOMEM);
	EXPECT_LAYOUT(&mm, { 0, 4 }, { 10, 14 });
	/* Trimming and changing a whole VMA need no new one. */
	assert_int_equal(munmap_check(&mm, PG(0), NP(1)), 0);
	assert_int_equal(mprotect_check(&mm, PG(10), NP(4), RW), 0);
	EXPECT_LAYOUT(&mm, { 1, 4 }, { 10, 14 });
}

/* A map that merges into a neighbour adds no VMA: allowed at the limit. */
static void test_max_map_count_allows_merging_map(void **state)
{
	(void)state;
	mm.max_map_count = 2;
	anon(&mm, 0, 4, RW);
	anon(&mm, 10, 4, PROT_READ);
	anon(&mm, 4, 2, RW);
	EXPECT_LAYOUT(&mm, { 0, 6 }, { 10, 14 });
	assert_int_equal(mmap_check(&mm, file_req(20, 1, PROT_READ, MAP_SHARED,
						  &file_a, 0)),
			 -ENOMEM);
}

/* ---- lookups ---------------------------------------------------------- */

static void test_find_vma_and_friends(void **state)
{
	struct vm_area_struct *prev = NULL, *vma;

	(void)state;
	anon(&mm, 4, 4, RW);
	anon(&mm, 10, 2, PROT_READ);
	assert_int_equal(find_vma(&mm, PG(0))->vm_start, PG(4));
	assert_int_equal(find_vma(&mm, PG(7) + 100)->vm_start, PG(4));
	assert_int_equal(find_vma(&mm, PG(8))->vm_start, PG(10));
	assert_null(find_vma(&mm, PG(12)));
	vma = find_vma_prev(&mm, PG(9), &prev);
	assert_int_equal(vma->vm_start, PG(10));
	assert_int_equal(prev->vm_start, PG(4));
	vma = find_vma_prev(&mm, PG(2), &prev);
	assert_int_equal(vma->vm_start, PG(4));
	assert_null(prev);
	assert_null(find_vma_intersection(&mm, PG(8), PG(10)));
	assert_int_equal(find_vma_intersection(&mm, PG(0), PG(20))->vm_start,
			 PG(4));
	assert_int_equal(find_vma_intersection(&mm, PG(9), PG(11))->vm_start,
			 PG(10));
	assert_ptr_equal(vma_prev(find_vma(&mm, PG(10))), find_vma(&mm, PG(4)));
}

/* ---- reverse map ------------------------------------------------------ */

/*
 * Two processes map pages [7, 12] of a file, a third maps [10, 30]: the
 * example with which the reverse map is usually explained.
 */
static void map_seed_example(void)
{
	filemap(&mm, 100, 6, PROT_READ, MAP_SHARED, &file_a, 7);
	filemap(&mm2, 200, 6, PROT_READ, MAP_PRIVATE, &file_a, 7);
	filemap(&mm3, 300, 21, PROT_READ, MAP_SHARED, &file_a, 10);
}

static void test_rmap_seed_example_queries(void **state)
{
	(void)state;
	map_seed_example();
	assert_int_equal(file_a.i_mmap_count, 3);
	EXPECT_RMAP_NONE(&file_a, 0, 6);
	EXPECT_RMAP(&file_a, 0, 8, { &mm, 100, 106 }, { &mm2, 200, 206 });
	EXPECT_RMAP(&file_a, 7, 7, { &mm, 100, 106 }, { &mm2, 200, 206 });
	EXPECT_RMAP(&file_a, 11, 11, { &mm, 100, 106 }, { &mm2, 200, 206 },
		    { &mm3, 300, 321 });
	EXPECT_RMAP(&file_a, 12, 12, { &mm, 100, 106 }, { &mm2, 200, 206 },
		    { &mm3, 300, 321 });
	EXPECT_RMAP(&file_a, 10, 10, { &mm, 100, 106 }, { &mm2, 200, 206 },
		    { &mm3, 300, 321 });
	EXPECT_RMAP(&file_a, 13, 40, { &mm3, 300, 321 });
	EXPECT_RMAP(&file_a, 30, 30, { &mm3, 300, 321 });
	EXPECT_RMAP_NONE(&file_a, 31, 40);
	EXPECT_RMAP(&file_a, 0, ~0UL, { &mm, 100, 106 }, { &mm2, 200, 206 },
		    { &mm3, 300, 321 });
	EXPECT_RMAP_NONE(&file_b, 0, ~0UL);
	/* The address of a page in each mapping. */
	assert_int_equal(vma_address(vma_at(&mm3, 300), 12), PG(302));
	assert_int_equal(vma_pgoff_at(vma_at(&mm, 100), PG(105)), 12);
}

static void test_rmap_after_munmap(void **state)
{
	(void)state;
	map_seed_example();
	/* The third process unmaps file pages 15..19: its VMA splits. */
	assert_int_equal(munmap_check(&mm3, PG(305), NP(5)), 0);
	EXPECT_RMAP(&file_a, 13, 40, { &mm3, 300, 305 }, { &mm3, 310, 321 });
	EXPECT_RMAP_NONE(&file_a, 15, 19);
	EXPECT_RMAP(&file_a, 19, 20, { &mm3, 310, 321 });
	/* The first process unmaps all of it. */
	assert_int_equal(munmap_check(&mm, PG(100), NP(6)), 0);
	EXPECT_RMAP(&file_a, 0, 8, { &mm2, 200, 206 });
}

static void test_rmap_after_mprotect(void **state)
{
	(void)state;
	map_seed_example();
	assert_int_equal(mprotect_check(&mm, PG(102), NP(1), PROT_NONE), 0);
	EXPECT_RMAP(&file_a, 9, 9, { &mm, 102, 103 }, { &mm2, 200, 206 });
	EXPECT_RMAP(&file_a, 8, 10, { &mm, 100, 102 }, { &mm, 102, 103 },
		    { &mm, 103, 106 }, { &mm2, 200, 206 }, { &mm3, 300, 321 });
	assert_int_equal(mprotect_check(&mm, PG(102), NP(1), PROT_READ), 0);
	EXPECT_RMAP(&file_a, 9, 9, { &mm, 100, 106 }, { &mm2, 200, 206 });
}

static void test_rmap_after_madvise(void **state)
{
	(void)state;
	map_seed_example();
	assert_int_equal(madvise_check(&mm3, PG(310), NP(11),
				       MADV_SEQUENTIAL),
			 0);
	EXPECT_RMAP(&file_a, 19, 21, { &mm3, 300, 310 }, { &mm3, 310, 321 });
	EXPECT_RMAP(&file_a, 25, 25, { &mm3, 310, 321 });
}

static void test_rmap_after_mremap(void **state)
{
	(void)state;
	map_seed_example();
	/* Grow the third mapping in place to page 40 of the file. */
	assert_int_equal(mremap_check(&mm3, PG(300), NP(21), NP(31), 0, 0),
			 PG(300));
	EXPECT_RMAP(&file_a, 35, 40, { &mm3, 300, 331 });
	/* Move the first one elsewhere. */
	assert_int_equal(mremap_check(&mm, PG(100), NP(6), NP(6),
				      MREMAP_MAYMOVE | MREMAP_FIXED, PG(500)),
			 PG(500));
	EXPECT_RMAP(&file_a, 12, 12, { &mm, 500, 506 }, { &mm2, 200, 206 },
		    { &mm3, 300, 331 });
	/* Shrink the second. */
	assert_int_equal(mremap_check(&mm2, PG(200), NP(6), NP(2), 0, 0),
			 PG(200));
	EXPECT_RMAP(&file_a, 9, 12, { &mm, 500, 506 }, { &mm3, 300, 331 });
}

static void test_rmap_after_merge(void **state)
{
	(void)state;
	map_seed_example();
	/* Extending the first mapping by file pages 13..15 merges. */
	filemap(&mm, 106, 3, PROT_READ, MAP_SHARED, &file_a, 13);
	EXPECT_LAYOUT(&mm, { 100, 109 });
	EXPECT_RMAP(&file_a, 14, 14, { &mm, 100, 109 }, { &mm3, 300, 321 });
	assert_int_equal(file_a.i_mmap_count, 3);
}

static void test_rmap_after_fork_and_exit(void **state)
{
	(void)state;
	map_seed_example();
	/* The child must start empty: the second process exits first. */
	exit_mmap(&mm2);
	check_all();
	assert_int_equal(dup_mmap(&mm2, &mm3), 0);
	check_all();
	EXPECT_RMAP(&file_a, 20, 20, { &mm2, 300, 321 }, { &mm3, 300, 321 });
	exit_mmap(&mm3);
	check_all();
	EXPECT_RMAP(&file_a, 0, 40, { &mm, 100, 106 }, { &mm2, 300, 321 });
}

/* ---- vm_ops balance ---------------------------------------------------- */

static void test_ops_balanced_over_a_sequence(void **state)
{
	struct mmap_req req;

	(void)state;
	filemap(&mm, 0, 16, RW, MAP_SHARED, &file_a, 0);
	assert_int_equal(mprotect_check(&mm, PG(4), NP(4), PROT_READ), 0);
	assert_int_equal(munmap_check(&mm, PG(10), NP(2)), 0);
	assert_int_equal(madvise_check(&mm, PG(12), NP(2), MADV_RANDOM), 0);
	filemap(&mm, 10, 2, RW, MAP_SHARED, &file_a, 10);
	assert_int_equal(mprotect_check(&mm, PG(0), NP(16), RW), 0);
	assert_int_equal(madvise_check(&mm, PG(0), NP(16), MADV_NORMAL), 0);
	EXPECT_LAYOUT(&mm, { 0, 16 });
	assert_int_equal(mremap_check(&mm, PG(2), NP(2), NP(4),
				      MREMAP_MAYMOVE, 0),
			 TOP - NP(4));
	req = anon_req(20, 4, RW);
	req.ops = &ops_b;
	map_ok(&mm, req);
	assert_int_equal(dup_mmap(&mm2, &mm), 0);
	check_all();
	assert_int_equal(munmap_check(&mm, PG(0), TOP - BASE), 0);
	assert_int_equal(opens - closes, mm2.map_count);
	exit_mmap(&mm2);
	check_all();
	assert_int_equal(opens, closes);
}

/* A VMA without ops (NULL) is legal and merges with its own kind only. */
static void test_ops_null_allowed(void **state)
{
	struct mmap_req req = anon_req(0, 4, RW);

	(void)state;
	req.ops = NULL;
	map_ok(&mm, req);
	req.addr = PG(4);
	map_ok(&mm, req);
	anon(&mm, 8, 4, RW);
	EXPECT_LAYOUT(&mm, { 0, 8 }, { 8, 12 });
	assert_null(vma_at(&mm, 0)->vm_ops);
	assert_int_equal(munmap_check(&mm, PG(2), NP(8)), 0);
	EXPECT_LAYOUT(&mm, { 0, 2 }, { 10, 12 });
}

/* ---- /proc/PID/maps format -------------------------------------------- */

/*
 * The kernel's line: fixed fields, then (only when there is a name) spaces
 * up to column 72, one more space, and the name.
 */
static int expected_maps_line(char *buf, size_t size, unsigned long start,
			      unsigned long end, const char *perms,
			      unsigned long long off, unsigned int maj,
			      unsigned int min, unsigned long ino,
			      const char *path)
{
	int n = snprintf(buf, size, "%08lx-%08lx %s %08llx %02x:%02x %lu ",
			 start, end, perms, off, maj, min, ino);

	if (path) {
		while (n < 72)
			buf[n++] = ' ';
		n += snprintf(buf + n, size - n, " %s", path);
	}
	return n;
}

struct maps_line {
	unsigned long start, end, ino;
	unsigned long long off;
	unsigned int maj, min;
	char perms[5];
	const char *path; /* points into the line, or NULL */
};

static int parse_maps_line(char *line, struct maps_line *ml)
{
	int n = 0;

	line[strcspn(line, "\n")] = '\0';
	if (sscanf(line, "%lx-%lx %4s %llx %x:%x %lu %n", &ml->start, &ml->end,
		   ml->perms, &ml->off, &ml->maj, &ml->min, &ml->ino,
		   &n) != 7)
		return -1;
	ml->path = line[n] ? line + n : NULL;
	return 0;
}

/* First, that the expectation above really is this kernel's format. */
static void test_maps_expectation_matches_proc_self_maps(void **state)
{
	char line[512], want[512];
	struct maps_line ml;
	int lines = 0, named = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	(void)state;
	if (!f)
		skip();
	while (fgets(line, sizeof(line), f)) {
		char orig[512];

		strcpy(orig, line);
		orig[strcspn(orig, "\n")] = '\0';
		assert_int_equal(parse_maps_line(line, &ml), 0);
		expected_maps_line(want, sizeof(want), ml.start, ml.end,
				   ml.perms, ml.off, ml.maj, ml.min, ml.ino,
				   ml.path);
		assert_string_equal(want, orig);
		lines++;
		named += ml.path != NULL;
	}
	fclose(f);
	assert_true(lines > 3 && named > 0);
}

static void test_maps_format_anon(void **state)
{
	char buf[256], want[256];
	struct vm_area_struct *vma;
	int n;

	(void)state;
	anon(&mm, 0, 4, RW);
	vma = vma_at(&mm, 0);
	n = vma_format_maps(vma, NULL, buf, sizeof(buf));
	assert_string_equal(buf, "10000000-10004000 rw-p 00000000 00:00 0 ");
	assert_int_equal(n, strlen(buf));
	/* A named anonymous region, as [heap] or [stack]. */
	n = vma_format_maps(vma, "[heap]", buf, sizeof(buf));
	expected_maps_line(want, sizeof(want), PG(0), PG(4), "rw-p", 0, 0, 0,
			   0, "[heap]");
	assert_string_equal(buf, want);
	assert_int_equal(n, 79);
	assert_int_equal(strchr(buf, '[') - buf, 73);
}

static void test_maps_format_file_padded(void **state)
{
	char buf[256];
	int n;

	(void)state;
	filemap(&mm, 0, 2, PROT_READ | PROT_EXEC, MAP_PRIVATE, &file_a, 0x12f);
	n = vma_format_maps(vma_at(&mm, 0), "/lib/libc.so.6", buf,
			    sizeof(buf));
	assert_string_equal(buf, "10000000-10002000 r-xp 0012f000 08:01 1234"
				 "                               "
				 "/lib/libc.so.6");
	assert_int_equal(n, 87);
	/* Without a path the line stops after the inode and its space. */
	vma_format_maps(vma_at(&mm, 0), NULL, buf, sizeof(buf));
	assert_string_equal(buf, "10000000-10002000 r-xp 0012f000 08:01 1234 ");
}

static void test_maps_format_perms_and_devices(void **state)
{
	struct address_space big;
	struct mmap_req req;
	char buf[256], want[256];

	(void)state;
	address_space_init(&big, makedev(259, 3), 4000000000UL);
	req = file_req(0, 1, RW, MAP_SHARED, &big, 1);
	map_ok(&mm, req);
	vma_format_maps(vma_at(&mm, 0), "/data/x", buf, sizeof(buf));
	expected_maps_line(want, sizeof(want), PG(0), PG(1), "rw-s", 0x1000,
			   259, 3, 4000000000UL, "/data/x");
	assert_string_equal(buf, want);
	assert_non_null(strstr(buf, " 103:03 "));
	/* A shared mapping of a read-only fd still reads 's'. */
	req = file_req(2, 1, PROT_READ, MAP_SHARED, &file_b, 0);
	req.fmode = MAP_FMODE_READ;
	map_ok(&mm, req);
	vma_format_maps(vma_at(&mm, 2), NULL, buf, sizeof(buf));
	assert_string_equal(buf, "10002000-10003000 r--s 00000000 08:01 5678 ");
	anon(&mm, 4, 1, PROT_NONE);
	vma_format_maps(vma_at(&mm, 4), NULL, buf, sizeof(buf));
	assert_string_equal(buf, "10004000-10005000 ---p 00000000 00:00 0 ");
	anon(&mm, 6, 1, PROT_READ | PROT_WRITE | PROT_EXEC);
	vma_format_maps(vma_at(&mm, 6), NULL, buf, sizeof(buf));
	assert_string_equal(buf, "10006000-10007000 rwxp 00000000 00:00 0 ");
	exit_mmap(&mm);
	assert_int_equal(validate_rmap(&big), 0);
}

/*
 * When the fixed fields already reach column 72 (big offset, device and
 * inode on a 64-bit address), the kernel still puts one space before the
 * path.
 */
static void test_maps_format_long_prefix_keeps_one_space(void **state)
{
	unsigned long start = 0x7f0000000000UL;
	struct address_space as;
	struct mm_struct big;
	struct mmap_req req = {
		.addr = start, .len = PAGE_SIZE, .prot = PROT_READ,
		.flags = MAP_PRIVATE | MAP_FIXED, .obj = &as,
		.pgoff = 0xffffffffffUL, .fmode = FMODE_ALL,
	};
	struct vm_area_struct *vma = NULL;
	char buf[256], want[256];
	int n, w;

	(void)state;
	mm_init(&big, PAGE_SIZE, 1UL << 47);
	address_space_init(&as, makedev(259, 3), 18446744073709551615UL);
	assert_int_equal(do_mmap(&big, &req, &vma), start);
	n = vma_format_maps(vma, "/x", buf, sizeof(buf));
	w = expected_maps_line(want, sizeof(want), start, start + PAGE_SIZE,
			       "r--p", 0xffffffffffULL << PAGE_SHIFT, 259, 3,
			       18446744073709551615UL, "/x");
	exit_mmap(&big);
	assert_true(w > 75);
	assert_string_equal(buf, want);
	assert_int_equal(n, w);
}

static void test_maps_format_small_buffer(void **state)
{
	char buf[16];
	int n;

	(void)state;
	filemap(&mm, 0, 2, PROT_READ, MAP_PRIVATE, &file_a, 0);
	n = vma_format_maps(vma_at(&mm, 0), "/some/path", buf, sizeof(buf));
	assert_int_equal(n, 73 + strlen("/some/path"));
	assert_int_equal(strlen(buf), sizeof(buf) - 1);
	assert_memory_equal(buf, "10000000-10002000", sizeof(buf) - 1);
}

/*
 * Byte for byte against the kernel: every line of this process's own maps
 * is mapped on an mm whose arena spans the user address space and printed
 * back.
 */
static void test_maps_format_replays_proc_self_maps(void **state)
{
	char line[512], orig[512], buf[512];
	struct maps_line ml;
	struct mm_struct big;
	int replayed = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	(void)state;
	if (!f)
		skip();
	mm_init(&big, PAGE_SIZE, 1UL << 47);
	while (fgets(line, sizeof(line), f)) {
		struct address_space as;
		struct mmap_req req = { 0 };
		struct vm_area_struct *vma = NULL;

		strcpy(orig, line);
		orig[strcspn(orig, "\n")] = '\0';
		assert_int_equal(parse_maps_line(line, &ml), 0);
		if (ml.end > (1UL << 47) || ml.start < PAGE_SIZE)
			continue;
		if (ml.perms[3] == 's' && !ml.ino)
			continue;
		req.addr = ml.start;
		req.len = ml.end - ml.start;
		req.prot = (ml.perms[0] == 'r' ? PROT_READ : 0) |
			   (ml.perms[1] == 'w' ? PROT_WRITE : 0) |
			   (ml.perms[2] == 'x' ? PROT_EXEC : 0);
		req.flags = MAP_FIXED |
			    (ml.perms[3] == 's' ? MAP_SHARED : MAP_PRIVATE);
		if (ml.ino || ml.maj || ml.min) {
			address_space_init(&as, makedev(ml.maj, ml.min),
					   ml.ino);
			req.obj = &as;
			req.pgoff = ml.off >> PAGE_SHIFT;
			req.fmode = FMODE_ALL;
		} else {
			req.flags |= MAP_ANONYMOUS;
		}
		assert_int_equal(do_mmap(&big, &req, &vma), ml.start);
		assert_int_equal(validate_mm(&big), 0);
		assert_non_null(vma);
		vma_format_maps(vma, ml.path, buf, sizeof(buf));
		if (strcmp(buf, orig)) {
			fprintf(stderr, "kernel: '%s'\nengine: '%s'\n", orig,
				buf);
			fail();
		}
		exit_mmap(&big);
		replayed++;
	}
	fclose(f);
	assert_true(replayed > 3);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_mmap_merge_new_after_existing),
		T(test_mmap_merge_new_before_existing),
		T(test_mmap_merge_new_between_two),
		T(test_mmap_merge_file_contiguous_pgoff),
		T(test_mmap_no_merge_when_flags_differ),
		T(test_mmap_no_merge_when_object_differs),
		T(test_mmap_no_merge_when_pgoff_not_contiguous),
		T(test_mmap_no_merge_when_special),
		T(test_mmap_no_merge_when_ops_differ),
		T(test_mmap_anon_private_merges_on_flags),
		T(test_mmap_fixed_replaces_middle),
		T(test_mmap_out_returns_holding_vma),
		T(test_mmap_vm_flags_from_prot_and_flags),
		T(test_mmap_len_zero_einval),
		T(test_mmap_fixed_unaligned_einval),
		T(test_mmap_neither_shared_nor_private_einval),
		T(test_mmap_both_shared_and_private_is_shared_validate),
		T(test_mmap_exec_on_noexec_fd),
		T(test_mmap_fd_not_readable_eacces),
		T(test_mmap_shared_write_on_readonly_fd_eacces),
		T(test_mmap_failed_fixed_leaves_mapping),
		T(test_gua_hint_honoured_when_free),
		T(test_gua_hint_ignored_when_taken),
		T(test_gua_topdown_highest_gap),
		T(test_gua_map_fixed_replaces),
		T(test_gua_fixed_noreplace_eexist),
		T(test_gua_enomem_when_nothing_fits),
		T(test_gua_arena_bounds),
		T(test_munmap_truncate_start),
		T(test_munmap_truncate_end),
		T(test_munmap_split_middle),
		T(test_munmap_delete_whole),
		T(test_munmap_across_vmas_and_holes),
		T(test_munmap_nothing_mapped_succeeds),
		T(test_munmap_len_zero_einval),
		T(test_munmap_unaligned_start_einval),
		T(test_munmap_unaligned_len_rounds_up),
		T(test_munmap_wraparound_einval),
		T(test_munmap_outside_arena_einval),
		T(test_mprotect_split_at_start),
		T(test_mprotect_split_at_end),
		T(test_mprotect_split_middle),
		T(test_mprotect_whole_vma_changes_in_place),
		T(test_mprotect_remerges_with_neighbours),
		T(test_mprotect_across_vmas_merges_all),
		T(test_mprotect_write_on_shared_readonly_fd_eacces),
		T(test_mprotect_eacces_changes_nothing),
		T(test_mprotect_hole_enomem_changes_nothing),
		T(test_mprotect_bad_args),
		T(test_madvise_sequential_splits),
		T(test_madvise_random_replaces_sequential),
		T(test_madvise_dontfork_dofork),
		T(test_madvise_dontdump_dodump),
		T(test_madvise_hole_enomem_applies_rest),
		T(test_madvise_other_advice_only_checks),
		T(test_mremap_shrink),
		T(test_mremap_same_size_is_noop),
		T(test_mremap_grow_in_place),
		T(test_mremap_grow_in_place_merges_next),
		T(test_mremap_grow_blocked_enomem),
		T(test_mremap_grow_moves_with_maymove),
		T(test_mremap_fixed),
		T(test_mremap_fixed_bad_args_einval),
		T(test_mremap_dontunmap),
		T(test_mremap_efault_spans_two_vmas),
		T(test_mremap_efault_unmapped),
		T(test_mremap_move_file_keeps_pgoff_and_rmap),
		T(test_dup_mmap_copies_layout),
		T(test_dup_mmap_skips_dontcopy),
		T(test_dup_mmap_clears_locked),
		T(test_dup_mmap_rmap_has_both),
		T(test_dup_mmap_counts_opens),
		T(test_exit_mmap_tears_down),
		T(test_max_map_count_limits),
		T(test_max_map_count_allows_merging_map),
		T(test_find_vma_and_friends),
		T(test_rmap_seed_example_queries),
		T(test_rmap_after_munmap),
		T(test_rmap_after_mprotect),
		T(test_rmap_after_madvise),
		T(test_rmap_after_mremap),
		T(test_rmap_after_merge),
		T(test_rmap_after_fork_and_exit),
		T(test_ops_balanced_over_a_sequence),
		T(test_ops_null_allowed),
		T(test_maps_expectation_matches_proc_self_maps),
		T(test_maps_format_anon),
		T(test_maps_format_file_padded),
		T(test_maps_format_perms_and_devices),
		T(test_maps_format_long_prefix_keeps_one_space),
		T(test_maps_format_small_buffer),
		T(test_maps_format_replays_proc_self_maps),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_daemon_events.c - the program calls plain libc munmap/mremap/madvise
 * on memory the daemon manages, behind the library's back. The daemon
 * learns of it from UFFD_EVENT_UNMAP/REMAP/REMOVE, keeps its model equal
 * to the kernel's (nothing is ever placed in a hole the kernel made) and
 * goes on serving everything that is still mapped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#include <cmocka.h>

#include <upage/upage.h>

#include "upaged_harness.h"

#define PG 4096UL

static struct harness h;

static int group_setup(void **state)
{
	return harness_group_start(&h, 1UL << 30);
}

static int group_teardown(void **state)
{
	return harness_group_stop(&h);
}

static void test_munmap_behind_back(void **state)
{
	struct upage_stats_reply s0, s1;
	unsigned char *p, *q;

	p = upage_mmap(NULL, 64 * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_ptr_not_equal(p, MAP_FAILED);
	memset(p, 0xab, 8 * PG);
	assert_int_equal(upage_stats(&s0), 0);
	assert_int_equal(munmap(p + 16 * PG, 16 * PG), 0);
	assert_int_equal(upage_stats(&s1), 0);
	assert_int_equal(s1.mm.ev_unmap - s0.mm.ev_unmap, 1);
	/* Before and after the hole: still served. */
	assert_int_equal(p[0], 0xab);
	assert_int_equal(p[8 * PG], 0);
	assert_int_equal(p[40 * PG], 0);
	p[40 * PG] = 3;
	assert_int_equal(p[40 * PG], 3);
	/* The daemon must not place anything in the hole: the kernel may
	   have put something else there by now. */
	q = upage_mmap(p + 16 * PG, 16 * PG, PROT_READ, MAP_PRIVATE |
		       MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	assert_ptr_equal(q, MAP_FAILED);
	assert_int_equal(errno, EEXIST);
	for (int i = 0; i < 64; i++) {
		q = upage_mmap(NULL, 16 * PG, PROT_READ, MAP_PRIVATE |
			       MAP_ANONYMOUS, -1, 0);
		assert_ptr_not_equal(q, MAP_FAILED);
		assert_true(q + 16 * PG <= p + 16 * PG || q >= p + 32 * PG);
		assert_int_equal(q[PG], 0);
		assert_int_equal(upage_munmap(q, 16 * PG), 0);
	}
	/* The library's munmap over the hole reclaims it. */
	assert_int_equal(upage_munmap(p, 64 * PG), 0);
	q = upage_mmap(p, 64 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE |
		       MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	assert_ptr_equal(q, p);
	assert_int_equal(q[20 * PG], 0);
	q[20 * PG] = 9;
	assert_int_equal(q[20 * PG], 9);
	assert_int_equal(upage_munmap(q, 64 * PG), 0);
}

static void test_mremap_behind_back(void **state)
{
	struct upage_stats_reply s0, s1;
	unsigned char *p, *q;
	void *base;
	size_t size;

	assert_int_equal(upage_arena(&base, &size), 0);
	p = upage_mmap(NULL, 32 * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_ptr_not_equal(p, MAP_FAILED);
	for (size_t i = 0; i < 16; i++)
		p[i * PG] = (unsigned char)(i + 1);
	assert_int_equal(upage_stats(&s0), 0);
	q = mremap(p, 32 * PG, 64 * PG, MREMAP_MAYMOVE);
	assert_ptr_not_equal(q, MAP_FAILED);
	assert_int_equal(upage_stats(&s1), 0);
	if (q != p)
		assert_int_equal(s1.mm.ev_remap - s0.mm.ev_remap, 1);
	for (size_t i = 0; i < 16; i++)
		assert_int_equal(q[i * PG], i + 1);
	for (size_t i = 16; i < 64; i++)
		assert_int_equal(q[i * PG + 5], 0);
	q[63 * PG] = 7;
	assert_int_equal(q[63 * PG], 7);
	/* The daemon still works for new mappings, and not in the hole. */
	unsigned char *r = upage_mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_ptr_not_equal(r, MAP_FAILED);
	assert_true(r + 8 * PG <= p || r >= p + 32 * PG);
	memset(r, 1, 8 * PG);
	assert_int_equal(upage_munmap(r, 8 * PG), 0);
	if ((uintptr_t)q < (uintptr_t)base ||
	    (uintptr_t)q >= (uintptr_t)base + size)
		assert_int_equal(munmap(q, 64 * PG), 0);
	else
		assert_int_equal(upage_munmap(q, 64 * PG), 0);
	if (q != p)
		assert_int_equal(upage_munmap(p, 32 * PG), 0);
}

static void test_madvise_behind_back(void **state)
{
	struct upage_stats_reply s0, s1;
	unsigned char *p = upage_mmap(NULL, 32 * PG, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_ptr_not_equal(p, MAP_FAILED);
	memset(p, 0xcd, 32 * PG);
	assert_int_equal(upage_stats(&s0), 0);
	assert_int_equal(madvise(p, 16 * PG, MADV_DONTNEED), 0);
	assert_int_equal(upage_stats(&s1), 0);
	assert_int_equal(s1.mm.ev_remove - s0.mm.ev_remove, 1);
	for (size_t i = 0; i < 16 * PG; i++)
		assert_int_equal(p[i], 0);
	for (size_t i = 16 * PG; i < 32 * PG; i++)
		assert_int_equal(p[i], 0xcd);
	assert_int_equal(upage_stats(&s0), 0);
	/* The dropped pages came back through the daemon. */
	assert_true(s0.mm.fill_pages - s1.mm.fill_pages >= 16);
	assert_int_equal(upage_munmap(p, 32 * PG), 0);
}

static void test_remap_into_arena_behind_back(void **state)
{
	unsigned char *p, *q;
	void *base;
	size_t size;

	assert_int_equal(upage_arena(&base, &size), 0);
	p = upage_mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_ptr_not_equal(p, MAP_FAILED);
	memset(p, 0x31, 4 * PG);
	/* A libc MREMAP_FIXED into free reservation of the arena. */
	unsigned char *to = (unsigned char *)base + 8 * PG;
	q = mremap(p, 8 * PG, 8 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	assert_ptr_equal(q, to);
	assert_int_equal(q[0], 0x31);
	assert_int_equal(q[6 * PG], 0); /* served at its new place */
	/* The model followed: NOREPLACE over it is refused, over the old
	   place too (a hole now). */
	assert_ptr_equal(upage_mmap(to, PG, PROT_READ, MAP_PRIVATE |
				    MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1,
				    0), MAP_FAILED);
	assert_int_equal(errno, EEXIST);
	assert_ptr_equal(upage_mmap(p, PG, PROT_READ, MAP_PRIVATE |
				    MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1,
				    0), MAP_FAILED);
	assert_int_equal(upage_munmap(q, 8 * PG), 0);
	assert_int_equal(upage_munmap(p, 8 * PG), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_munmap_behind_back),
		cmocka_unit_test(test_mremap_behind_back),
		cmocka_unit_test(test_madvise_behind_back),
		cmocka_unit_test(test_remap_into_arena_behind_back),
	};

	if (access("/dev/userfaultfd", R_OK | W_OK) < 0 && geteuid() != 0)
		return 77;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

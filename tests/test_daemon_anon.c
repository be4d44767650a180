/*
 * test_daemon_anon.c - anonymous zero-fill through libupage and upaged:
 * large ranges read as zeroes and keep what is written, byte for byte;
 * munmap/mprotect/mremap/msync/madvise through the library with the
 * kernel's semantics and errno values; counters move as they should.
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
	return harness_group_start(&h, 1UL << 32);
}

static int group_teardown(void **state)
{
	return harness_group_stop(&h);
}

static void fill_pattern(unsigned char *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(i * 31 + seed + (i >> 12));
}

static void check_pattern(const unsigned char *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (unsigned char)(i * 31 + seed + (i >> 12)))
			fail_msg("byte %zu: %#x", i, p[i]);
}

static void check_zero(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			fail_msg("byte %zu not zero: %#x", i, p[i]);
}

static void test_zero_fill_large(void **state)
{
	size_t len = 96UL << 20;
	struct upage_stats_reply s0, s1;
	unsigned char *p;

	assert_int_equal(upage_stats(&s0), 0);
	p = upage_mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_ptr_not_equal(p, MAP_FAILED);
	void *base;
	size_t size;
	assert_int_equal(upage_arena(&base, &size), 0);
	assert_true((uintptr_t)p >= (uintptr_t)base &&
		    (uintptr_t)p + len <= (uintptr_t)base + size);
	check_zero(p, len);
	fill_pattern(p, len, 7);
	check_pattern(p, len, 7);
	assert_int_equal(upage_stats(&s1), 0);
	/* Every page came through the daemon, each exactly once. */
	assert_int_equal(s1.mm.fill_pages - s0.mm.fill_pages, len / PG);
	assert_true(s1.mm.faults - s0.mm.faults >= len / PG / s1.cluster);
	assert_true(s1.mm.faults - s0.mm.faults < len / PG);
	assert_int_equal(upage_munmap(p, len), 0);
}

static void test_write_first(void **state)
{
	size_t len = 8UL << 20;
	unsigned char *p = upage_mmap(NULL, len, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_ptr_not_equal(p, MAP_FAILED);
	/* Backwards, so that clusters meet pages already present. */
	for (size_t off = len; off; off -= PG)
		p[off - 1] = (unsigned char)(off >> 12);
	for (size_t off = len; off; off -= PG) {
		assert_int_equal(p[off - 1], (unsigned char)(off >> 12));
		check_zero(p + off - PG, PG - 1);
	}
	assert_int_equal(upage_munmap(p, len), 0);
}

static void test_unmap_gives_back(void **state)
{
	size_t len = 64 * PG;
	unsigned char *p = upage_mmap(NULL, len, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *q;

	assert_ptr_not_equal(p, MAP_FAILED);
	fill_pattern(p, len, 1);
	/* Punch the middle out, then map it again: fresh zeroes there,
	   the rest untouched. */
	assert_int_equal(upage_munmap(p + 16 * PG, 16 * PG), 0);
	q = upage_mmap(p + 16 * PG, 16 * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1,
		       0);
	assert_ptr_equal(q, p + 16 * PG);
	check_zero(q, 16 * PG);
	check_pattern(p, 16 * PG, 1);
	for (size_t i = 32 * PG; i < len; i++)
		assert_int_equal(p[i], (unsigned char)(i * 31 + 1 + (i >> 12)));
	/* MAP_FIXED_NOREPLACE over a mapping: EEXIST, as the kernel. */
	errno = 0;
	q = upage_mmap(p, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS |
		       MAP_FIXED_NOREPLACE, -1, 0);
	assert_ptr_equal(q, MAP_FAILED);
	assert_int_equal(errno, EEXIST);
	/* MAP_FIXED replaces: old bytes gone. */
	q = upage_mmap(p, 4 * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	assert_ptr_equal(q, p);
	check_zero(p, 4 * PG);
	assert_int_equal(upage_munmap(p, len), 0);
}

static void test_errors(void **state)
{
	unsigned char *p;
	void *base;
	size_t size;

	assert_int_equal(upage_arena(&base, &size), 0);
	errno = 0;
	assert_ptr_equal(upage_mmap(NULL, 0, PROT_READ,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
			 MAP_FAILED);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_ptr_equal(upage_mmap(NULL, PG, PROT_READ, MAP_ANONYMOUS, -1, 0),
			 MAP_FAILED);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(upage_munmap((char *)base + 1, PG), -1);
	assert_int_equal(errno, EINVAL);
	/* Outside the arena is not ours. */
	errno = 0;
	assert_int_equal(upage_munmap(&size, PG), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_ptr_equal(upage_mmap(&size, PG, PROT_READ, MAP_PRIVATE |
				    MAP_ANONYMOUS | MAP_FIXED, -1, 0),
			 MAP_FAILED);
	assert_int_equal(errno, EINVAL);
	/* File mappings come with a later policy. */
	errno = 0;
	assert_ptr_equal(upage_mmap(NULL, PG, PROT_READ, MAP_PRIVATE, 0, 0),
			 MAP_FAILED);
	assert_int_equal(errno, ENODEV);

	p = upage_mmap(NULL, 4 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	assert_ptr_not_equal(p, MAP_FAILED);
	assert_int_equal(upage_munmap(p + PG, PG), 0);
	/* mprotect, msync, madvise over a hole: ENOMEM. */
	errno = 0;
	assert_int_equal(upage_mprotect(p, 4 * PG, PROT_READ | PROT_WRITE), -1);
	assert_int_equal(errno, ENOMEM);
	errno = 0;
	assert_int_equal(upage_msync(p, 4 * PG, MS_SYNC), -1);
	assert_int_equal(errno, ENOMEM);
	errno = 0;
	assert_int_equal(upage_msync(p, PG, MS_SYNC | MS_ASYNC), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(upage_msync(p, PG, MS_SYNC), 0);
	errno = 0;
	assert_int_equal(upage_madvise(p, 4 * PG, MADV_NORMAL), -1);
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(upage_munmap(p, 4 * PG), 0);
}

static void test_mprotect(void **state)
{
	unsigned char *p = upage_mmap(NULL, 8 * PG, PROT_READ,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_ptr_not_equal(p, MAP_FAILED);
	check_zero(p, 8 * PG);
	assert_int_equal(upage_mprotect(p + 2 * PG, 2 * PG,
					PROT_READ | PROT_WRITE), 0);
	memset(p + 2 * PG, 0x5a, 2 * PG);
	assert_int_equal(p[2 * PG], 0x5a);
	assert_int_equal(p[4 * PG - 1], 0x5a);
	check_zero(p + 4 * PG, 4 * PG);
	assert_int_equal(upage_mprotect(p, 8 * PG, PROT_READ), 0);
	assert_int_equal(p[3 * PG], 0x5a);
	assert_int_equal(upage_munmap(p, 8 * PG), 0);
}

static void test_mremap(void **state)
{
	size_t len = 32 * PG;
	unsigned char *p, *q, *r, *fixed;

	p = upage_mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_ptr_not_equal(p, MAP_FAILED);
	fill_pattern(p, len / 2, 3); /* half touched, half never */
	/* Grow: in place or moved, the bytes follow and the rest is 0. */
	q = upage_mremap(p, len, 4 * len, MREMAP_MAYMOVE);
	assert_ptr_not_equal(q, MAP_FAILED);
	check_pattern(q, len / 2, 3);
	check_zero(q + len / 2, 4 * len - len / 2);
	memset(q + 3 * len, 0x77, len);
	/* Shrink in place. */
	r = upage_mremap(q, 4 * len, len, 0);
	assert_ptr_equal(r, q);
	check_pattern(r, len / 2, 3);
	/* Grow without MAYMOVE where the next range is taken: ENOMEM. */
	fixed = upage_mmap(r + len, PG, PROT_READ, MAP_PRIVATE |
			   MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	assert_ptr_equal(fixed, r + len);
	errno = 0;
	assert_ptr_equal(upage_mremap(r, len, 2 * len, 0), MAP_FAILED);
	assert_int_equal(errno, ENOMEM);
	/* Move to a fixed place. */
	void *base;
	size_t size;
	assert_int_equal(upage_arena(&base, &size), 0);
	unsigned char *target = (unsigned char *)base + 64 * PG;
	q = upage_mremap(r, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, target);
	assert_ptr_equal(q, target);
	check_pattern(q, len / 2, 3);
	check_zero(q + len / 2, len / 2);
	/* The old place is reservation again: mapping there works. */
	p = upage_mmap(r, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS |
		       MAP_FIXED_NOREPLACE, -1, 0);
	assert_ptr_equal(p, r);
	check_zero(p, len);
	errno = 0;
	assert_ptr_equal(upage_mremap(q + PG, PG, PG, MREMAP_FIXED, target),
			 MAP_FAILED);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(upage_munmap(p, len + PG), 0);
	assert_int_equal(upage_munmap(q, len), 0);
}

/* MREMAP_DONTUNMAP: the pages move, the source stays mapped and empty. */
static void test_mremap_dontunmap(void **state)
{
	size_t len = 16 * PG;
	unsigned char *p, *q;

	p = upage_mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_ptr_not_equal(p, MAP_FAILED);
	fill_pattern(p, len, 11);
	/* The kernel's rules: same length, and MAYMOVE. */
	errno = 0;
	assert_ptr_equal(upage_mremap(p, len, 2 * len, MREMAP_MAYMOVE | 4),
			 MAP_FAILED);
	assert_int_equal(errno, EINVAL);
	assert_ptr_equal(upage_mremap(p, len, len, 4), MAP_FAILED);
	assert_int_equal(errno, EINVAL);
	q = upage_mremap(p, len, len, MREMAP_MAYMOVE | 4 /* DONTUNMAP */);
	assert_ptr_not_equal(q, MAP_FAILED);
	assert_ptr_not_equal(q, p);
	check_pattern(q, len, 11);
	/* The source is still mapped, reads zeroes, and takes writes. */
	check_zero(p, len);
	fill_pattern(p, len, 12);
	check_pattern(p, len, 12);
	check_pattern(q, len, 11);
	/* Both are the daemon's: unmapping each works and frees it. */
	assert_int_equal(upage_munmap(p, len), 0);
	assert_int_equal(upage_munmap(q, len), 0);
	p = upage_mmap(p, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS |
		       MAP_FIXED_NOREPLACE, -1, 0);
	assert_ptr_not_equal(p, MAP_FAILED);
	check_zero(p, len);
	assert_int_equal(upage_munmap(p, len), 0);
}

static void test_madvise_dontneed(void **state)
{
	struct upage_stats_reply s0, s1;
	unsigned char *p = upage_mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_ptr_not_equal(p, MAP_FAILED);
	fill_pattern(p, 16 * PG, 9);
	assert_int_equal(upage_stats(&s0), 0);
	assert_int_equal(upage_madvise(p + 4 * PG, 4 * PG, MADV_DONTNEED), 0);
	assert_int_equal(upage_stats(&s1), 0);
	assert_int_equal(s1.mm.ev_remove - s0.mm.ev_remove, 1);
	check_pattern(p, 4 * PG, 9);
	check_zero(p + 4 * PG, 4 * PG);
	for (size_t i = 8 * PG; i < 16 * PG; i++)
		assert_int_equal(p[i], (unsigned char)(i * 31 + 9 + (i >> 12)));
	errno = 0;
	assert_int_equal(upage_madvise(p, PG, 12345), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(upage_munmap(p, 16 * PG), 0);
}

static void test_counts_and_stats(void **state)
{
	struct upage_stats_reply s;
	unsigned char *p;
	uint64_t maps;

	assert_int_equal(upage_stats(&s), 0);
	assert_int_equal(s.pid, getpid());
	maps = s.map_count;
	p = upage_mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_ptr_not_equal(p, MAP_FAILED);
	assert_int_equal(upage_stats(&s), 0);
	assert_true(s.map_count >= 1 && s.total_vm >= 4);
	assert_int_equal(upage_munmap(p, 4 * PG), 0);
	assert_int_equal(upage_stats(&s), 0);
	assert_int_equal(s.map_count, maps);
	assert_int_equal(upage_connect(NULL), -EISCONN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zero_fill_large),
		cmocka_unit_test(test_write_first),
		cmocka_unit_test(test_unmap_gives_back),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_mprotect),
		cmocka_unit_test(test_mremap),
		cmocka_unit_test(test_mremap_dontunmap),
		cmocka_unit_test(test_madvise_dontneed),
		cmocka_unit_test(test_counts_and_stats),
	};

	if (access("/dev/userfaultfd", R_OK | W_OK) < 0 && geteuid() != 0)
		return 77;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

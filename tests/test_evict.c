/*
 * test_evict.c - daemon/evict.c: the 2Q policy keeps pages that come back
 * through a scan larger than the budget, hands out victims oldest first,
 * and its counts agree with a plain model under random use.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "evict.h"

static const char file_a[] = "a", file_b[] = "b";

/*
 * Simulates a cache with `budget` pages over the policy: touching a page
 * that is not resident adds it (a fault), evicting down to the budget.
 * Returns 1 if the touch faulted.
 */
static int touch(struct evict *e, const void *owner, unsigned long pgoff)
{
	struct evict_victim v[8];

	if (evict_is_resident(e, owner, pgoff))
		return 0;
	assert_true(evict_page_added(e, owner, pgoff) >= 0);
	while (evict_resident(e) > e->budget)
		assert_true(evict_pick(e, v, 1) == 1);
	return 1;
}

static void test_victims_oldest_first(void **state)
{
	struct evict e;
	struct evict_victim v[4];

	(void)state;
	assert_int_equal(evict_init(&e, 100), 0);
	for (unsigned long i = 0; i < 10; i++)
		assert_int_equal(evict_page_added(&e, file_a, i), 0);
	assert_int_equal(evict_resident(&e), 10);
	assert_int_equal(evict_pick(&e, v, 3), 3);
	for (unsigned long i = 0; i < 3; i++) {
		assert_ptr_equal(v[i].owner, file_a);
		assert_int_equal(v[i].pgoff, i);
		assert_false(evict_is_resident(&e, file_a, i));
	}
	assert_int_equal(evict_resident(&e), 7);
	/* A cold hint puts a page first in line. */
	evict_page_cold(&e, file_a, 9);
	assert_int_equal(evict_pick(&e, v, 1), 1);
	assert_int_equal(v[0].pgoff, 9);
	evict_exit(&e);
}

static void test_refault_promotes(void **state)
{
	struct evict e;
	struct evict_victim v[1];

	(void)state;
	assert_int_equal(evict_init(&e, 100), 0);
	assert_int_equal(evict_page_added(&e, file_a, 5), 0);
	assert_int_equal(evict_pick(&e, v, 1), 1);
	/* Its ghost is remembered: coming back is a refault. */
	assert_int_equal(evict_page_added(&e, file_a, 5), 1);
	assert_int_equal(e.stats.refaults, 1);
	assert_int_equal(e.am.count, 1);
	/* Same page number, other file: a new page. */
	assert_int_equal(evict_page_added(&e, file_b, 5), 0);
	assert_int_equal(e.a1in.count, 1);
	evict_exit(&e);
}

/* A scan four times the budget, repeated, does not evict the hot set. */
static void test_scan_keeps_hot_set(void **state)
{
	enum { BUDGET = 1000, HOT = 50, SCAN = 4 * BUDGET };
	unsigned long faults_late = 0;
	struct evict e;

	(void)state;
	assert_int_equal(evict_init(&e, BUDGET), 0);
	for (int round = 0; round < 6; round++) {
		for (unsigned long p = 0; p < SCAN; p++) {
			touch(&e, file_b, p);
			/* The hot set is used all along the scan. */
			if (p % 100 == 0)
				for (unsigned long h = 0; h < HOT; h++) {
					int f = touch(&e, file_a, h);

					if (round >= 1)
						faults_late += (unsigned long)f;
				}
		}
	}
	/* It came back once (promotion), then stayed through every scan. */
	assert_int_equal(faults_late, 0);
	for (unsigned long h = 0; h < HOT; h++)
		assert_true(evict_is_resident(&e, file_a, h));
	assert_true(evict_resident(&e) <= BUDGET);
	/* The scan never got into the protected queue. */
	assert_int_equal(e.am.count, HOT);
	evict_exit(&e);
}

/* A page in use (referenced) gets a second pass before eviction. */
static void test_second_chance_in_am(void **state)
{
	struct evict e;
	struct evict_victim v[1];

	(void)state;
	assert_int_equal(evict_init(&e, 100), 0);
	for (unsigned long i = 0; i < 2; i++) {
		evict_page_added(&e, file_a, i);
		evict_pick(&e, v, 1);
		assert_int_equal(evict_page_added(&e, file_a, i), 1);
	}
	assert_int_equal(e.am.count, 2);
	evict_page_referenced(&e, file_a, 0);
	assert_int_equal(evict_pick(&e, v, 1), 1);
	assert_int_equal(v[0].pgoff, 1);
	assert_int_equal(e.stats.second_chances, 1);
	evict_exit(&e);
}

static void test_forget_owner_and_removed(void **state)
{
	struct evict e;
	struct evict_victim v[16];

	(void)state;
	assert_int_equal(evict_init(&e, 100), 0);
	for (unsigned long i = 0; i < 8; i++)
		evict_page_added(&e, file_a, i);
	for (unsigned long i = 0; i < 8; i++)
		evict_page_added(&e, file_b, i);
	assert_int_equal(evict_pick(&e, v, 2), 2); /* two ghosts of a */
	assert_int_equal(e.ghosts.count, 2);
	evict_page_removed(&e, file_b, 3);
	assert_false(evict_is_resident(&e, file_b, 3));
	/* Removed, not evicted: no ghost, so no refault later. */
	assert_int_equal(evict_page_added(&e, file_b, 3), 0);
	evict_forget_owner(&e, file_a);
	assert_int_equal(evict_resident(&e), 8);
	assert_int_equal(e.ghosts.count, 0);
	assert_int_equal(evict_pick(&e, v, 16), 8);
	for (int i = 0; i < 8; i++)
		assert_ptr_equal(v[i].owner, file_b);
	assert_int_equal(evict_pick(&e, v, 1), 0);
	evict_exit(&e);
}

/*
 * Random use against a model of residency: the policy's resident set is
 * exactly what was added and not handed out or removed, never above the
 * budget, and ghosts stay bounded.
 */
static void test_random_against_model(void **state)
{
	enum { PAGES = 3000, BUDGET = 500, STEPS = 200000 };
	static unsigned char resident[2][PAGES];
	struct evict_victim v[4];
	uint64_t x = 88172645463325252ULL;
	size_t count = 0;
	struct evict e;

	(void)state;
	memset(resident, 0, sizeof(resident));
	assert_int_equal(evict_init(&e, BUDGET), 0);
	for (int step = 0; step < STEPS; step++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		int o = (int)(x & 1), op = (int)((x >> 1) % 10);
		unsigned long p = (unsigned long)((x >> 8) % PAGES);
		const void *owner = o ? file_b : file_a;

		if (op < 7) {
			if (!resident[o][p]) {
				assert_true(evict_page_added(&e, owner, p) >= 0);
				resident[o][p] = 1;
				count++;
			}
			evict_page_referenced(&e, owner, p);
		} else if (op == 7) {
			if (resident[o][p])
				count--;
			resident[o][p] = 0;
			evict_page_removed(&e, owner, p);
		} else if (op == 8) {
			evict_page_cold(&e, owner, p);
		}
		while (count > BUDGET) {
			assert_int_equal(evict_pick(&e, v, 1), 1);
			o = v[0].owner == file_b;
			assert_true(resident[o][v[0].pgoff]);
			resident[o][v[0].pgoff] = 0;
			count--;
		}
		assert_int_equal(evict_resident(&e), count);
		assert_true(e.ghosts.count <= e.ghost_max);
		assert_int_equal(evict_is_resident(&e, owner, p),
				 resident[owner == file_b][p]);
	}
	evict_exit(&e);
}

/*
 * A victim handed back (kept) is resident again at the end of probation
 * and no refault; removal of a page the policy evicted keeps its ghost.
 */
static void test_keep_and_removed_ghost(void **state)
{
	struct evict e;
	struct evict_victim v[2];

	(void)state;
	assert_int_equal(evict_init(&e, 100), 0);
	for (unsigned long i = 0; i < 4; i++)
		assert_int_equal(evict_page_added(&e, file_a, i), 0);
	assert_int_equal(evict_pick(&e, v, 2), 2);
	assert_int_equal(v[0].pgoff, 0);
	assert_int_equal(v[1].pgoff, 1);
	/* Page 0 could not go: kept, last in line, not a refault. */
	assert_int_equal(evict_page_keep(&e, file_a, 0), 0);
	assert_true(evict_is_resident(&e, file_a, 0));
	assert_int_equal(evict_resident(&e), 3);
	assert_int_equal(e.stats.refaults, 0);
	assert_int_equal(e.stats.kept, 1);
	/* Keeping a page that is tracked changes nothing. */
	assert_int_equal(evict_page_keep(&e, file_a, 2), 0);
	assert_int_equal(evict_resident(&e), 3);
	/* Page 1 went: the cache reports it gone, the ghost stays... */
	evict_page_removed(&e, file_a, 1);
	assert_false(evict_is_resident(&e, file_a, 1));
	/* ...so its return is a refault. */
	assert_int_equal(evict_page_added(&e, file_a, 1), 1);
	assert_int_equal(e.stats.refaults, 1);
	/* Order now: 2, 3, 0 in probation; 1 protected. */
	assert_int_equal(evict_pick(&e, v, 2), 2);
	assert_int_equal(v[0].pgoff, 2);
	assert_int_equal(v[1].pgoff, 3);
	assert_int_equal(evict_pick(&e, v, 1), 1);
	assert_int_equal(v[0].pgoff, 0);
	evict_exit(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_victims_oldest_first),
		cmocka_unit_test(test_refault_promotes),
		cmocka_unit_test(test_scan_keeps_hot_set),
		cmocka_unit_test(test_second_chance_in_am),
		cmocka_unit_test(test_forget_owner_and_removed),
		cmocka_unit_test(test_random_against_model),
		cmocka_unit_test(test_keep_and_removed_ghost),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_daemon_threads.c - 8 threads faulting at once, on the same pages and
 * on different ones: nobody is left waiting (no lost wake-up), every page
 * is filled exactly once (no double fill: the counter of pages installed
 * equals the pages touched) and every thread's writes stick.
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
#define NTHREADS 8

static struct harness h;

static int start(const char *cluster)
{
	const char *args[] = { "--cluster", cluster, NULL };
	struct upage_options o = { .arena_size = 1UL << 32 };

	if (harness_start_args(&h, args) < 0)
		return -1;
	o.socket_path = h.sock;
	return upage_connect(&o) == 0 ? 0 : -1;
}

static int setup_c1(void **state) { return start("1"); }
static int setup_c16(void **state) { return start("16"); }

static int teardown(void **state)
{
	upage_disconnect();
	return harness_stop(&h) == 0 ? 0 : -1;
}

struct job {
	unsigned char *p;
	size_t pages;
	int id;
	bool shared; /* all threads on the same pages */
	pthread_barrier_t *bar;
};

static void *worker(void *arg)
{
	struct job *j = arg;

	pthread_barrier_wait(j->bar);
	if (j->shared) {
		/* Everyone on every page, each at its own byte; odd threads
		   read first (zero page), even ones write first. */
		for (size_t pg = 0; pg < j->pages; pg++) {
			size_t i = pg * PG + (size_t)j->id;
			if (j->id & 1 && j->p[i] != 0)
				return (void *)1;
			j->p[i] = (unsigned char)(j->id + 1);
		}
		for (size_t pg = 0; pg < j->pages; pg++)
			if (j->p[pg * PG + (size_t)j->id] != j->id + 1)
				return (void *)2;
	} else {
		unsigned char *q = j->p + (size_t)j->id * j->pages * PG;

		/* Interleaved strides so neighbours' clusters collide. */
		for (size_t pg = 0; pg < j->pages; pg++)
			q[pg * PG + pg % PG] = (unsigned char)(pg + j->id);
		for (size_t pg = 0; pg < j->pages; pg++)
			if (q[pg * PG + pg % PG] != (unsigned char)(pg + j->id))
				return (void *)3;
	}
	return NULL;
}

static void run(bool shared, size_t pages)
{
	size_t total = shared ? pages : pages * NTHREADS;
	struct upage_stats_reply s0, s1;
	pthread_barrier_t bar;
	pthread_t t[NTHREADS];
	struct job j[NTHREADS];
	unsigned char *p;

	p = upage_mmap(NULL, total * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_ptr_not_equal(p, MAP_FAILED);
	assert_int_equal(upage_stats(&s0), 0);
	pthread_barrier_init(&bar, NULL, NTHREADS);
	for (int i = 0; i < NTHREADS; i++) {
		j[i] = (struct job){ p, pages, i, shared, &bar };
		assert_int_equal(pthread_create(&t[i], NULL, worker, &j[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		void *ret;

		pthread_join(t[i], &ret);
		assert_null(ret);
	}
	pthread_barrier_destroy(&bar);
	assert_int_equal(upage_stats(&s1), 0);
	assert_int_equal(s1.mm.fill_pages - s0.mm.fill_pages, total);
	/* Every thread's byte survived on every page. */
	for (size_t pg = 0; shared && pg < pages; pg++)
		for (int i = 0; i < NTHREADS; i++)
			assert_int_equal(p[pg * PG + (size_t)i], i + 1);
	assert_int_equal(upage_munmap(p, total * PG), 0);
}

static void test_same_pages(void **state)
{
	for (int round = 0; round < 5; round++)
		run(true, 512);
}

static void test_different_pages(void **state)
{
	for (int round = 0; round < 3; round++)
		run(false, 1024);
}

int main(void)
{
	const struct CMUnitTest c1[] = {
		cmocka_unit_test(test_same_pages),
		cmocka_unit_test(test_different_pages),
	};
	const struct CMUnitTest c16[] = {
		cmocka_unit_test(test_same_pages),
		cmocka_unit_test(test_different_pages),
	};
	int r;

	if (access("/dev/userfaultfd", R_OK | W_OK) < 0 && geteuid() != 0)
		return 77;
	r = cmocka_run_group_tests_name("cluster 1", c1, setup_c1, teardown);
	r |= cmocka_run_group_tests_name("cluster 16", c16, setup_c16,
					 teardown);
	return r;
}

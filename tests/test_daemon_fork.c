/*
 * test_daemon_fork.c - fork: the daemon learns of the child through
 * UFFD_EVENT_FORK and serves its faults; the child sees the parent's data,
 * writes stay private on both sides, the child's library reconnects on its
 * first call, grandchildren work too, and a child's exit frees its mm.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>

#include <cmocka.h>

#include <upage/upage.h>

#include "upaged_harness.h"

#define PG 4096UL
#define LEN (256 * PG)

static struct harness h;

static int group_setup(void **state)
{
	return harness_group_start(&h, 1UL << 30);
}

static int group_teardown(void **state)
{
	return harness_group_stop(&h);
}

static unsigned char pat(size_t i, unsigned seed)
{
	return (unsigned char)(i * 7 + seed + (i >> 12));
}

/* In a child: 0 if good, else a line number. */
#define CHECK(c) do { if (!(c)) return __LINE__; } while (0)

static int child_body(unsigned char *p, int depth)
{
	struct upage_stats_reply s;
	unsigned char *q;

	/* The parent's bytes, copied on write by the kernel; the half it
	   never touched comes from our own uffd, served by the daemon. */
	for (size_t i = 0; i < LEN; i++) {
		unsigned char want = i < LEN / 2 ? pat(i, 1) : 0;

		if (depth && i % 3 == 0)
			want = pat(i, 50 + depth - 1); /* the parent's */
		CHECK(p[i] == want);
	}
	for (size_t i = 0; i < LEN; i += 3)
		p[i] = pat(i, 50 + depth);
	for (size_t i = 0; i < LEN; i += 3)
		CHECK(p[i] == pat(i, 50 + depth));
	/* First library call: reconnects as a fork child. */
	CHECK(upage_stats(&s) == 0);
	CHECK(s.pid == getpid());
	CHECK(s.mm.faults > 0);
	CHECK(s.map_count >= 1);
	q = upage_mmap(NULL, 64 * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(q != MAP_FAILED);
	for (size_t i = 0; i < 64 * PG; i++)
		CHECK(q[i] == 0);
	memset(q, 0x42, 64 * PG);
	CHECK(q[64 * PG - 1] == 0x42);
	CHECK(upage_munmap(q, 64 * PG) == 0);
	return 0;
}

static void test_fork_child_sees_parent(void **state)
{
	unsigned char *p = upage_mmap(NULL, LEN, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int status;
	pid_t pid;

	assert_ptr_not_equal(p, MAP_FAILED);
	for (size_t i = 0; i < LEN / 2; i++)
		p[i] = pat(i, 1);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int r = child_body(p, 0);

		if (r == 0) {
			/* And once more, a generation down. */
			pid_t g = fork();

			if (g == 0)
				_exit(child_body(p, 1) ? 2 : 0);
			if (g < 0 || waitpid(g, &status, 0) != g ||
			    !WIFEXITED(status) || WEXITSTATUS(status))
				r = 1000 + (WIFEXITED(status) ?
					    WEXITSTATUS(status) : 99);
		}
		if (r)
			fprintf(stderr, "child failed at %d\n", r);
		_exit(r ? 1 : 0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* The child's writes stayed in the child. */
	for (size_t i = 0; i < LEN / 2; i++)
		assert_int_equal(p[i], pat(i, 1));
	for (size_t i = LEN / 2; i < LEN; i++)
		assert_int_equal(p[i], 0);
	assert_int_equal(upage_munmap(p, LEN), 0);
}

static void test_parent_writes_after_fork_private(void **state)
{
	unsigned char *p = upage_mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int go[2], done[2], status;
	char c;
	pid_t pid;

	assert_ptr_not_equal(p, MAP_FAILED);
	memset(p, 0x11, 8 * PG);
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(done), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int bad = 0;

		if (read(go[0], &c, 1) != 1)
			_exit(3);
		for (size_t i = 0; i < 16 * PG; i++)
			bad |= p[i] != (i < 8 * PG ? 0x11 : 0);
		_exit(bad);
	}
	/* The parent scribbles on old and new pages before the child looks. */
	memset(p, 0x99, 16 * PG);
	assert_int_equal(write(go[1], "x", 1), 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(p[0], 0x99);
	assert_int_equal(p[16 * PG - 1], 0x99);
	close(go[0]);
	close(go[1]);
	close(done[0]);
	close(done[1]);
	assert_int_equal(upage_munmap(p, 16 * PG), 0);
}

/* Polls until the daemon is back to n mms (child teardown is async). */
static unsigned wait_mms(unsigned n)
{
	struct upage_stats_reply s;
	struct timespec ts = { 0, 2000000 };

	for (int i = 0; i < 10000; i++) {
		if (upage_stats(&s) < 0)
			return ~0U;
		if (s.mms == n)
			return n;
		nanosleep(&ts, NULL);
	}
	return s.mms;
}

static void test_child_exit_frees_mm(void **state)
{
	struct upage_stats_reply s;
	unsigned char *p = upage_mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int status;
	pid_t pid;

	assert_ptr_not_equal(p, MAP_FAILED);
	/* Only us, once the children of earlier tests are gone. */
	unsigned base = 1;
	assert_int_equal(wait_mms(base), base);
	assert_int_equal(upage_stats(&s), 0);
	/* A child that faults but never calls the library (bound by its
	   fault, freed by its pidfd), and one that does nothing at all
	   (never bound: found dead by the reaper). */
	pid = fork();
	if (pid == 0)
		_exit(p[3 * PG] != 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(status, 0);
	pid = fork();
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(wait_mms(base), base);
	assert_int_equal(upage_munmap(p, 4 * PG), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fork_child_sees_parent),
		cmocka_unit_test(test_parent_writes_after_fork_private),
		cmocka_unit_test(test_child_exit_frees_mm),
	};

	if (access("/dev/userfaultfd", R_OK | W_OK) < 0 && geteuid() != 0)
		return 77;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

/*
 * test_daemon_clients.c - many clients and dying clients: 100 processes
 * connect and map at once; a client killed with SIGKILL in the middle of
 * faulting (several threads) is cleaned up and the daemon keeps serving
 * everyone else; a client that just disconnects frees its mm.
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

static struct harness h;

static int group_setup(void **state)
{
	return harness_group_start(&h, 0);
}

static int group_teardown(void **state)
{
	return harness_group_stop(&h);
}

static int connect_here(void)
{
	return harness_connect(&h, 1UL << 30);
}

/* A fresh process's whole life as a client; 0 when all went well. */
static int client_life(int seed, size_t pages)
{
	unsigned char *p;

	if (connect_here() < 0)
		return 1;
	p = upage_mmap(NULL, pages * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 2;
	for (size_t i = 0; i < pages * PG; i += 64)
		if (p[i])
			return 3;
	for (size_t i = 0; i < pages * PG; i += 64)
		p[i] = (unsigned char)(i / 64 + seed);
	for (size_t i = 0; i < pages * PG; i += 64)
		if (p[i] != (unsigned char)(i / 64 + seed))
			return 4;
	return upage_munmap(p, pages * PG) ? 5 : 0;
}

static unsigned daemon_mms(void)
{
	struct upage_stats_reply s;

	return upage_stats(&s) ? ~0U : s.mms;
}

/* Waits for the daemon to be down to n mms (teardown is asynchronous). */
static unsigned wait_mms(unsigned n)
{
	struct timespec ts = { 0, 2000000 };
	unsigned m = 0;

	for (int i = 0; i < 10000; i++) {
		m = daemon_mms();
		if (m == n)
			break;
		nanosleep(&ts, NULL);
	}
	return m;
}

static void test_hundred_clients(void **state)
{
	enum { N = 100 };
	pid_t pids[N];
	int go[2];

	assert_int_equal(pipe(go), 0);
	for (int i = 0; i < N; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			char c;

			close(go[1]);
			/* All start together when the pipe closes. */
			if (read(go[0], &c, 1) != 0)
				_exit(100);
			_exit(client_life(i, 256));
		}
	}
	close(go[0]);
	close(go[1]);
	for (int i = 0; i < N; i++) {
		int status;

		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(connect_here(), 0);
	assert_int_equal(wait_mms(1), 1);
}

static void *fault_forever(void *arg)
{
	unsigned char *p = arg;
	size_t len = 1UL << 30;

	for (size_t i = 0;; i = (i + PG * 7) % len)
		p[i]++;
	return NULL;
}

static void test_killed_mid_fault(void **state)
{
	for (int round = 0; round < 4; round++) {
		int ready[2], status;
		char c;
		pid_t pid;

		assert_int_equal(pipe(ready), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			pthread_t t;
			unsigned char *p;

			if (connect_here() < 0)
				_exit(1);
			p = upage_mmap(NULL, 1UL << 30, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p == MAP_FAILED)
				_exit(2);
			for (int i = 0; i < 4; i++)
				pthread_create(&t, NULL, fault_forever,
					       p + (size_t)i * PG * 1000);
			p[0] = 1;
			if (write(ready[1], "r", 1) != 1)
				_exit(3);
			fault_forever(p);
		}
		close(ready[1]);
		assert_int_equal(read(ready[0], &c, 1), 1);
		close(ready[0]);
		/* Let it fault a varying while, then kill it mid-flight. */
		struct timespec ts = { 0, 1000000L * (round * 7 + 1) };
		nanosleep(&ts, NULL);
		assert_int_equal(kill(pid, SIGKILL), 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		/* Everyone else is still served. */
		pid = fork();
		if (pid == 0)
			_exit(client_life(round, 512));
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(connect_here() == 0 || connect_here() == -EISCONN,
			 1);
	assert_int_equal(wait_mms(1), 1);
}

static void test_disconnect_frees(void **state)
{
	struct upage_stats_reply s;
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		upage_disconnect(); /* the parent's connection is not ours */
		if (connect_here() < 0)
			_exit(1);
		unsigned char *p = upage_mmap(NULL, 8 * PG, PROT_READ |
					      PROT_WRITE, MAP_PRIVATE |
					      MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			_exit(2);
		p[0] = 1;
		if (upage_disconnect() != 0)
			_exit(3);
		/* The pages stay; untouched ones are the kernel's zeroes. */
		if (p[0] != 1 || p[PG] != 0)
			_exit(4);
		if (upage_mmap(NULL, PG, PROT_READ, MAP_PRIVATE |
			       MAP_ANONYMOUS, -1, 0) != MAP_FAILED ||
		    errno != ENOTCONN)
			_exit(5);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(wait_mms(1), 1);
	assert_int_equal(upage_stats(&s), 0);
	assert_int_equal(s.clients, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hundred_clients),
		cmocka_unit_test(test_killed_mid_fault),
		cmocka_unit_test(test_disconnect_frees),
	};

	if (access("/dev/userfaultfd", R_OK | W_OK) < 0 && geteuid() != 0)
		return 77;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

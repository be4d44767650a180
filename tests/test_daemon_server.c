/*
 * test_daemon_server.c - the listening socket and the daemon's life:
 * ready line, a stale socket file is replaced, a live daemon on the same
 * path is refused with a clear message, a path that is not a socket is
 * left alone, SIGTERM and SIGINT stop it with status 0 and remove the
 * socket, and a client blocked in a fault is not left hanging.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include <upage/upage.h>

#include "upaged_harness.h"

/* Runs the daemon on path to completion; returns status, stderr in buf. */
static int run_daemon_expect_fail(const char *path, char *buf, size_t size)
{
	int pfd[2], status;
	ssize_t n, len = 0;
	pid_t pid;

	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	if (pid == 0) {
		dup2(pfd[1], 2);
		execl(harness_bin(), harness_bin(), "--foreground", "--socket",
		      path, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	while ((n = read(pfd[0], buf + len, size - 1 - (size_t)len)) > 0)
		len += n;
	buf[len] = '\0';
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void test_live_daemon_refused(void **state)
{
	struct harness h;
	char out[1024];

	assert_int_equal(harness_start(&h), 0);
	assert_int_equal(run_daemon_expect_fail(h.sock, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "another upaged is listening"));
	/* The first one is untouched and still answers. */
	struct upage_options o = { .socket_path = h.sock,
				   .arena_size = 1UL << 26 };
	assert_int_equal(upage_connect(&o), 0);
	unsigned char *p = upage_mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_ptr_not_equal(p, MAP_FAILED);
	assert_int_equal(p[100], 0);
	p[100] = 1;
	assert_int_equal(upage_disconnect(), 0);
	assert_int_equal(harness_stop(&h), 0);
}

static void test_stale_socket_replaced(void **state)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/upaged-stale-XXXXXX", out[1024];
	int fd;

	/* A socket file nobody listens on, as a killed daemon leaves. */
	assert_non_null(mkdtemp(dir));
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/s", dir);
	fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	/* A regular file at the path is not ours to remove. */
	char file[128];
	snprintf(file, sizeof(file), "%s/f", dir);
	fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(run_daemon_expect_fail(file, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "not a socket"));
	assert_int_equal(access(file, F_OK), 0);
	unlink(file);

	/* Start on the stale path by hand (harness_start makes its own). */
	pid_t pid;
	int pfd[2];
	char line[256];
	size_t len = 0;
	char c;

	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	if (pid == 0) {
		dup2(pfd[1], 2);
		execl(harness_bin(), harness_bin(), "--foreground", "--socket",
		      sun.sun_path, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	while (read(pfd[0], &c, 1) == 1 && c != '\n' && len < sizeof(line) - 1)
		line[len++] = c;
	line[len] = '\0';
	if (!strstr(line, "ready on")) { /* "replacing stale socket" first */
		len = 0;
		while (read(pfd[0], &c, 1) == 1 && c != '\n' &&
		       len < sizeof(line) - 1)
			line[len++] = c;
		line[len] = '\0';
	}
	assert_non_null(strstr(line, "upaged: ready on"));
	/* SIGINT: clean exit, socket removed. */
	kill(pid, SIGINT);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(pfd[0]);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(access(sun.sun_path, F_OK), -1);
	rmdir(dir);
}

static void test_sigterm_with_blocked_client(void **state)
{
	struct harness h;
	int to_child[2], ready[2], status;
	char r;
	pid_t pid;

	assert_int_equal(harness_start(&h), 0);
	assert_int_equal(pipe(to_child), 0);
	assert_int_equal(pipe(ready), 0);
	pid = fork();
	if (pid == 0) {
		struct upage_options o = { .socket_path = h.sock,
					   .arena_size = 1UL << 26 };
		unsigned char *p;
		char c;

		close(to_child[1]);
		if (upage_connect(&o))
			_exit(1);
		p = upage_mmap(NULL, 64 * 4096, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			_exit(2);
		p[0] = 1;
		if (write(ready[1], "r", 1) != 1)
			_exit(6);
		if (read(to_child[0], &c, 1) != 0)
			_exit(3);
		/* The daemon is gone by now: the kernel serves us. */
		for (size_t i = 4096; i < 64 * 4096; i++)
			if (p[i])
				_exit(4);
		p[5000] = 2;
		_exit(p[0] == 1 && p[5000] == 2 ? 0 : 5);
	}
	close(to_child[0]);
	close(ready[1]);
	assert_int_equal(read(ready[0], &r, 1), 1);
	close(ready[0]);
	assert_int_equal(harness_stop(&h), 0);
	close(to_child[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_live_daemon_refused),
		cmocka_unit_test(test_stale_socket_replaced),
		cmocka_unit_test(test_sigterm_with_blocked_client),
	};

	if (access("/dev/userfaultfd", R_OK | W_OK) < 0 && geteuid() != 0)
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}

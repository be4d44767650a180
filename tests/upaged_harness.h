/*
 * upaged_harness.h - starts a private upaged for an integration test.
 *
 * Contract: harness_start() makes a mkdtemp directory, runs $UPAGED_BIN
 * (default build/upaged) --foreground on a socket inside it and returns
 * once the daemon has printed its ready line on the pipe we gave it as
 * stderr (no sleeping); the rest of its stderr is copied to ours by a
 * thread. The daemon dies with the test (PR_SET_PDEATHSIG) and an atexit
 * handler removes it and the directory if a test bails out early.
 * harness_stop() sends SIGTERM and returns the daemon's exit status
 * (0 expected: under ASan a leak or error makes it non-zero).
 */
#ifndef UPAGED_HARNESS_H
#define UPAGED_HARNESS_H

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct harness {
	pid_t pid;
	int err_fd;
	pthread_t fwd;
	char dir[64];
	char sock[128];
};

static struct harness *harness_live;

static void *harness_forward(void *arg)
{
	struct harness *h = arg;
	char buf[4096];
	ssize_t n;

	while ((n = read(h->err_fd, buf, sizeof(buf))) > 0)
		if (write(2, buf, (size_t)n) < 0)
			break;
	return NULL;
}

static inline int harness_stop(struct harness *h)
{
	int status = -1;

	if (h->pid > 0) {
		kill(h->pid, SIGTERM);
		while (waitpid(h->pid, &status, 0) < 0 && errno == EINTR)
			;
		h->pid = 0;
		pthread_join(h->fwd, NULL);
		close(h->err_fd);
	}
	if (h->sock[0])
		unlink(h->sock);
	if (h->dir[0])
		rmdir(h->dir);
	h->dir[0] = h->sock[0] = '\0';
	if (harness_live == h)
		harness_live = NULL;
	if (status == -1)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void harness_atexit(void)
{
	if (harness_live)
		harness_stop(harness_live);
}

static const char *harness_bin(void)
{
	const char *b = getenv("UPAGED_BIN");

	return b && *b ? b : "build/upaged";
}

/* Spawns the daemon with extra arguments (NULL-terminated list). */
static inline int harness_start_args(struct harness *h, const char *const *extra)
{
	const char *argv[16];
	char line[512];
	size_t len = 0;
	int pfd[2], n = 0;

	memset(h, 0, sizeof(*h));
	strcpy(h->dir, "/tmp/upaged-test-XXXXXX");
	if (!mkdtemp(h->dir))
		return -errno;
	snprintf(h->sock, sizeof(h->sock), "%s/upaged.sock", h->dir);
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	argv[n++] = harness_bin();
	argv[n++] = "--foreground";
	argv[n++] = "--socket";
	argv[n++] = h->sock;
	while (extra && *extra && n < 15)
		argv[n++] = *extra++;
	argv[n] = NULL;
	h->pid = fork();
	if (h->pid < 0)
		return -errno;
	if (h->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(pfd[1], 2);
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	h->err_fd = pfd[0];
	harness_live = h;
	atexit(harness_atexit);
	/* Read byte by byte up to the ready line, so nothing after it is
	   swallowed; give up after 20 s of silence or at EOF. */
	for (;;) {
		struct pollfd p = { .fd = h->err_fd, .events = POLLIN };
		char c;

		if (poll(&p, 1, 20000) <= 0 || read(h->err_fd, &c, 1) != 1)
			break;
		if (c != '\n') {
			if (len < sizeof(line) - 1)
				line[len++] = c;
			continue;
		}
		line[len] = '\0';
		fprintf(stderr, "%s\n", line);
		if (!strncmp(line, "upaged: ready on ", 17)) {
			pthread_create(&h->fwd, NULL, harness_forward, h);
			return 0;
		}
		len = 0;
	}
	pthread_create(&h->fwd, NULL, harness_forward, h);
	harness_stop(h);
	return -EIO;
}

static inline int harness_start(struct harness *h)
{
	return harness_start_args(h, NULL);
}

#ifdef UPAGE_UPAGE_H
/* Connects this process to h's daemon with an arena of arena_size bytes. */
static inline int harness_connect(struct harness *h, unsigned long arena_size)
{
	struct upage_options o = { .socket_path = h->sock,
				   .arena_size = arena_size };

	return upage_connect(&o);
}

/*
 * A benchmark's daemon (extra arguments as for harness_start_args()) and
 * this process connected to it with a 4 GiB arena: 0, or the status to
 * exit with (77: no userfaultfd to hand over).
 */
static inline int harness_bench_start(struct harness *h,
				      const char *const *extra)
{
	struct upage_options o = { .arena_size = 4UL << 30 };

	if (harness_start_args(h, extra) < 0) {
		fprintf(stderr, "bench: cannot start %s\n", harness_bin());
		return 1;
	}
	o.socket_path = h->sock;
	if (upage_connect(&o) < 0) {
		fprintf(stderr, "bench: cannot connect\n");
		return 77;
	}
	return 0;
}

/* cmocka group set-up and tear-down: one daemon for the whole group. */
static inline int harness_group_start(struct harness *h,
				      unsigned long arena_size)
{
	if (harness_start(h) < 0)
		return -1;
	return arena_size && harness_connect(h, arena_size) ? -1 : 0;
}

static inline int harness_group_stop(struct harness *h)
{
	upage_disconnect();
	return harness_stop(h) == 0 ? 0 : -1;
}
#endif

#endif

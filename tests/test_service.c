/*
 * test_service.c - upaged as a service: the configuration file and its
 * flags, socket activation (systemd-socket-activate), readiness, status and
 * watchdog through a NOTIFY_SOCKET of our own, and clients that are not
 * root: with group access to a userfaultfd node a nobody process gets a
 * full userfaultfd and a read(2) into a managed mapping works; without it
 * the library says it has only a user-mode-only one (and read(2) fails
 * with EFAULT, as upage_uffd_explain() warns); with none it says why.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>

#include <cmocka.h>

#include <upage/upage.h>

#include "upaged_harness.h"

#define NOBODY 65534
/* A group no one is in: the test's stand-in for "upage". */
#define TEST_GID 64999
#define PAGE 4096UL

/* A child's stderr, read line by line (waits on the pipe, never sleeps). */
struct proc {
	pid_t pid;
	int err;
	char out[8192];
	size_t len;
};

/* Runs argv with stderr (and stdout) on a pipe; env: "NAME=VALUE" list. */
static void proc_start(struct proc *p, const char *const *argv,
		       const char *const *env)
{
	int pfd[2];

	memset(p, 0, sizeof(*p));
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		unsetenv("UPAGED_SOCKET");
		unsetenv("NOTIFY_SOCKET");
		unsetenv("WATCHDOG_USEC");
		unsetenv("WATCHDOG_PID");
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_PID");
		for (; env && *env; env++)
			putenv((char *)*env);
		execvp(argv[0], (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	p->err = pfd[0];
}

/* Reads until the output contains what (true) or EOF / 20 s of silence. */
static bool proc_wait_for(struct proc *p, const char *what)
{
	while (!strstr(p->out, what)) {
		struct pollfd pfd = { .fd = p->err, .events = POLLIN };
		ssize_t n;

		if (p->len >= sizeof(p->out) - 1 || poll(&pfd, 1, 20000) <= 0)
			return false;
		n = read(p->err, p->out + p->len, sizeof(p->out) - 1 - p->len);
		if (n <= 0)
			return false;
		p->len += (size_t)n;
		p->out[p->len] = '\0';
	}
	return true;
}

/* Collects the rest of the output and the exit status. */
static int proc_finish(struct proc *p)
{
	int status;

	proc_wait_for(p, "\x01never\x01");
	close(p->err);
	assert_int_equal(waitpid(p->pid, &status, 0), p->pid);
	fprintf(stderr, "%s", p->out);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int proc_stop(struct proc *p)
{
	kill(p->pid, SIGTERM);
	return proc_finish(p);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static char tmpdir[64];

static int group_setup(void **state)
{
	strcpy(tmpdir, "/tmp/upaged-svc-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Runs upaged with args to completion: its status, its output in p. */
static int run_upaged(struct proc *p, const char *a1, const char *a2,
		      const char *a3, const char *a4)
{
	const char *argv[] = { harness_bin(), a1, a2, a3, a4, NULL };

	proc_start(p, argv, NULL);
	return proc_finish(p);
}

static void test_config_errors_name_the_line(void **state)
{
	char conf[128];
	struct proc p;

	snprintf(conf, sizeof(conf), "%s/bad.conf", tmpdir);
	write_file(conf, "# settings\n\ncluster = 8\nclusterr = 8\n");
	assert_int_equal(run_upaged(&p, "--config", conf, NULL, NULL), 2);
	assert_non_null(strstr(p.out, "bad.conf:4: unknown key 'clusterr'"));

	write_file(conf, "log-level = debug\ncluster = 513\n");
	assert_int_equal(run_upaged(&p, "--config", conf, NULL, NULL), 2);
	assert_non_null(strstr(p.out, "bad.conf:2: cluster: '513' is not a "
				      "number in 1..512"));

	write_file(conf, "spin-us = -1\n");
	assert_int_equal(run_upaged(&p, "-C", conf, NULL, NULL), 2);
	assert_non_null(strstr(p.out, "bad.conf:1: spin-us:"));

	write_file(conf, "max-resident = 12Q\n");
	assert_int_equal(run_upaged(&p, "--config", conf, NULL, NULL), 2);
	assert_non_null(strstr(p.out, "bad.conf:1: max-resident: '12Q'"));

	write_file(conf, "max-resident = 100K\n");
	assert_int_equal(run_upaged(&p, "--config", conf, NULL, NULL), 2);
	assert_non_null(strstr(p.out, "bad.conf:1: max-resident: '100K'"));

	write_file(conf, "foreground = maybe\n");
	assert_int_equal(run_upaged(&p, "--config", conf, NULL, NULL), 2);
	assert_non_null(strstr(p.out, "bad.conf:1: foreground: 'maybe'"));

	write_file(conf, "\n\n\njust words\n");
	assert_int_equal(run_upaged(&p, "--config", conf, NULL, NULL), 2);
	assert_non_null(strstr(p.out, "bad.conf:4: expected 'key = value'"));

	write_file(conf, "socket-group = no-such-group-here\n");
	assert_int_equal(run_upaged(&p, "--config", conf, NULL, NULL), 2);
	assert_non_null(strstr(p.out, "bad.conf:1: socket-group: no group"));

	/* A file named on the command line must exist. */
	snprintf(conf, sizeof(conf), "%s/missing.conf", tmpdir);
	assert_int_equal(run_upaged(&p, "--config", conf, NULL, NULL), 2);
	assert_non_null(strstr(p.out, "missing.conf: No such file"));

	/* Flags are checked by the same code. */
	assert_int_equal(run_upaged(&p, "--cluster", "0", NULL, NULL), 2);
	assert_non_null(strstr(p.out, "--cluster: '0' is not a number"));
	assert_int_equal(run_upaged(&p, "--log-level", "loud", NULL, NULL), 2);
	assert_non_null(strstr(p.out, "--log-level: 'loud'"));
	assert_int_equal(run_upaged(&p, "--no-such-flag", NULL, NULL, NULL), 2);
	assert_int_equal(run_upaged(&p, "stray", NULL, NULL, NULL), 2);
	assert_non_null(strstr(p.out, "unexpected argument 'stray'"));
}

static void test_config_file_and_flags(void **state)
{
	char conf[128], text[512], want[512];
	struct proc p;

	snprintf(conf, sizeof(conf), "%s/good.conf", tmpdir);
	snprintf(text, sizeof(text),
		 "# every key, odd spacing\n"
		 "  socket=%s/from-file.sock  \n"
		 "socket-group = %d\n"
		 "foreground = yes\n"
		 "\tlog-level =\twarn\n"
		 "cluster = 32\n"
		 "spin-us = 0\n"
		 "max-resident=1g\n"
		 "huge-pages = no\n"
		 "cache-dir = /dev/shm\n", tmpdir, TEST_GID);
	write_file(conf, text);
	assert_int_equal(run_upaged(&p, "--config", conf, "--print-config",
				    NULL), 0);
	snprintf(want, sizeof(want),
		 "socket = %s/from-file.sock\n"
		 "socket-group = %d\n"
		 "foreground = yes\n"
		 "log-level = warn\n"
		 "cluster = 32\n"
		 "spin-us = 0\n"
		 "max-resident = 1024M\n"
		 "huge-pages = no\n"
		 "cache-dir = /dev/shm\n", tmpdir, TEST_GID);
	assert_string_equal(p.out, want);

	/* Flags win over the file, wherever they stand. */
	{
		const char *argv[] = { harness_bin(), "--cluster", "7",
				       "--print-config", "--config", conf,
				       "--spin-us", "250", "-m", "300K", NULL };

		proc_start(&p, argv, NULL);
		assert_int_equal(proc_finish(&p), 0);
		assert_non_null(strstr(p.out, "cluster = 7\n"));
		assert_non_null(strstr(p.out, "spin-us = 250\n"));
		assert_non_null(strstr(p.out, "max-resident = 300K\n"));
		assert_non_null(strstr(p.out, "log-level = warn\n"));
	}

	/* The daemon serves on the file's socket, with the file's group. */
	{
		const char *argv[] = { harness_bin(), "--config", conf, NULL };
		char sock[128], line[256];
		struct stat st;

		snprintf(sock, sizeof(sock), "%s/from-file.sock", tmpdir);
		snprintf(line, sizeof(line), "upaged: ready on %s\n", sock);
		proc_start(&p, argv, NULL);
		assert_true(proc_wait_for(&p, line));
		assert_int_equal(stat(sock, &st), 0);
		assert_true(S_ISSOCK(st.st_mode));
		assert_int_equal(st.st_gid, TEST_GID);
		assert_int_equal(st.st_mode & 0777, 0660);
		assert_int_equal(proc_stop(&p), 0);
		assert_int_equal(stat(sock, &st), -1);
	}
}

/* One managed page, written and read back byte for byte. */
static void check_client(const char *sock)
{
	struct upage_options o = { .socket_path = sock,
				   .arena_size = 1UL << 26 };
	unsigned char *m;

	assert_int_equal(upage_connect(&o), 0);
	m = upage_mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_ptr_not_equal(m, MAP_FAILED);
	for (size_t i = 0; i < 4 * PAGE; i++)
		assert_int_equal(m[i], 0);
	for (size_t i = 0; i < 4 * PAGE; i++)
		m[i] = (unsigned char)(i * 7 + 3);
	for (size_t i = 0; i < 4 * PAGE; i++)
		assert_int_equal(m[i], (unsigned char)(i * 7 + 3));
	assert_int_equal(upage_munmap(m, 4 * PAGE), 0);
	assert_int_equal(upage_disconnect(), 0);
}

static void test_socket_activation(void **state)
{
	char sock[128], listening[160];
	const char *argv[] = { "systemd-socket-activate", "--seqpacket", "-l",
			       sock, harness_bin(), "--foreground",
			       "--socket", "/nonexistent/ignored.sock", NULL };
	struct stat st;
	struct proc p;

	snprintf(sock, sizeof(sock), "%s/activated.sock", tmpdir);
	snprintf(listening, sizeof(listening), "Listening on %s", sock);
	proc_start(&p, argv, NULL);
	assert_true(proc_wait_for(&p, listening));
	/* The first connection starts the daemon on the passed socket. */
	check_client(sock);
	assert_true(proc_wait_for(&p, "using the socket passed by systemd"));
	assert_non_null(strstr(p.out, "upaged: ready on "));
	assert_non_null(strstr(strstr(p.out, "upaged: ready on "), sock));
	assert_null(strstr(p.out, "ready on /nonexistent"));
	assert_int_equal(proc_stop(&p), 0);
	/* The socket file is the service manager's: the daemon leaves it. */
	assert_int_equal(stat(sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	unlink(sock);
}

static void test_socket_activation_wrong_type(void **state)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *argv[] = { "systemd-socket-activate", "-l", sun.sun_path,
			       harness_bin(), "--foreground", NULL };
	struct proc p;
	int fd;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/stream.sock", tmpdir);
	proc_start(&p, argv, NULL);
	assert_true(proc_wait_for(&p, "Listening on"));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(proc_finish(&p), 1);
	assert_non_null(strstr(p.out, "not a listening SOCK_SEQPACKET"));
	close(fd);
	unlink(sun.sun_path);
}

/* Our stand-in for the service manager's notification socket. */
static int notify_open(char *path, size_t size)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	snprintf(path, size, "%s/notify", tmpdir);
	unlink(path);
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	return fd;
}

/* The next notification, or "" after 10 s without one. */
static void notify_next(int fd, char *buf, size_t size)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n = -1;

	if (poll(&p, 1, 10000) == 1)
		n = recv(fd, buf, size - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
}

static void test_notify_ready_status_watchdog(void **state)
{
	char npath[128], env_ns[160], sock[128], msg[512];
	const char *env[] = { env_ns, "WATCHDOG_USEC=200000", NULL };
	const char *argv[] = { harness_bin(), "--foreground", "--socket", sock,
			       NULL };
	int fd, watchdogs = 0, statuses = 0;
	struct proc p;

	fd = notify_open(npath, sizeof(npath));
	snprintf(env_ns, sizeof(env_ns), "NOTIFY_SOCKET=%s", npath);
	snprintf(sock, sizeof(sock), "%s/notified.sock", tmpdir);
	proc_start(&p, argv, env);
	notify_next(fd, msg, sizeof(msg));
	assert_non_null(strstr(msg, "READY=1"));
	assert_non_null(strstr(msg, "STATUS=serving on "));
	assert_non_null(strstr(msg, sock));
	/* By then the socket accepts: a client is served at once. */
	check_client(sock);
	/* Pings come at half of WATCHDOG_USEC, each with a fresh status. */
	while (watchdogs < 3) {
		notify_next(fd, msg, sizeof(msg));
		assert_true(msg[0] != '\0');
		if (!strcmp(msg, "WATCHDOG=1"))
			watchdogs++;
		else if (strstr(msg, "STATUS=serving"))
			statuses++;
	}
	assert_true(statuses >= 2);
	kill(p.pid, SIGTERM);
	do
		notify_next(fd, msg, sizeof(msg));
	while (msg[0] && strcmp(msg, "STOPPING=1"));
	assert_string_equal(msg, "STOPPING=1");
	assert_int_equal(proc_finish(&p), 0);
	assert_non_null(strstr(p.out, "watchdog: pinging every 0.100 s"));
	close(fd);
	unlink(npath);
}

static void test_notify_without_watchdog(void **state)
{
	char npath[128], env_ns[160], sock[128], msg[512];
	const char *env[] = { env_ns, NULL };
	const char *argv[] = { harness_bin(), "--foreground", "--socket", sock,
			       NULL };
	struct proc p;
	int fd;

	fd = notify_open(npath, sizeof(npath));
	snprintf(env_ns, sizeof(env_ns), "NOTIFY_SOCKET=%s", npath);
	snprintf(sock, sizeof(sock), "%s/nowd.sock", tmpdir);
	proc_start(&p, argv, env);
	notify_next(fd, msg, sizeof(msg));
	assert_non_null(strstr(msg, "READY=1"));
	check_client(sock);
	kill(p.pid, SIGTERM);
	for (;;) {
		notify_next(fd, msg, sizeof(msg));
		assert_true(msg[0] != '\0');
		assert_null(strstr(msg, "WATCHDOG=1"));
		if (!strcmp(msg, "STOPPING=1"))
			break;
	}
	assert_int_equal(proc_finish(&p), 0);
	assert_null(strstr(p.out, "watchdog"));
	close(fd);
	unlink(npath);
}

/* --- clients that are not root ----------------------------------------- */

enum { CHILD_OK = 0, CHILD_SKIP = 77 };

/* Becomes nobody, with group gid as its only supplementary group (or none). */
static int drop_to_nobody(gid_t gid)
{
	gid_t groups[1] = { gid };

	if (setgroups(gid == (gid_t)-1 ? 0 : 1, groups) < 0 ||
	    setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
	    setresuid(NOBODY, NOBODY, NOBODY) < 0)
		return -1;
	return geteuid() == NOBODY ? 0 : -1;
}

/* Child side: the line number of the first failed check, 0 if all held. */
#define CHILD_CHECK(c) do { if (!(c)) { \
	dprintf(2, "child check failed at line %d: %s (errno %d)\n", \
		__LINE__, #c, errno); return __LINE__ % 200 + 1; } } while (0)

/*
 * As nobody: connect, map, and have the kernel itself fault on managed
 * pages: read(2) from a pipe into an untouched page (a write fault taken
 * in the kernel), write(2) from another untouched page (a read fault).
 */
static int child_kernel_faults(const char *sock, bool expect_full)
{
	struct upage_options o = { .socket_path = sock,
				   .arena_size = 1UL << 26 };
	unsigned char pattern[3 * 1000], back[PAGE], *m;
	int kind, pfd[2];
	ssize_t n;

	kind = upage_uffd_kind();
	if (kind != (expect_full ? UPAGE_UFFD_FULL : UPAGE_UFFD_USER_ONLY))
		dprintf(2, "child: kind %d: %s\n", kind,
			upage_uffd_explain(kind));
	CHILD_CHECK(kind == (expect_full ? UPAGE_UFFD_FULL :
					   UPAGE_UFFD_USER_ONLY));
	CHILD_CHECK(upage_connect(&o) == 0);
	CHILD_CHECK(upage_uffd_kind() == kind);
	m = upage_mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHILD_CHECK(m != MAP_FAILED);
	CHILD_CHECK(pipe2(pfd, O_CLOEXEC) == 0);
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (unsigned char)(i * 13 + 5);
	CHILD_CHECK(write(pfd[1], pattern, sizeof(pattern)) ==
		    (ssize_t)sizeof(pattern));
	/* Lands across the end of page 1 into page 2, both untouched. */
	n = read(pfd[0], m + 2 * PAGE - 1000, sizeof(pattern));
	if (!expect_full) {
		/* What upage_uffd_explain() warns about. */
		CHILD_CHECK(n == -1 && errno == EFAULT);
		CHILD_CHECK(strstr(upage_uffd_explain(kind), "EFAULT"));
		/* Faults taken in user mode are still served. */
		m[PAGE] = 0x5a;
		CHILD_CHECK(m[PAGE] == 0x5a && m[PAGE + 1] == 0);
		return CHILD_OK;
	}
	CHILD_CHECK(n == (ssize_t)sizeof(pattern));
	CHILD_CHECK(!memcmp(m + 2 * PAGE - 1000, pattern, sizeof(pattern)));
	for (size_t i = PAGE; i < 2 * PAGE - 1000; i++)
		CHILD_CHECK(m[i] == 0);
	for (size_t i = 2 * PAGE - 1000 + sizeof(pattern); i < 3 * PAGE; i++)
		CHILD_CHECK(m[i] == 0);
	/* A read fault inside the kernel: page 3 goes out as zeroes. */
	CHILD_CHECK(write(pfd[1], m + 3 * PAGE, PAGE) == (ssize_t)PAGE);
	CHILD_CHECK(read(pfd[0], back, PAGE) == (ssize_t)PAGE);
	for (size_t i = 0; i < PAGE; i++)
		CHILD_CHECK(back[i] == 0);
	/* And the daemon served them (one cluster may fill all four). */
	{
		struct upage_stats_reply st;

		CHILD_CHECK(upage_stats(&st) == 0);
		CHILD_CHECK(st.mm.faults >= 1 && st.mm.fill_pages >= 2);
	}
	CHILD_CHECK(upage_munmap(m, 4 * PAGE) == 0);
	CHILD_CHECK(upage_disconnect() == 0);
	return CHILD_OK;
}

/* Forks, drops to nobody (in group gid unless -1) and runs fn. */
static int run_as_nobody(gid_t gid, const char *node, const char *sock,
			 bool expect_full)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (node)
			setenv("UPAGE_USERFAULTFD_DEV", node, 1);
		else
			unsetenv("UPAGE_USERFAULTFD_DEV");
		if (drop_to_nobody(gid) < 0)
			_exit(CHILD_SKIP);
		_exit(child_kernel_faults(sock, expect_full));
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static int unprivileged_userfaultfd(void)
{
	FILE *f = fopen("/proc/sys/vm/unprivileged_userfaultfd", "re");
	int v = -1;

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/*
 * A private userfaultfd node (same device as /dev/userfaultfd), group
 * TEST_GID, 0660: what the installed udev rule does to the real one, without
 * touching it. The daemon's socket is given the same group.
 */
static void test_unprivileged_client_full(void **state)
{
	const char *extra[] = { "--socket-group", "64999", NULL };
	char node[128];
	struct harness h;
	struct stat st;

	if (geteuid() != 0 || stat("/dev/userfaultfd", &st) < 0)
		skip();
	assert_int_equal(harness_start_args(&h, extra), 0);
	assert_int_equal(chmod(h.dir, 0711), 0);
	snprintf(node, sizeof(node), "%s/userfaultfd", h.dir);
	assert_int_equal(mknod(node, S_IFCHR | 0600, st.st_rdev), 0);
	assert_int_equal(chown(node, 0, TEST_GID), 0);
	assert_int_equal(chmod(node, 0660), 0);
	assert_int_equal(stat(h.sock, &st), 0);
	assert_int_equal(st.st_gid, TEST_GID);

	assert_int_equal(run_as_nobody(TEST_GID, node, h.sock, true), 0);
	/* The daemon served the nobody client and goes on serving root. */
	check_client(h.sock);
	unlink(node);
	assert_int_equal(harness_stop(&h), 0);
}

static void test_unprivileged_client_user_mode_only(void **state)
{
	const char *extra[] = { "--socket-group", "64999", NULL };
	struct harness h;
	char node[128];
	struct stat st;

	if (geteuid() != 0 || unprivileged_userfaultfd() != 0 ||
	    stat("/dev/userfaultfd", &st) < 0)
		skip();
	assert_int_equal(harness_start_args(&h, extra), 0);
	assert_int_equal(chmod(h.dir, 0711), 0);
	/* The node exists but is root's only: nobody falls back. */
	snprintf(node, sizeof(node), "%s/userfaultfd", h.dir);
	assert_int_equal(mknod(node, S_IFCHR | 0600, st.st_rdev), 0);
	assert_int_equal(run_as_nobody(TEST_GID, node, h.sock, false), 0);
	unlink(node);
	assert_int_equal(harness_stop(&h), 0);
}

/*
 * A shared writable file mapping, file outside every writable directory of
 * the confined daemon: it writes back through the client's descriptor, so
 * ProtectSystem=strict costs nothing.
 */
static void check_file_write_back(const char *sock)
{
	struct upage_options o = { .socket_path = sock,
				   .arena_size = 1UL << 26 };
	char path[] = "/var/tmp/upaged-hard-file-XXXXXX";
	unsigned char *m, back[4 * PAGE];
	int fd = mkostemp(path, O_CLOEXEC);

	assert_true(fd >= 0);
	/* Another user's private file: the daemon, root without
	   CAP_DAC_OVERRIDE, could not open it, and need not. */
	assert_int_equal(fchown(fd, NOBODY, NOBODY), 0);
	assert_int_equal(fchmod(fd, 0600), 0);
	for (size_t i = 0; i < sizeof(back); i++)
		back[i] = (unsigned char)(i * 3);
	assert_int_equal(pwrite(fd, back, sizeof(back), 0), sizeof(back));
	assert_int_equal(upage_connect(&o), 0);
	m = upage_mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED,
		       fd, 0);
	assert_ptr_not_equal(m, MAP_FAILED);
	for (size_t i = 0; i < 4 * PAGE; i++)
		assert_int_equal(m[i], (unsigned char)(i * 3));
	memset(m + PAGE, 0xc3, 2 * PAGE);
	assert_int_equal(upage_msync(m, 4 * PAGE, MS_SYNC), 0);
	assert_int_equal(pread(fd, back, sizeof(back), 0), sizeof(back));
	for (size_t i = 0; i < 4 * PAGE; i++)
		assert_int_equal(back[i], i >= PAGE && i < 3 * PAGE ? 0xc3 :
					  (unsigned char)(i * 3));
	assert_int_equal(upage_munmap(m, 4 * PAGE), 0);
	assert_int_equal(upage_disconnect(), 0);
	close(fd);
	unlink(path);
}

/* A line of /proc/PID/status, e.g. "CapEff:\t0000000000000000". */
static bool status_has(pid_t pid, const char *line)
{
	char path[64], buf[256];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	assert_non_null(f);
	while (!found && fgets(buf, sizeof(buf), f))
		found = !strcmp(buf, line);
	fclose(f);
	return found;
}

/*
 * The confinement upaged.service asks for, as far as it can be had
 * without systemd as PID 1: no capabilities at all (CapabilityBoundingSet=
 * empty), NoNewPrivileges=, a read-only file system but for the socket's
 * directory (ProtectSystem=strict, ProtectHome=read-only) and a network
 * namespace of its own (PrivateNetwork=). The daemon must serve root and
 * an unprivileged client, read(2) into managed memory included.
 */
static void test_hardened_daemon_serves(void **state)
{
	char dir[64], sock[128], node[128], script[1024], ready[160];
	const char *argv[] = { "unshare", "--mount", "--net", "--propagation",
			       "private", "sh", "-c", script, NULL };
	struct stat st;
	struct proc p;

	if (geteuid() != 0 || stat("/dev/userfaultfd", &st) < 0 ||
	    access("/usr/bin/setpriv", X_OK) < 0 ||
	    access("/usr/bin/unshare", X_OK) < 0)
		skip();
	strcpy(dir, "/tmp/upaged-hard-XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0711), 0);
	snprintf(sock, sizeof(sock), "%s/upaged.sock", dir);
	snprintf(node, sizeof(node), "%s/userfaultfd", dir);
	assert_int_equal(mknod(node, S_IFCHR | 0600, st.st_rdev), 0);
	assert_int_equal(chown(node, 0, TEST_GID), 0);
	assert_int_equal(chmod(node, 0660), 0);
	/* Deployed as the units do it: the socket comes from the service
	   manager (a capability-less daemon could not chown its own). */
	snprintf(script, sizeof(script),
		 "mount --bind %s %s && mount -o remount,bind,ro / && "
		 "exec systemd-socket-activate --seqpacket -l %s "
		 "setpriv --no-new-privs --inh-caps=-all --bounding-set=-all "
		 "%s --foreground", dir, dir, sock, harness_bin());
	snprintf(ready, sizeof(ready), "upaged: ready on %s\n", sock);
	proc_start(&p, argv, NULL);
	if (!proc_wait_for(&p, "Listening on"))
		fail_msg("%s", p.out);
	/* SocketGroup=, SocketMode=0660. */
	assert_int_equal(chown(sock, 0, TEST_GID), 0);
	assert_int_equal(chmod(sock, 0660), 0);

	check_client(sock);
	if (!proc_wait_for(&p, ready))
		fail_msg("%s", p.out);
	/* Confined as asked (the same pid: every step exec'd). */
	assert_true(status_has(p.pid, "CapEff:\t0000000000000000\n"));
	assert_true(status_has(p.pid, "CapBnd:\t0000000000000000\n"));
	assert_true(status_has(p.pid, "NoNewPrivs:\t1\n"));
	assert_int_equal(run_as_nobody(TEST_GID, node, sock, true), 0);
	check_client(sock);
	check_file_write_back(sock);
	assert_int_equal(proc_stop(&p), 0);
	unlink(node);
	unlink(sock);
	assert_int_equal(rmdir(dir), 0);
}

/* No userfaultfd at all (a seccomp filter refuses the system call). */
static void test_no_userfaultfd_says_why(void **state)
{
	int status;
	pid_t pid;

	if (geteuid() != 0)
		skip();
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sock_filter f[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
				 offsetof(struct seccomp_data, nr)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_userfaultfd, 0, 1),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog prog = { .len = 4, .filter = f };
		struct upage_options o = { .socket_path = "/nonexistent/sock" };
		const char *why;

		unsetenv("UPAGE_USERFAULTFD_DEV");
		if (drop_to_nobody((gid_t)-1) < 0 ||
		    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
			_exit(CHILD_SKIP);
		if (upage_uffd_kind() != -EPERM)
			_exit(1);
		why = upage_uffd_explain(-EPERM);
		if (!strstr(why, "group upage") ||
		    !strstr(why, "/dev/userfaultfd"))
			_exit(2);
		/* connect fails the same way, before any socket is tried. */
		if (upage_connect(&o) != -EPERM)
			_exit(3);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_errors_name_the_line),
		cmocka_unit_test(test_config_file_and_flags),
		cmocka_unit_test(test_socket_activation),
		cmocka_unit_test(test_socket_activation_wrong_type),
		cmocka_unit_test(test_notify_ready_status_watchdog),
		cmocka_unit_test(test_notify_without_watchdog),
		cmocka_unit_test(test_unprivileged_client_full),
		cmocka_unit_test(test_unprivileged_client_user_mode_only),
		cmocka_unit_test(test_no_userfaultfd_says_why),
		cmocka_unit_test(test_hardened_daemon_serves),
	};

	if (access(harness_bin(), X_OK) < 0)
		return 77;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

/*
 * test_daemon_proto.c - the daemon against bad clients, fuzz style:
 * truncated, oversized, wrong-version, wrong-type, wrong-size and wrong
 * fd-count messages, requests before HELLO, requests on ranges the client
 * does not own, and a run of random messages. Each gets its error (or the
 * connection is dropped), no fd leaks into the daemon, and a well-behaved
 * client is served afterwards.
 */
#include <dirent.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
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

static int raw_connect(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	strcpy(sun.sun_path, h.sock);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	return fd;
}

static void raw_send(int s, const void *buf, size_t len, const int *fds,
		     int nfds)
{
	union {
		char b[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr a;
	} c;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds) {
		struct cmsghdr *cm;

		memset(&c, 0, sizeof(c));
		m.msg_control = c.b;
		m.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	}
	ssize_t n = sendmsg(s, &m, MSG_NOSIGNAL);

	/* A dropped connection shows in the reply (EOF). */
	if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
		return;
	assert_int_equal(n, (ssize_t)len);
}

/* The reply's error, or 1 if the daemon closed the connection. */
static int raw_reply(int s, uint64_t id)
{
	union {
		struct upage_reply r;
		struct upage_stats_reply st;
		char b[UPAGE_MSG_MAX];
	} u;
	struct upage_reply r;
	ssize_t n = recv(s, &u, sizeof(u), 0);

	if (n == 0 || (n < 0 && errno == ECONNRESET))
		return 1;
	if (n < 0)
		fail_msg("recv: %s", strerror(errno));
	if (n == sizeof(u.st) &&
	    u.st.hdr.type == (UPAGE_MSG_STATS | UPAGE_MSG_REPLY))
		return u.st.error;
	assert_int_equal(n, sizeof(r));
	r = u.r;
	assert_int_equal(r.hdr.version, UPAGE_PROTO_VERSION);
	assert_int_equal(r.hdr.len, sizeof(r));
	if (id)
		assert_int_equal(r.hdr.id, id);
	return r.error;
}

static void hdr(void *m, uint16_t type, size_t len, uint64_t id)
{
	struct upage_hdr *hh = m;

	hh->version = UPAGE_PROTO_VERSION;
	hh->type = type;
	hh->len = (uint32_t)len;
	hh->id = id;
}

static int ping(int s)
{
	struct upage_hdr m;

	hdr(&m, UPAGE_MSG_PING, sizeof(m), 4242);
	raw_send(s, &m, sizeof(m), NULL, 0);
	return raw_reply(s, 4242);
}

static int daemon_fds(void)
{
	char path[64];
	struct dirent *d;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", h.pid);
	dir = opendir(path);
	assert_non_null(dir);
	while ((d = readdir(dir)))
		n += d->d_name[0] != '.';
	closedir(dir);
	return n;
}

/* A well-behaved client in a fresh process: map, touch, check. */
static void good_client(void)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		struct upage_options o = { .socket_path = h.sock,
					   .arena_size = 1UL << 28 };
		unsigned char *p;

		if (upage_connect(&o))
			_exit(1);
		p = upage_mmap(NULL, 64 * PG, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED || p[5 * PG])
			_exit(2);
		memset(p, 0x3c, 64 * PG);
		for (size_t i = 0; i < 64 * PG; i++)
			if (p[i] != 0x3c)
				_exit(3);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_bad_headers(void **state)
{
	uint64_t big[UPAGE_MSG_MAX / 8 + 64];
	struct upage_hdr m;
	int s = raw_connect();

	/* Length field disagreeing with the datagram. */
	hdr(&m, UPAGE_MSG_PING, sizeof(m) + 8, 1);
	raw_send(s, &m, sizeof(m), NULL, 0);
	assert_int_equal(raw_reply(s, 1), -EBADMSG);
	/* Unknown type. */
	hdr(&m, 0x7777, sizeof(m), 2);
	raw_send(s, &m, sizeof(m), NULL, 0);
	assert_int_equal(raw_reply(s, 2), -EOPNOTSUPP);
	/* Known type, wrong size. */
	memset(big, 0, sizeof(big));
	hdr(big, UPAGE_MSG_PING, sizeof(m) + 8, 3);
	raw_send(s, big, sizeof(m) + 8, NULL, 0);
	assert_int_equal(raw_reply(s, 3), -EBADMSG);
	hdr(big, UPAGE_MSG_MAP, sizeof(struct upage_map) - 8, 4);
	raw_send(s, big, sizeof(struct upage_map) - 8, NULL, 0);
	assert_int_equal(raw_reply(s, 4), -EBADMSG);
	/* Oversized. */
	hdr(big, UPAGE_MSG_PING, sizeof(big), 5);
	raw_send(s, big, sizeof(big), NULL, 0);
	assert_int_equal(raw_reply(s, 5), -EMSGSIZE);
	/* Requests before HELLO. */
	struct upage_unmap u = { .addr = 1UL << 30, .len = PG };
	hdr(&u, UPAGE_MSG_UNMAP, sizeof(u), 6);
	raw_send(s, &u, sizeof(u), NULL, 0);
	assert_int_equal(raw_reply(s, 6), -ENOTCONN);
	assert_int_equal(ping(s), 0);
	/* Truncated below a header: dropped. */
	raw_send(s, &m, 6, NULL, 0);
	assert_true(raw_reply(s, 0) != 0);
	assert_int_equal(recv(s, &m, sizeof(m), 0), 0);
	close(s);
	/* Wrong version: -EPROTO, then dropped. */
	s = raw_connect();
	hdr(&m, UPAGE_MSG_PING, sizeof(m), 7);
	m.version = UPAGE_PROTO_VERSION + 1;
	raw_send(s, &m, sizeof(m), NULL, 0);
	assert_int_equal(raw_reply(s, 7), -EPROTO);
	assert_int_equal(raw_reply(s, 0), 1);
	close(s);
	good_client();
}

static void test_bad_fds(void **state)
{
	struct upage_hello hello;
	struct upage_hdr m;
	int fds[3], before, s = raw_connect();

	assert_int_equal(ping(s), 0);
	before = daemon_fds();
	fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	fds[1] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	fds[2] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	/* An fd where none belongs. */
	hdr(&m, UPAGE_MSG_PING, sizeof(m), 1);
	raw_send(s, &m, sizeof(m), fds, 1);
	assert_int_equal(raw_reply(s, 1), -EBADF);
	/* HELLO without its fd, with three, and with a non-uffd. */
	memset(&hello, 0, sizeof(hello));
	hello.page_size = PG;
	hello.arena_base = 1UL << 40;
	hello.arena_size = 1UL << 30;
	hello.probe_addr = (1UL << 40) - 2 * PG;
	hdr(&hello, UPAGE_MSG_HELLO, sizeof(hello), 2);
	raw_send(s, &hello, sizeof(hello), NULL, 0);
	assert_int_equal(raw_reply(s, 2), -EBADF);
	hdr(&hello, UPAGE_MSG_HELLO, sizeof(hello), 3);
	raw_send(s, &hello, sizeof(hello), fds, 3);
	assert_int_equal(raw_reply(s, 3), -EBADF);
	hdr(&hello, UPAGE_MSG_HELLO, sizeof(hello), 4);
	raw_send(s, &hello, sizeof(hello), fds, 1);
	assert_int_equal(raw_reply(s, 4), -EBADF);
	/* A FORK_CHILD hello from a process the daemon never saw fork. */
	hello.flags = UPAGE_HELLO_FORK_CHILD;
	hdr(&hello, UPAGE_MSG_HELLO, sizeof(hello), 5);
	raw_send(s, &hello, sizeof(hello), NULL, 0);
	assert_int_equal(raw_reply(s, 5), -ESRCH);
	assert_int_equal(ping(s), 0);
	/* None of those fds stayed in the daemon. */
	assert_true(daemon_fds() <= before);
	close(fds[0]);
	close(fds[1]);
	close(fds[2]);
	close(s);
	good_client();
}

static int make_uffd(void)
{
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_EVENT_UNMAP };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	assert_true(fd >= 0);
	assert_int_equal(ioctl(fd, UFFDIO_API, &api), 0);
	return fd;
}

static void test_ranges_not_owned(void **state)
{
	struct upage_hello hello;
	struct upage_map mp;
	struct upage_unmap um;
	struct upage_protect pr;
	struct upage_remap rm;
	size_t size = 1UL << 24;
	char *resv = mmap(NULL, size + 2 * PG, PROT_NONE, MAP_PRIVATE |
			  MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	int uffd = make_uffd(), s = raw_connect();
	uint64_t arena = (uintptr_t)resv + 2 * PG;

	assert_ptr_not_equal(resv, MAP_FAILED);
	memset(&hello, 0, sizeof(hello));
	hello.page_size = PG;
	hello.arena_base = arena;
	hello.arena_size = size;
	hello.probe_addr = (uintptr_t)resv;
	/* A probe overlapping the arena is refused. */
	hello.probe_addr = arena;
	hdr(&hello, UPAGE_MSG_HELLO, sizeof(hello), 1);
	raw_send(s, &hello, sizeof(hello), &uffd, 1);
	assert_int_equal(raw_reply(s, 1), -EINVAL);
	hello.probe_addr = (uintptr_t)resv;
	hdr(&hello, UPAGE_MSG_HELLO, sizeof(hello), 2);
	raw_send(s, &hello, sizeof(hello), &uffd, 1);
	assert_int_equal(raw_reply(s, 2), 0);
	hdr(&hello, UPAGE_MSG_HELLO, sizeof(hello), 3);
	raw_send(s, &hello, sizeof(hello), &uffd, 1);
	assert_int_equal(raw_reply(s, 3), -EISCONN);
	close(uffd);

	memset(&um, 0, sizeof(um));
	um.addr = arena + size; /* just past the arena */
	um.len = PG;
	hdr(&um, UPAGE_MSG_UNMAP, sizeof(um), 4);
	raw_send(s, &um, sizeof(um), NULL, 0);
	assert_int_equal(raw_reply(s, 4), -EINVAL);
	um.addr = arena - PG; /* the probe pages */
	um.len = 2 * PG;
	hdr(&um, UPAGE_MSG_UNMAP, sizeof(um), 5);
	raw_send(s, &um, sizeof(um), NULL, 0);
	assert_int_equal(raw_reply(s, 5), -EINVAL);
	um.addr = arena;
	um.len = ~0UL - PG; /* wraps */
	hdr(&um, UPAGE_MSG_UNMAP, sizeof(um), 6);
	raw_send(s, &um, sizeof(um), NULL, 0);
	assert_int_equal(raw_reply(s, 6), -EINVAL);

	memset(&mp, 0, sizeof(mp));
	mp.addr = 1UL << 20;
	mp.len = PG;
	mp.prot = PROT_READ;
	mp.flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
	hdr(&mp, UPAGE_MSG_MAP, sizeof(mp), 7);
	raw_send(s, &mp, sizeof(mp), NULL, 0);
	assert_int_equal(raw_reply(s, 7), -EINVAL);
	mp.addr = 0;
	mp.len = 2 * size; /* larger than the arena */
	mp.flags = MAP_PRIVATE | MAP_ANONYMOUS;
	hdr(&mp, UPAGE_MSG_MAP, sizeof(mp), 8);
	raw_send(s, &mp, sizeof(mp), NULL, 0);
	assert_int_equal(raw_reply(s, 8), -ENOMEM);

	memset(&pr, 0, sizeof(pr));
	pr.addr = arena;
	pr.len = PG;
	pr.prot = PROT_READ;
	hdr(&pr, UPAGE_MSG_PROTECT, sizeof(pr), 9);
	raw_send(s, &pr, sizeof(pr), NULL, 0);
	assert_int_equal(raw_reply(s, 9), -ENOMEM);

	memset(&rm, 0, sizeof(rm));
	rm.old_addr = arena;
	rm.old_len = PG;
	rm.new_len = 2 * PG;
	rm.flags = MREMAP_MAYMOVE;
	hdr(&rm, UPAGE_MSG_REMAP, sizeof(rm), 10);
	raw_send(s, &rm, sizeof(rm), NULL, 0);
	assert_int_equal(raw_reply(s, 10), -EFAULT);
	assert_int_equal(ping(s), 0);
	close(s);
	munmap(resv, size + 2 * PG);
	good_client();
}

/* Another client's addresses are not ours: a second library client in
   a child cannot unmap the first one's mapping. */
static void test_other_clients_memory(void **state)
{
	struct upage_options o = { .socket_path = h.sock,
				   .arena_size = 1UL << 28 };
	unsigned char *p;
	int status;
	pid_t pid;

	assert_int_equal(upage_connect(&o), 0);
	p = upage_mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_ptr_not_equal(p, MAP_FAILED);
	memset(p, 0x5e, 4 * PG);
	pid = fork();
	if (pid == 0) {
		/* A fresh connection: its own arena, elsewhere. */
		if (upage_connect(&o))
			_exit(1);
		_exit(upage_munmap(p, 4 * PG) == -1 && errno == EINVAL ? 0 : 2);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	for (size_t i = 0; i < 4 * PG; i++)
		assert_int_equal(p[i], 0x5e);
	assert_int_equal(upage_munmap(p, 4 * PG), 0);
	upage_disconnect();
}

/* Randomized: garbage of every shape, the daemon must stay up. */
static void test_random_messages(void **state)
{
	static const uint16_t types[] = {
		UPAGE_MSG_HELLO, UPAGE_MSG_PING, UPAGE_MSG_MAP,
		UPAGE_MSG_UNMAP, UPAGE_MSG_PROTECT, UPAGE_MSG_REMAP,
		UPAGE_MSG_SYNC, UPAGE_MSG_ADVISE, UPAGE_MSG_STATS, 0x9999,
	};
	uint64_t buf[160];
	unsigned seed = 12345;
	int s = raw_connect(), fds[2], before;

	assert_int_equal(ping(s), 0);
	before = daemon_fds();

	fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	fds[1] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	for (int i = 0; i < 3000; i++) {
		size_t len;
		int nfds;

		for (size_t k = 0; k < sizeof(buf) / 8; k++)
			buf[k] = ((uint64_t)rand_r(&seed) << 33) ^
				 ((uint64_t)rand_r(&seed) << 12) ^
				 (uint64_t)rand_r(&seed);
		len = (size_t)rand_r(&seed) % 96 + 1;
		if (rand_r(&seed) % 4) {
			uint16_t t = types[rand_r(&seed) % 10];
			size_t want = t == UPAGE_MSG_HELLO ?
				sizeof(struct upage_hello) : t == UPAGE_MSG_MAP ?
				sizeof(struct upage_map) : t == UPAGE_MSG_REMAP ?
				sizeof(struct upage_remap) : t == UPAGE_MSG_UNMAP ?
				sizeof(struct upage_unmap) : t == UPAGE_MSG_PING ||
				t == UPAGE_MSG_STATS ? sizeof(struct upage_hdr) :
				sizeof(struct upage_advise);
			if (rand_r(&seed) % 3)
				len = want;
			if (len < sizeof(struct upage_hdr))
				len = sizeof(struct upage_hdr);
			hdr(buf, t, len, (uint64_t)i + 1);
			if (rand_r(&seed) % 8 == 0)
				((struct upage_hdr *)buf)->version ^= 1;
		}
		nfds = rand_r(&seed) % 5 == 0 ? 1 + rand_r(&seed) % 2 : 0;
		raw_send(s, buf, len, fds, nfds);
		if (raw_reply(s, 0) == 1 || ping(s) == 1) {
			close(s); /* dropped: come back */
			s = raw_connect();
		}
	}
	assert_int_equal(ping(s), 0);
	close(s);
	close(fds[0]);
	close(fds[1]);
	good_client();
	/* Every fd sent was closed again (our socket is gone too); the
	   daemon sees the closed sockets in its own time. */
	struct timespec ts = { 0, 2000000 };
	for (int i = 0; i < 5000 && daemon_fds() > before - 1; i++)
		nanosleep(&ts, NULL);
	assert_true(daemon_fds() <= before - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_headers),
		cmocka_unit_test(test_bad_fds),
		cmocka_unit_test(test_ranges_not_owned),
		cmocka_unit_test(test_other_clients_memory),
		cmocka_unit_test(test_random_messages),
	};

	if (access("/dev/userfaultfd", R_OK | W_OK) < 0 && geteuid() != 0)
		return 77;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

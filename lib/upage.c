/*
 * upage.c - libupage: connect to upaged and make mappings it serves.
 *
 * Contract (see <upage/upage.h> for the caller's side)
 *
 * - The daemon decides, the library acts: every call first asks the daemon,
 *   which applies it to its model of this process (and registers new ranges
 *   on our userfaultfd itself, before it answers), and then the library
 *   makes the process's real address space agree:
 *     map     daemon places and registers a range of the PROT_NONE
 *             reservation; we mprotect() it to the asked protection. The
 *             registration survives mprotect, and nothing can touch the
 *             range before it is registered.
 *     unmap   daemon forgets it; we map fresh reservation over it (the
 *             kernel's UFFD_EVENT_UNMAP then finds the model updated).
 *     remap   daemon picks the target; we mremap(MAYMOVE|FIXED) there, or
 *             mprotect the tail it registered (grow in place), or give the
 *             tail back (shrink), and re-reserve what was vacated.
 *     protect, advise: daemon first, then the kernel; sync: daemon only
 *             (anonymous memory has nothing to write back).
 *   The daemon registering (rather than the library) means the library
 *   never keeps the userfaultfd: if the daemon dies the uffd is released
 *   and the kernel serves our faults itself instead of hanging them.
 * - Fork: our probe page (registered, MADV_WIPEONFORK) is missing in a
 *   child. Its first call reads it; that fault reaches the daemon on the
 *   child's own uffd (from UFFD_EVENT_FORK) and names the child's pid, so
 *   the daemon binds that mm to us before our HELLO arrives.
 * - One mutex serialises calls: requests and the kernel calls that follow
 *   them stay in order. Never exits, aborts or prints.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <upage/upage.h>
#include <upage/wire.h>

#define UPAGE_EXPORT __attribute__((visibility("default")))

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define UP_PAGE 4096UL
#define UP_ALIGN(x) (((x) + UP_PAGE - 1) & ~(UP_PAGE - 1))
/* mremap(2) flag, newer than the installed headers. */
#define UP_MREMAP_DONTUNMAP 4
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
/* Write-protect of shared memory: the daemon sees the first write to each
   page of a shared file mapping (exact dirty tracking). */
#define UP_FEATURES_WP (UFFD_FEATURE_PAGEFAULT_FLAG_WP | \
			UFFD_FEATURE_WP_HUGETLBFS_SHMEM)
#define UP_FEATURES (UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | \
		     UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP | \
		     UFFD_FEATURE_THREAD_ID)

static pthread_mutex_t up_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t up_once = PTHREAD_ONCE_INIT;

static struct {
	int sock;               /* -1: not connected */
	pid_t pid;              /* the process sock belongs to */
	bool ever;              /* connected once: no silent reconnect */
	bool forked;            /* fork child that has not said hello */
	unsigned long probe;    /* two pages: probe, then liveness */
	unsigned long arena;
	unsigned long arena_size;
	uint64_t next_id;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
} up = { .sock = -1 };

static void up_atfork_prepare(void)
{
	pthread_mutex_lock(&up_lock);
}

static void up_atfork_parent(void)
{
	pthread_mutex_unlock(&up_lock);
}

/* The child must not talk on the parent's connection. */
static void up_atfork_child(void)
{
	if (up.sock >= 0) {
		close(up.sock);
		up.sock = -1;
		up.forked = true;
	}
	pthread_mutex_init(&up_lock, NULL);
}

static void up_init_once(void)
{
	pthread_atfork(up_atfork_prepare, up_atfork_parent, up_atfork_child);
}

static void up_lost(void)
{
	if (up.sock >= 0)
		close(up.sock);
	up.sock = -1;
}

/*
 * Sends req (len bytes, type) with fd (or -1) and waits for its reply of
 * rlen bytes. 0 (the result is in the reply) or -errno.
 */
static int up_call(void *req, size_t len, uint16_t type, int fd, void *rep,
		   size_t rlen)
{
	struct upage_hdr *h = req, *rh = rep;
	uint64_t buf[UPAGE_MSG_MAX / 8];
	ssize_t n;

	h->version = UPAGE_PROTO_VERSION;
	h->type = type;
	h->len = (uint32_t)len;
	h->id = ++up.next_id;
	n = upage_wire_send(up.sock, req, len, fd, MSG_NOSIGNAL);
	if (n != (ssize_t)len) {
		up_lost();
		return -ENOTCONN;
	}
	do
		n = recv(up.sock, buf, sizeof(buf), 0);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		up_lost();
		return -ENOTCONN;
	}
	memcpy(rep, buf, (size_t)n < rlen ? (size_t)n : rlen);
	if ((size_t)n < sizeof(*rh) || rh->version != UPAGE_PROTO_VERSION) {
		up_lost();
		return -EPROTO;
	}
	if ((size_t)n != rlen || rh->len != rlen || rh->id != h->id ||
	    rh->type != (type | UPAGE_MSG_REPLY)) {
		/* A short reply is the daemon refusing the message itself;
		   its error field is still where ours is. */
		if ((size_t)n == sizeof(struct upage_reply) && rh->id == h->id)
			return ((struct upage_reply *)buf)->error ?: -EPROTO;
		up_lost();
		return -EPROTO;
	}
	return 0;
}

/*
 * Like up_call(), for replies that may carry an fd (*rfd, else -1) and
 * have a variable length: up to rlen bytes, *got says how many.
 */
static int up_call_fd(void *req, size_t len, uint16_t type, int fd,
		      void *rep, size_t rlen, size_t *got, int *rfd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct upage_hdr *h = req, *rh = rep;
	struct iovec iov = { .iov_base = req, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;
	ssize_t n;

	*rfd = -1;
	h->version = UPAGE_PROTO_VERSION;
	h->type = type;
	h->len = (uint32_t)len;
	h->id = ++up.next_id;
	n = upage_wire_send(up.sock, req, len, fd, MSG_NOSIGNAL);
	if (n < 0 && errno == EBADF && fd >= 0)
		return -EBADF; /* the caller's fd; nothing was sent */
	if (n != (ssize_t)len) {
		up_lost();
		return -ENOTCONN;
	}
	iov.iov_base = rep;
	iov.iov_len = rlen;
	memset(&cbuf, 0, sizeof(cbuf));
	msg.msg_control = cbuf.buf;
	msg.msg_controllen = sizeof(cbuf.buf);
	do
		n = recvmsg(up.sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		up_lost();
		return -ENOTCONN;
	}
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
		if (cm->cmsg_level == SOL_SOCKET &&
		    cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(rfd, CMSG_DATA(cm), sizeof(int));
	/* Every reply has the header and an error field. */
	if ((size_t)n < sizeof(struct upage_hdr) + sizeof(int32_t) ||
	    (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
	    rh->version != UPAGE_PROTO_VERSION || rh->len != (size_t)n ||
	    rh->id != h->id || rh->type != (type | UPAGE_MSG_REPLY)) {
		if (*rfd >= 0)
			close(*rfd);
		*rfd = -1;
		up_lost();
		return -EPROTO;
	}
	*got = (size_t)n;
	return 0;
}

/* Plain request answered by struct upage_reply: its error, or -errno. */
static int up_request(void *req, size_t len, uint16_t type, int fd,
		      struct upage_reply *rep)
{
	int r = up_call(req, len, type, fd, rep, sizeof(*rep));

	return r < 0 ? r : rep->error;
}

/* The kind of the userfaultfd in use, UPAGE_UFFD_NONE before connect, and
   the features it was opened with. */
static int up_uffd_kind = UPAGE_UFFD_NONE;
static uint64_t up_uffd_features;

/*
 * A new userfaultfd, the best this process can get, best first: from
 * /dev/userfaultfd (or $UPAGE_USERFAULTFD_DEV), full to whoever may open the
 * node (installation gives group upage access); the syscall, full for
 * CAP_SYS_PTRACE or with vm.unprivileged_userfaultfd=1; the syscall with
 * UFFD_USER_MODE_ONLY, which serves only faults taken in user mode. *kind
 * says which; when none, the errno of the full syscall is the reason
 * (EPERM: not allowed), unless the kernel has no userfaultfd (ENOSYS).
 */
static int up_uffd_new(int *kind)
{
	const char *node = secure_getenv("UPAGE_USERFAULTFD_DEV");
	int dev, fd = -1;

	if (!node || !*node)
		node = "/dev/userfaultfd";
	*kind = UPAGE_UFFD_FULL;
	dev = open(node, O_RDWR | O_CLOEXEC);
	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		close(dev);
	}
	if (fd < 0)
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno == EPERM) {
		*kind = UPAGE_UFFD_USER_ONLY;
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK |
				  UFFD_USER_MODE_ONLY);
		/* EINVAL: a kernel without user-mode-only (< 5.11). */
		if (fd < 0 && errno == EINVAL)
			errno = EPERM;
	}
	if (fd < 0) {
		*kind = UPAGE_UFFD_NONE;
		return -errno;
	}
	return fd;
}

/*
 * A new userfaultfd with the events enabled. The kernel grants
 * UFFD_FEATURE_EVENT_FORK only with CAP_SYS_PTRACE, whatever the kind: an
 * unprivileged client goes without, and its fork children are not clients
 * (their copies of the mappings are the kernel's).
 */
static int up_uffd_open(uint64_t *features, int *kind)
{
	uint64_t want = UP_FEATURES | UP_FEATURES_WP;
	struct uffdio_api api;
	int fd, e;

	for (;;) {
		fd = up_uffd_new(kind);
		if (fd < 0)
			return fd;
		api = (struct uffdio_api){ .api = UFFD_API, .features = want };
		if (ioctl(fd, UFFDIO_API, &api) == 0)
			break;
		e = errno;
		close(fd);
		if (e == EINVAL && (want & UP_FEATURES_WP)) {
			/* Optional: without it the daemon tracks writes
			   to shared file mappings conservatively. */
			want &= ~(uint64_t)UP_FEATURES_WP;
			continue;
		}
		if (e != EPERM || !(want & UFFD_FEATURE_EVENT_FORK)) {
			*kind = UPAGE_UFFD_NONE;
			return -e;
		}
		want &= ~(uint64_t)UFFD_FEATURE_EVENT_FORK;
	}
	if ((api.features & want) != want) {
		close(fd);
		*kind = UPAGE_UFFD_NONE;
		return -EOPNOTSUPP;
	}
	*features = want;
	return fd;
}

static int up_socket(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, e;

	strcpy(sun.sun_path, up.path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static int up_connect_fresh(const struct upage_options *opts)
{
	const char *path = opts ? opts->socket_path : NULL;
	size_t size = opts ? opts->arena_size : 0;
	struct upage_hello hello;
	struct upage_reply rep;
	uint64_t features = 0;
	void *resv;
	int uffd, sock, r, kind;

	if (!path || !*path)
		path = getenv("UPAGED_SOCKET");
	if (!path || !*path)
		path = UPAGE_DEFAULT_SOCKET;
	if (strlen(path) >= sizeof(up.path))
		return -ENAMETOOLONG;
	if (!size) {
		const char *s = getenv("UPAGE_ARENA_SIZE");

		size = s ? strtoul(s, NULL, 0) : 0;
		if (!size)
			size = UPAGE_DEFAULT_ARENA;
	}
	size = UP_ALIGN(size);
	strcpy(up.path, path);

	uffd = up_uffd_open(&features, &kind);
	if (uffd < 0)
		return uffd;
	/* Two probe pages, then the arena; MAP_NORESERVE: costs nothing. */
	resv = mmap(NULL, size + 2 * UP_PAGE, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (resv == MAP_FAILED) {
		r = -errno;
		goto out_uffd;
	}
	if (mprotect(resv, UP_PAGE, PROT_READ) < 0 ||
	    madvise(resv, UP_PAGE, MADV_WIPEONFORK) < 0) {
		r = -errno;
		goto out_resv;
	}
	sock = up_socket();
	if (sock < 0) {
		r = sock;
		goto out_resv;
	}
	up.sock = sock;
	memset(&hello, 0, sizeof(hello));
	hello.page_size = UP_PAGE;
	hello.features = features;
	hello.probe_addr = (unsigned long)resv;
	hello.arena_base = (unsigned long)resv + 2 * UP_PAGE;
	hello.arena_size = size;
	r = up_request(&hello, sizeof(hello), UPAGE_MSG_HELLO, uffd, &rep);
	if (r < 0) {
		up_lost();
		goto out_resv;
	}
	/* The daemon holds its own copy: ours would keep faults waiting for
	   a reader if the daemon died. */
	close(uffd);
	up_uffd_kind = kind;
	up_uffd_features = features;
	up.pid = getpid();
	up.ever = true;
	up.forked = false;
	up.probe = hello.probe_addr;
	up.arena = hello.arena_base;
	up.arena_size = size;
	return 0;
out_resv:
	munmap(resv, size + 2 * UP_PAGE);
out_uffd:
	close(uffd);
	return r;
}

/* First call in a fork child: bind to the mm the daemon made for us. */
static int up_connect_child(void)
{
	struct upage_hello hello;
	struct upage_reply rep;
	int sock, r;

	/* Faults on our own uffd with our tid: the daemon learns our pid. */
	(void)*(volatile const char *)up.probe;
	sock = up_socket();
	if (sock < 0)
		return sock;
	up.sock = sock;
	memset(&hello, 0, sizeof(hello));
	hello.flags = UPAGE_HELLO_FORK_CHILD;
	hello.page_size = UP_PAGE;
	hello.probe_addr = up.probe;
	hello.arena_base = up.arena;
	hello.arena_size = up.arena_size;
	r = up_request(&hello, sizeof(hello), UPAGE_MSG_HELLO, -1, &rep);
	if (r < 0) {
		up_lost();
		return r == -ESRCH ? -ENOTCONN : r;
	}
	up.pid = getpid();
	up.forked = false;
	return 0;
}

/* Makes sure this process has a connection; called with up_lock held. */
static int up_ensure(void)
{
	pthread_once(&up_once, up_init_once);
	if (up.sock >= 0 && up.pid != getpid()) {
		/* Forked without our atfork handler (raw clone). */
		up.sock = -1;
		up.forked = true;
	}
	if (up.sock >= 0)
		return 0;
	/* Without EVENT_FORK the daemon never heard of this child. */
	if (up.forked && !(up_uffd_features & UFFD_FEATURE_EVENT_FORK))
		return -ENOTCONN;
	if (up.forked)
		return up_connect_child();
	if (up.ever)
		return -ENOTCONN;
	return up_connect_fresh(NULL);
}

static bool up_in_arena(unsigned long addr, unsigned long len)
{
	return addr >= up.arena && len <= up.arena_size &&
	       addr - up.arena <= up.arena_size - len;
}

/* Gives [addr, addr + len) back to the reservation. */
static int up_reserve(unsigned long addr, unsigned long len)
{
	void *p = mmap((void *)addr, len, PROT_NONE,
		       MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);

	return p == MAP_FAILED ? -errno : 0;
}

static int up_unmap_locked(unsigned long addr, unsigned long len)
{
	struct upage_unmap m = { .addr = addr, .len = len };
	struct upage_reply rep;
	int r;

	if ((addr & (UP_PAGE - 1)) || !len)
		return -EINVAL;
	len = UP_ALIGN(len);
	if (!up_in_arena(addr, len))
		return -EINVAL;
	r = up_request(&m, sizeof(m), UPAGE_MSG_UNMAP, -1, &rep);
	if (r < 0)
		return r;
	return up_reserve(addr, len);
}

/*
 * The two steps of a file mapping (proto.h): the daemon places it and
 * hands us its page cache; we map that over the reservation, PROT_NONE,
 * and have the daemon register it. *addr gets the address.
 */
/*
 * A request whose reply may carry a descriptor (*memfd, else -1): 0, the
 * reply's error, or -EPROTO for a reply of the wrong size. *got_reply: a
 * whole reply came.
 */
static int up_call_reply_fd(void *req, size_t len, uint16_t type, int fd,
			    struct upage_reply *rep, int *memfd,
			    bool *got_reply)
{
	size_t got = 0;
	int r;

	memset(rep, 0, sizeof(*rep));
	r = up_call_fd(req, len, type, fd, rep, sizeof(*rep), &got, memfd);
	*got_reply = r == 0 && got == sizeof(*rep);
	if (r == 0 && !*got_reply)
		r = -EPROTO;
	return r < 0 ? r : rep->error;
}

/*
 * Maps [a, a + len) of the daemon's page cache memfd at file offset off,
 * shared or private, with no access yet, and has the daemon register it
 * (MAP_COMMIT of commit_len bytes). The caller gives the range back if
 * this fails.
 */
static int up_map_cache(unsigned long a, unsigned long len, bool shared,
			int memfd, uint64_t off, uint64_t commit_len)
{
	struct upage_map_commit cm;
	struct upage_reply rep;
	void *p;

	p = mmap((void *)a, len, PROT_NONE,
		 (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED, memfd,
		 (off_t)off);
	if (p == MAP_FAILED)
		return -errno;
	memset(&cm, 0, sizeof(cm));
	cm.addr = a;
	cm.len = commit_len;
	return up_request(&cm, sizeof(cm), UPAGE_MSG_MAP_COMMIT, -1, &rep);
}

static int up_map_file(struct upage_map *m, int fd, unsigned long *addr)
{
	unsigned long len = UP_ALIGN(m->len);
	struct upage_reply rep;
	unsigned long a;
	bool got_reply;
	int memfd, r;

	r = up_call_reply_fd(m, sizeof(*m), UPAGE_MSG_MAP, fd, &rep, &memfd,
			     &got_reply);
	if (r == 0 && memfd < 0)
		r = -EPROTO;
	if (r < 0) {
		if (memfd >= 0)
			close(memfd);
		/* A placed mapping we cannot use goes back. */
		if (rep.error == 0 && got_reply && up.sock >= 0)
			up_unmap_locked(rep.addr, len);
		return r;
	}
	a = rep.addr;
	if (!up_in_arena(a, len)) {
		/* Never map over anything but our own reservation. */
		close(memfd);
		return -EPROTO;
	}
	r = up_map_cache(a, len, rep.aux == MAP_SHARED, memfd, m->off,
			 m->len);
	close(memfd);
	if (r < 0) {
		if (up.sock >= 0)
			up_unmap_locked(a, len);
		else
			up_reserve(a, len);
		return r;
	}
	*addr = a;
	return 0;
}

static int up_errno(int r)
{
	errno = -r;
	return -1;
}

UPAGE_EXPORT int upage_connect(const struct upage_options *opts)
{
	int r;

	pthread_mutex_lock(&up_lock);
	pthread_once(&up_once, up_init_once);
	if (up.sock >= 0 && up.pid == getpid())
		r = -EISCONN;
	else {
		if (up.sock >= 0)
			up.sock = -1; /* a parent's, inherited */
		r = up_connect_fresh(opts);
	}
	pthread_mutex_unlock(&up_lock);
	return r;
}

UPAGE_EXPORT int upage_disconnect(void)
{
	int r = 0;

	pthread_mutex_lock(&up_lock);
	if (up.sock < 0 || up.pid != getpid())
		r = -ENOTCONN;
	else
		up_lost();
	up.forked = false;
	pthread_mutex_unlock(&up_lock);
	return r;
}

UPAGE_EXPORT int upage_arena(void **base, size_t *size)
{
	int r;

	pthread_mutex_lock(&up_lock);
	r = up_ensure();
	if (r == 0) {
		if (base)
			*base = (void *)up.arena;
		if (size)
			*size = up.arena_size;
	}
	pthread_mutex_unlock(&up_lock);
	return r;
}

UPAGE_EXPORT void *upage_mmap(void *addr, size_t len, int prot, int flags,
			      int fd, off_t off)
{
	unsigned long a = (unsigned long)addr, alen = UP_ALIGN(len);
	struct upage_map m;
	struct upage_reply rep;
	int type = flags & MAP_TYPE, r;

	if (!len || alen < len)
		return errno = EINVAL, MAP_FAILED;
	if (type != MAP_PRIVATE && type != MAP_SHARED &&
	    type != MAP_SHARED_VALIDATE)
		return errno = EINVAL, MAP_FAILED;
	if (!(flags & MAP_ANONYMOUS) && ((off & (UP_PAGE - 1)) || fd < 0))
		return errno = fd < 0 ? EBADF : EINVAL, MAP_FAILED;
	pthread_mutex_lock(&up_lock);
	r = up_ensure();
	if (r < 0)
		goto out;
	if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) {
		if ((a & (UP_PAGE - 1)) || !up_in_arena(a, alen)) {
			r = -EINVAL;
			goto out;
		}
		/* MAP_FIXED replaces: drop the old pages first, so that
		   the range we register is fresh reservation. */
		if (!(flags & MAP_FIXED_NOREPLACE)) {
			r = up_unmap_locked(a, alen);
			if (r < 0)
				goto out;
		}
	}
	memset(&m, 0, sizeof(m));
	m.addr = a;
	m.len = len;
	m.off = (uint64_t)off;
	m.prot = prot;
	m.flags = flags;
	if ((flags & MAP_ANONYMOUS) && type == MAP_PRIVATE) {
		r = up_request(&m, sizeof(m), UPAGE_MSG_MAP, -1, &rep);
		if (r < 0)
			goto out;
		a = rep.addr;
	} else {
		/* Anonymous shared memory too: the daemon's memfd. */
		if (flags & MAP_ANONYMOUS) {
			m.off = 0;
			fd = -1;
		}
		r = up_map_file(&m, fd, &a);
		if (r < 0)
			goto out;
	}
	if (prot != PROT_NONE && mprotect((void *)a, alen, prot) < 0) {
		r = -errno;
		up_unmap_locked(a, alen);
		goto out;
	}
	if (flags & MAP_POPULATE)
		madvise((void *)a, alen, (prot & PROT_WRITE) ?
			MADV_POPULATE_WRITE : MADV_POPULATE_READ);
out:
	pthread_mutex_unlock(&up_lock);
	if (r < 0)
		return errno = -r, MAP_FAILED;
	return (void *)a;
}

UPAGE_EXPORT int upage_rmap_query(int fd, uint64_t first, uint64_t npages,
				  struct upage_rmap_entry *out, size_t max,
				  size_t *total)
{
	uint64_t buf[UPAGE_MSG_MAX / 8];
	struct upage_rmap_reply *rep = (void *)buf;
	struct upage_rmap_query q;
	size_t got, n = 0;
	int r, rfd;

	if (fd < 0)
		return -EBADF;
	pthread_mutex_lock(&up_lock);
	r = up_ensure();
	while (r == 0) {
		memset(&q, 0, sizeof(q));
		q.first = first;
		q.npages = npages;
		q.skip = n;
		r = up_call_fd(&q, sizeof(q), UPAGE_MSG_RMAP_QUERY, fd, rep,
			       sizeof(buf), &got, &rfd);
		if (r < 0)
			break;
		if (rfd >= 0)
			close(rfd);
		if (rep->error) {
			r = rep->error;
			break;
		}
		if (got != sizeof(*rep) + rep->count * sizeof(rep->entry[0])) {
			r = -EPROTO;
			break;
		}
		for (uint32_t i = 0; i < rep->count && n + i < max; i++)
			out[n + i] = rep->entry[i];
		n += rep->count;
		/* Stop when all came, or the caller's room is full. */
		if (!rep->count || n >= rep->total || n >= max) {
			if (total)
				*total = rep->total;
			break;
		}
	}
	pthread_mutex_unlock(&up_lock);
	return r < 0 ? r : (int)(n < max ? n : max);
}

UPAGE_EXPORT int upage_munmap(void *addr, size_t len)
{
	int r;

	pthread_mutex_lock(&up_lock);
	r = up_ensure();
	if (r == 0)
		r = up_unmap_locked((unsigned long)addr, len);
	pthread_mutex_unlock(&up_lock);
	return r < 0 ? up_errno(r) : 0;
}

UPAGE_EXPORT int upage_mprotect(void *addr, size_t len, int prot)
{
	struct upage_protect m = { .addr = (unsigned long)addr, .len = len,
				   .prot = prot };
	struct upage_reply rep;
	int r;

	if ((m.addr & (UP_PAGE - 1)) || UP_ALIGN(len) < len)
		return up_errno(-EINVAL);
	if (!len)
		return 0;
	pthread_mutex_lock(&up_lock);
	r = up_ensure();
	if (r == 0)
		r = up_request(&m, sizeof(m), UPAGE_MSG_PROTECT, -1, &rep);
	if (r == 0 && mprotect(addr, len, prot) < 0)
		r = -errno;
	pthread_mutex_unlock(&up_lock);
	return r < 0 ? up_errno(r) : 0;
}

/*
 * The client's part of a file mapping that grew (proto.h): moved first
 * when it moves, then the page cache over the new tail, committed, then
 * given the mapping's protection. A tail that cannot be had goes back,
 * and the mapping keeps its old length (where it now is).
 */
static int up_remap_file(unsigned long old, unsigned long olen,
			 unsigned long nu, unsigned long nlen,
			 const struct upage_reply *rep, int memfd)
{
	void *p;
	int r;

	if (!up_in_arena(nu, nlen))
		return -EPROTO;
	if (UPAGE_REMAP_ACTION(rep->aux) == UPAGE_REMAP_MOVE) {
		p = mremap((void *)old, olen, olen,
			   MREMAP_MAYMOVE | MREMAP_FIXED, (void *)nu);
		if (p == MAP_FAILED)
			return -errno;
		r = up_reserve(old, olen);
		if (r < 0)
			return r;
	}
	r = up_map_cache(nu + olen, nlen - olen,
			 rep->aux & UPAGE_REMAP_SHARED, memfd,
			 UPAGE_REMAP_TAIL_OFF(rep->aux), nlen - olen);
	if (r == 0 && rep->prot != PROT_NONE &&
	    mprotect((void *)(nu + olen), nlen - olen, rep->prot) < 0)
		r = -errno;
	if (r < 0)
		up_unmap_locked(nu + olen, nlen - olen);
	return r;
}

UPAGE_EXPORT void *upage_mremap(void *old_addr, size_t old_len,
				size_t new_len, int flags, ...)
{
	unsigned long old = (unsigned long)old_addr, nu = 0;
	unsigned long olen = UP_ALIGN(old_len), nlen = UP_ALIGN(new_len);
	struct upage_remap m;
	struct upage_reply rep;
	void *p;
	bool got_reply;
	int r, memfd = -1;

	if (flags & MREMAP_FIXED) {
		va_list ap;

		va_start(ap, flags);
		nu = (unsigned long)va_arg(ap, void *);
		va_end(ap);
	}
	if ((old & (UP_PAGE - 1)) || !new_len ||
	    (flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | UP_MREMAP_DONTUNMAP)) ||
	    ((flags & MREMAP_FIXED) && !(flags & MREMAP_MAYMOVE)) ||
	    ((flags & MREMAP_FIXED) && ((nu & (UP_PAGE - 1)) ||
	     (nu < old + olen && old < nu + nlen))))
		return errno = EINVAL, MAP_FAILED;
	pthread_mutex_lock(&up_lock);
	r = up_ensure();
	if (r < 0)
		goto out;
	if (flags & MREMAP_FIXED) {
		/* The kernel unmaps the target first; so do we, so that its
		   UFFD_EVENT_UNMAP cannot be mistaken for one behind our
		   back once the model holds the moved mapping there. */
		r = up_unmap_locked(nu, nlen);
		if (r < 0)
			goto out;
	}
	memset(&m, 0, sizeof(m));
	m.old_addr = old;
	m.old_len = old_len;
	m.new_len = new_len;
	m.new_addr = nu;
	m.flags = flags;
	r = up_call_reply_fd(&m, sizeof(m), UPAGE_MSG_REMAP, -1, &rep, &memfd,
			     &got_reply);
	if (r == 0 && (rep.aux & UPAGE_REMAP_FILE) && memfd < 0)
		r = -EPROTO;
	if (r < 0)
		goto out;
	nu = rep.addr;
	if (rep.aux & UPAGE_REMAP_FILE) {
		r = up_remap_file(old, olen, nu, nlen, &rep, memfd);
		goto out;
	}
	switch (rep.aux) {
	case UPAGE_REMAP_MOVE:
		p = mremap(old_addr, olen, nlen, MREMAP_MAYMOVE | MREMAP_FIXED |
			   (flags & UP_MREMAP_DONTUNMAP), (void *)nu);
		if (p == MAP_FAILED) {
			r = -errno;
			break;
		}
		/* With DONTUNMAP the source stays mapped, now empty. */
		if (!(flags & UP_MREMAP_DONTUNMAP))
			r = up_reserve(old, olen);
		break;
	case UPAGE_REMAP_GROW:
		if (rep.prot != PROT_NONE &&
		    mprotect((void *)(old + olen), nlen - olen, rep.prot) < 0)
			r = -errno;
		break;
	case UPAGE_REMAP_SHRINK:
		if (nlen < olen)
			r = up_reserve(old + nlen, olen - nlen);
		break;
	}
out:
	if (memfd >= 0)
		close(memfd);
	pthread_mutex_unlock(&up_lock);
	if (r < 0)
		return errno = -r, MAP_FAILED;
	return (void *)nu;
}

UPAGE_EXPORT int upage_msync(void *addr, size_t len, int flags)
{
	struct upage_sync m = { .addr = (unsigned long)addr, .len = len,
				.flags = flags };
	struct upage_reply rep;
	int r;

	pthread_mutex_lock(&up_lock);
	r = up_ensure();
	if (r == 0)
		r = up_request(&m, sizeof(m), UPAGE_MSG_SYNC, -1, &rep);
	pthread_mutex_unlock(&up_lock);
	return r < 0 ? up_errno(r) : 0;
}

UPAGE_EXPORT int upage_madvise(void *addr, size_t len, int advice)
{
	struct upage_advise m = { .addr = (unsigned long)addr, .len = len,
				  .advice = advice };
	struct upage_reply rep;
	int r;

	if ((m.addr & (UP_PAGE - 1)) || UP_ALIGN(len) < len)
		return up_errno(-EINVAL);
	if (!len)
		return 0;
	pthread_mutex_lock(&up_lock);
	r = up_ensure();
	if (r == 0 || r == -ENOMEM) {
		int d = r;

		if (r == 0)
			d = up_request(&m, sizeof(m), UPAGE_MSG_ADVISE, -1,
				       &rep);
		/* Like the kernel: what is mapped gets the advice even when
		   part of the range is not (ENOMEM). */
		if (d == 0 || d == -ENOMEM) {
			r = madvise(addr, len, advice) < 0 ? -errno : d;
		} else {
			r = d;
		}
	}
	pthread_mutex_unlock(&up_lock);
	return r < 0 ? up_errno(r) : 0;
}

UPAGE_EXPORT int upage_stats(struct upage_stats_reply *out)
{
	struct upage_hdr h;
	int r;

	pthread_mutex_lock(&up_lock);
	r = up_ensure();
	if (r == 0)
		r = up_call(&h, sizeof(h), UPAGE_MSG_STATS, -1, out,
			    sizeof(*out));
	if (r == 0)
		r = out->error;
	pthread_mutex_unlock(&up_lock);
	return r;
}

UPAGE_EXPORT int upage_uffd_kind(void)
{
	uint64_t features;
	int r, kind;

	pthread_mutex_lock(&up_lock);
	if ((up.sock >= 0 && up.pid == getpid()) || up.forked) {
		/* In use (a fork child inherits its parent's kind). */
		r = up_uffd_kind;
	} else {
		/* Not connected: try, the way upage_connect() would. */
		r = up_uffd_open(&features, &kind);
		if (r >= 0) {
			close(r);
			r = kind;
		}
	}
	pthread_mutex_unlock(&up_lock);
	return r;
}

UPAGE_EXPORT const char *upage_uffd_explain(int kind)
{
	switch (kind) {
	case UPAGE_UFFD_FULL:
		return "full userfaultfd: every fault is served, also those "
		       "taken inside the kernel (read(2) into a mapping)";
	case UPAGE_UFFD_USER_ONLY:
		return "user-mode-only userfaultfd: faults taken inside the "
		       "kernel (read(2), write(2) or recv(2) with a managed "
		       "buffer) fail with EFAULT; for a full one, join group "
		       "upage (read-write access to /dev/userfaultfd)";
	case -EPERM:
	case -EACCES:
		return "no userfaultfd allowed: no access to /dev/userfaultfd "
		       "(join group upage) and the userfaultfd system call is "
		       "refused (vm.unprivileged_userfaultfd=0 without "
		       "user-mode-only support, or a seccomp filter)";
	case -ENOSYS:
		return "no userfaultfd: the kernel is built without it";
	case -EOPNOTSUPP:
		return "the kernel's userfaultfd lacks the event features "
		       "upaged needs (fork, remap, remove, unmap)";
	case -EMFILE:
	case -ENFILE:
		return "no userfaultfd: out of file descriptors";
	default:
		return "no userfaultfd";
	}
}

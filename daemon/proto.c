/*
 * proto.c - receiving and checking protocol messages, sending replies.
 *
 * Contract: proto_recv() takes one message and at most one fd off a
 * SOCK_SEQPACKET socket (any further fd is closed at once, every fd arrives
 * O_CLOEXEC); proto_check() says whether a received message is well formed
 * for its type: version, exact size, fd count. Nothing here trusts the
 * client: every field is checked before anyone reads it.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <upage/wire.h>

#include "upaged.h"

/* Room for a few fds: a client sending more must not make us leak them. */
#define PROTO_MAX_FDS 8

/*
 * Returns the message length, 0 at end of file, -EAGAIN when nothing is
 * waiting, -EMSGSIZE for an oversized message (already consumed, its fds
 * closed) or another -errno. *fd gets the first fd, or -1; *nfds how
 * many came (all but the first are already closed).
 */
ssize_t proto_recv(int sock, void *buf, size_t size, int *fd, int *nfds)
{
	union {
		char buf[CMSG_SPACE(PROTO_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { .iov_base = buf, .iov_len = size };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = cbuf.buf,
		.msg_controllen = sizeof(cbuf.buf),
	};
	struct cmsghdr *cm;
	ssize_t n;

	*fd = -1;
	*nfds = 0;
	do
		n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;

	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int f;

			memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(f));
			/* Only the first fd is kept; the rest are closed now
			   and the count makes the message bad. */
			if (*fd < 0)
				*fd = f;
			else
				close(f);
			(*nfds)++;
		}
	}
	/* MSG_CTRUNC: fds beyond our buffer were dropped by the kernel. */
	if (msg.msg_flags & MSG_CTRUNC)
		*nfds = PROTO_MAX_FDS + 1;
	if (msg.msg_flags & MSG_TRUNC) {
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		*nfds = 0;
		return -EMSGSIZE;
	}
	return n;
}

struct proto_layout {
	uint16_t type;
	uint32_t size;
};

static const struct proto_layout proto_layouts[] = {
	{ UPAGE_MSG_HELLO, sizeof(struct upage_hello) },
	{ UPAGE_MSG_PING, sizeof(struct upage_hdr) },
	{ UPAGE_MSG_MAP, sizeof(struct upage_map) },
	{ UPAGE_MSG_UNMAP, sizeof(struct upage_unmap) },
	{ UPAGE_MSG_PROTECT, sizeof(struct upage_protect) },
	{ UPAGE_MSG_REMAP, sizeof(struct upage_remap) },
	{ UPAGE_MSG_SYNC, sizeof(struct upage_sync) },
	{ UPAGE_MSG_ADVISE, sizeof(struct upage_advise) },
	{ UPAGE_MSG_STATS, sizeof(struct upage_hdr) },
	{ UPAGE_MSG_MAP_COMMIT, sizeof(struct upage_map_commit) },
	{ UPAGE_MSG_RMAP_QUERY, sizeof(struct upage_rmap_query) },
	{ UPAGE_MSG_STATUS, sizeof(struct upage_hdr) },
	{ UPAGE_MSG_CLIENTS, sizeof(struct upage_query) },
	{ UPAGE_MSG_MAPS, sizeof(struct upage_query) },
	{ UPAGE_MSG_FILES, sizeof(struct upage_query) },
};

/* How many fds a well-formed message of this type carries. */
static int proto_fds_expected(const void *buf)
{
	const struct upage_hdr *h = buf;

	switch (h->type) {
	case UPAGE_MSG_HELLO: {
		const struct upage_hello *m = buf;
		return (m->flags & UPAGE_HELLO_FORK_CHILD) ? 0 : 1;
	}
	case UPAGE_MSG_MAP: {
		const struct upage_map *m = buf;
		return (m->flags & MAP_ANONYMOUS) ? 0 : 1;
	}
	case UPAGE_MSG_RMAP_QUERY:
		return 1; /* the file, opened by the asker */
	default:
		return 0;
	}
}

/*
 * Checks a message of n bytes that came with nfds fds. Returns 0 or
 * the -errno to reply with; *drop is set when the connection must go
 * (wrong version: we cannot know what the rest means).
 */
int proto_check(const void *buf, size_t n, int nfds, bool *drop)
{
	const struct upage_hdr *h = buf;
	size_t i;

	*drop = false;
	if (n < sizeof(*h)) {
		*drop = true; /* not even a header to answer to */
		return -EBADMSG;
	}
	if (h->version != UPAGE_PROTO_VERSION) {
		*drop = true;
		return -EPROTO;
	}
	if (h->len != n)
		return -EBADMSG;
	for (i = 0; i < sizeof(proto_layouts) / sizeof(proto_layouts[0]); i++)
		if (proto_layouts[i].type == h->type)
			break;
	if (i == sizeof(proto_layouts) / sizeof(proto_layouts[0]))
		return -EOPNOTSUPP;
	if (n != proto_layouts[i].size)
		return -EBADMSG;
	if (nfds != proto_fds_expected(buf))
		return -EBADF;
	return 0;
}

/* Sends one message; the socket is non-blocking and a client that does not
   read its replies is dropped by the caller on -EAGAIN. */
int proto_send(int sock, const void *msg, size_t len)
{
	ssize_t n;

	do
		n = send(sock, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == (ssize_t)len ? 0 : -EIO;
}

/* As proto_reply(), with fd (if >= 0) passed along (SCM_RIGHTS). */
/* The reply to req, as every reply to a request is laid out. */
static void proto_reply_fill(struct upage_reply *r,
			     const struct upage_hdr *req, int error,
			     uint64_t addr, int32_t prot, uint64_t aux)
{
	memset(r, 0, sizeof(*r));
	r->hdr.version = UPAGE_PROTO_VERSION;
	r->hdr.type = (uint16_t)(req->type | UPAGE_MSG_REPLY);
	r->hdr.len = sizeof(*r);
	r->hdr.id = req->id;
	r->error = error;
	r->addr = addr;
	r->prot = prot;
	r->aux = aux;
}

int proto_reply_fd(int sock, const struct upage_hdr *req, int error,
		   uint64_t addr, int32_t prot, uint64_t aux, int fd)
{
	struct upage_reply r;
	ssize_t n;

	proto_reply_fill(&r, req, error, addr, prot, aux);
	n = upage_wire_send(sock, &r, sizeof(r), fd,
			    MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0)
		return -errno;
	return n == (ssize_t)sizeof(r) ? 0 : -EIO;
}

void proto_reply(int sock, const struct upage_hdr *req, int error,
		 uint64_t addr, int32_t prot, uint64_t aux)
{
	struct upage_reply r;

	proto_reply_fill(&r, req, error, addr, prot, aux);
	proto_send(sock, &r, sizeof(r));
}

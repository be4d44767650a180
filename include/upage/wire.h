/*
 * wire.h - sending one protocol message, with at most one descriptor.
 *
 * Shared by upaged, libupage and upagectl so that every side puts an fd on
 * the wire the same way (one SCM_RIGHTS cmsg with one int). Internal: not
 * installed with the public headers.
 */
#ifndef UPAGE_WIRE_H
#define UPAGE_WIRE_H

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

/*
 * Sends len bytes of buf on sock as one message, with fd attached when it
 * is not -1; retries on EINTR. Returns what sendmsg(2) returns.
 */
static inline ssize_t upage_wire_send(int sock, const void *buf, size_t len,
				      int fd, int flags)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (fd >= 0) {
		struct cmsghdr *cm;

		memset(&cbuf, 0, sizeof(cbuf));
		msg.msg_control = cbuf.buf;
		msg.msg_controllen = sizeof(cbuf.buf);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &msg, flags);
	while (n < 0 && errno == EINTR);
	return n;
}

#endif

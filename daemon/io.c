/*
 * io.c - io_uring requests batched per loop iteration (contract in io.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "io.h"

enum io_op { IO_READ, IO_WRITE, IO_FSYNC, IO_NOP };

struct io_req {
	enum io_op op;
	int fd;
	char *buf;
	size_t len;   /* bytes still to transfer */
	off_t off;    /* where the rest goes */
	size_t done_bytes;
	io_done_fn done;
	void *arg;
};

/* Takes an SQE, submitting what is queued first if the ring is full. */
static struct io_uring_sqe *io_get_sqe(struct io_ctx *io)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);

	if (!sqe) {
		io_flush(io);
		sqe = io_uring_get_sqe(&io->ring);
	}
	return sqe;
}

static int io_queue(struct io_ctx *io, struct io_req *req)
{
	struct io_uring_sqe *sqe = io_get_sqe(io);

	if (!sqe)
		return -EBUSY;
	switch (req->op) {
	case IO_READ:
		io_uring_prep_read(sqe, req->fd, req->buf, (unsigned)req->len,
				   (uint64_t)req->off);
		break;
	case IO_WRITE:
		io_uring_prep_write(sqe, req->fd, req->buf, (unsigned)req->len,
				    (uint64_t)req->off);
		break;
	case IO_FSYNC:
		io_uring_prep_fsync(sqe, req->fd, 0);
		break;
	case IO_NOP:
		io_uring_prep_nop(sqe);
		break;
	}
	io_uring_sqe_set_data(sqe, req);
	io->queued++;
	return 0;
}

static int io_submit_new(struct io_ctx *io, enum io_op op, int fd, void *buf,
			 size_t len, off_t off, io_done_fn done, void *arg)
{
	struct io_req *req;
	int err;

	if ((fd < 0 && op != IO_NOP) ||
	    (op != IO_FSYNC && op != IO_NOP && (!buf || len == 0)) || off < 0)
		return -EINVAL;
	/* One SQE moves at most 2 GiB - 4 KiB; callers use far less. */
	if (len > 0x7ffff000UL)
		return -EINVAL;
	req = malloc(sizeof(*req));
	if (!req)
		return -ENOMEM;
	*req = (struct io_req){ .op = op, .fd = fd, .buf = buf, .len = len,
				.off = off, .done = done, .arg = arg };
	err = io_queue(io, req);
	if (err) {
		free(req);
		return err;
	}
	io->inflight++;
	return 0;
}

int io_read(struct io_ctx *io, int fd, void *buf, size_t len, off_t off,
	    io_done_fn done, void *arg)
{
	return io_submit_new(io, IO_READ, fd, buf, len, off, done, arg);
}

int io_write(struct io_ctx *io, int fd, const void *buf, size_t len,
	     off_t off, io_done_fn done, void *arg)
{
	return io_submit_new(io, IO_WRITE, fd, (void *)buf, len, off, done,
			     arg);
}

int io_fsync(struct io_ctx *io, int fd, io_done_fn done, void *arg)
{
	return io_submit_new(io, IO_FSYNC, fd, NULL, 0, 0, done, arg);
}

int io_nop(struct io_ctx *io, io_done_fn done, void *arg)
{
	return io_submit_new(io, IO_NOP, -1, NULL, 0, 0, done, arg);
}

void io_flush(struct io_ctx *io)
{
	int ret;

	if (!io->queued)
		return;
	do {
		ret = io_uring_submit(&io->ring);
	} while (ret == -EINTR);
	io->stats.submits++;
	if (ret > 0)
		io->queued -= (unsigned)ret < io->queued ? (unsigned)ret
							 : io->queued;
}

static void io_finish(struct io_ctx *io, struct io_req *req, ssize_t res)
{
	if (res < 0)
		io->stats.errors++;
	else if (req->op == IO_READ)
		io->stats.reads++, io->stats.read_bytes += (uint64_t)res;
	else if (req->op == IO_WRITE)
		io->stats.writes++, io->stats.write_bytes += (uint64_t)res;
	else if (req->op == IO_FSYNC)
		io->stats.fsyncs++;
	io->inflight--;
	if (req->done)
		req->done(req->arg, res);
	free(req);
}

/* One completion: finish the request, or queue the rest of a short one. */
static void io_complete(struct io_ctx *io, struct io_req *req, int res)
{
	if (res == -EAGAIN || res == -EINTR) {
		if (io_queue(io, req) == 0)
			return;
	}
	if (res < 0) {
		io_finish(io, req, res);
		return;
	}
	if (req->op == IO_FSYNC || req->op == IO_NOP) {
		io_finish(io, req, 0);
		return;
	}
	req->done_bytes += (size_t)res;
	if (res == 0 || (size_t)res == req->len) {
		/* Complete, or the file ended (a zero-byte write is -EIO). */
		if (res == 0 && req->op == IO_WRITE)
			io_finish(io, req, -EIO);
		else
			io_finish(io, req, (ssize_t)req->done_bytes);
		return;
	}
	req->buf += res;
	req->len -= (size_t)res;
	req->off += res;
	if (io_queue(io, req))
		io_finish(io, req, -EIO);
}

static void io_reap(struct io_ctx *io)
{
	struct io_uring_cqe *cqe;

	while (io_uring_peek_cqe(&io->ring, &cqe) == 0) {
		struct io_req *req = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&io->ring, cqe);
		io_complete(io, req, res);
	}
}

static void io_eventfd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct io_ctx *io = w->data;
	uint64_t n;

	(void)loop;
	(void)revents;
	/* The count only says "look"; the CQ ring is the truth. */
	while (read(io->eventfd, &n, sizeof(n)) < 0 && errno == EINTR)
		;
	io_reap(io);
}

static void io_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	(void)loop;
	(void)revents;
	io_flush(w->data);
}

int io_init(struct io_ctx *io, struct ev_loop *loop, unsigned int entries)
{
	int ret;

	memset(io, 0, sizeof(*io));
	io->loop = loop;
	ret = io_uring_queue_init(entries, &io->ring, 0);
	if (ret < 0)
		return ret;
	io->eventfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (io->eventfd < 0) {
		ret = -errno;
		io_uring_queue_exit(&io->ring);
		return ret;
	}
	ret = io_uring_register_eventfd(&io->ring, io->eventfd);
	if (ret < 0) {
		close(io->eventfd);
		io_uring_queue_exit(&io->ring);
		return ret;
	}
	ev_io_init(&io->eventfd_watcher, io_eventfd_cb, io->eventfd, EV_READ);
	io->eventfd_watcher.data = io;
	ev_io_start(loop, &io->eventfd_watcher);
	ev_prepare_init(&io->prepare_watcher, io_prepare_cb);
	io->prepare_watcher.data = io;
	ev_prepare_start(loop, &io->prepare_watcher);
	return 0;
}

void io_drain(struct io_ctx *io)
{
	struct io_uring_cqe *cqe;

	while (io->inflight) {
		io_flush(io);
		if (io_uring_wait_cqe(&io->ring, &cqe) < 0)
			break;
		io_reap(io);
	}
}

void io_exit(struct io_ctx *io)
{
	io_drain(io);
	ev_io_stop(io->loop, &io->eventfd_watcher);
	ev_prepare_stop(io->loop, &io->prepare_watcher);
	io_uring_unregister_eventfd(&io->ring);
	close(io->eventfd);
	io_uring_queue_exit(&io->ring);
}

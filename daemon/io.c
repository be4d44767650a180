/*
 * io.c - io_uring requests batched per loop iteration, and the copy thread
 * (contract in io.h).
 *
 * Copies into a memfd are CPU work, not I/O. io_uring would run them on
 * its workers one at a time per file too (it serialises buffered writes to
 * one inode), but behind reads and in no order we choose: a thread of our
 * own takes them from a queue where the urgent ones go first.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "io.h"

enum io_op { IO_READ, IO_WRITE, IO_FSYNC, IO_NOP, IO_COPY };

struct io_req {
	enum io_op op;
	int fd;
	char *buf;
	size_t len;   /* bytes still to transfer */
	off_t off;    /* where the rest goes */
	size_t done_bytes;
	io_done_fn done;
	void *arg;
	int in_fd;    /* IO_COPY without buf: the source */
	ssize_t res;  /* IO_COPY: the outcome, for the loop */
	unsigned int flags; /* IO_COPY: IO_COPY_* */
	struct io_req *next;
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
	case IO_COPY: /* never queued here: the copy thread's */
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
	if (req->op == IO_COPY)
		io->copying--;
	if (res < 0)
		io->stats.errors++;
	else if (req->op == IO_COPY)
		io->stats.copies++, io->stats.copy_bytes += (uint64_t)res;
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

/* Completions queued for the loop to run (a deferred-task-work ring). */
static bool io_work_pending(struct io_ctx *io)
{
	return IO_URING_READ_ONCE(*io->ring.sq.kflags) & IORING_SQ_TASKRUN;
}

static void io_reap(struct io_ctx *io)
{
	struct io_uring_cqe *cqe;

	if (io_work_pending(io))
		io_uring_get_events(&io->ring);
	while (io_uring_peek_cqe(&io->ring, &cqe) == 0) {
		struct io_req *req = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&io->ring, cqe);
		io_complete(io, req, res);
	}
}

/* The first page of a copy: written last (io_copy_run). */
#define IO_COPY_HEAD 4096UL

/*
 * [from, from + len) of req through a pipe: the source's cached pages go
 * in by reference.
 */
static ssize_t io_copy_splice(struct io_req *req, int pipefd[2], size_t from,
			      size_t len)
{
	loff_t in = req->off + (off_t)from, out = in;
	size_t left = len;
	ssize_t err = 0;

	if (pipefd[0] < 0) {
		if (pipe2(pipefd, O_CLOEXEC) < 0)
			return -errno;
		fcntl(pipefd[1], F_SETPIPE_SZ, 1 << 20);
	}
	while (left && !err) {
		ssize_t n = splice(req->in_fd, &in, pipefd[1], NULL, left,
				   SPLICE_F_MOVE);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? -errno : 0;
			break; /* 0: the source ended */
		}
		left -= (size_t)n;
		/* Drained every round: the next splice in never waits. */
		while (n > 0 && !err) {
			ssize_t w = splice(pipefd[0], NULL, req->fd, &out,
					   (size_t)n, SPLICE_F_MOVE);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				err = w < 0 ? -errno : -EIO;
			else
				n -= w;
		}
	}
	if (err) {
		/* The pipe may hold data now: the next copy starts clean. */
		close(pipefd[0]);
		close(pipefd[1]);
		pipefd[0] = pipefd[1] = -1;
		return err;
	}
	return (ssize_t)(len - left);
}

/* [from, from + len) of req: spliced, or written from its buffer. */
static ssize_t io_copy_part(struct io_req *req, int pipefd[2], size_t from,
			    size_t len)
{
	size_t done = 0;

	if (!req->buf)
		return io_copy_splice(req, pipefd, from, len);
	while (done < len) {
		ssize_t n = pwrite(req->fd, req->buf + from + done, len - done,
				   req->off + (off_t)(from + done));

		if (n > 0)
			done += (size_t)n;
		else if (n == 0)
			return -EIO;
		else if (errno != EINTR)
			return -errno;
	}
	return (ssize_t)done;
}

/*
 * The rest first, the first page last: a reader following the data (a
 * client scanning a file) faults on that page and waits once for the
 * whole run, instead of chasing the copy a page at a time, each page
 * another fault.
 */
static ssize_t io_copy_run(struct io_req *req, int pipefd[2])
{
	size_t head = req->len < IO_COPY_HEAD ? req->len : IO_COPY_HEAD;
	ssize_t rest = 0, first;

	if (req->flags & IO_COPY_WHOLE)
		return io_copy_part(req, pipefd, 0, req->len);
	if (req->len > head) {
		rest = io_copy_part(req, pipefd, head, req->len - head);
		if (rest < 0)
			return rest;
	}
	first = io_copy_part(req, pipefd, 0, head);
	return first < 0 ? first : first + rest;
}

/* A copy finished (on either thread): the loop reports it. */
static void io_copy_finished(struct io_ctx *io, struct io_req *req)
{
	uint64_t one = 1;

	req->next = NULL;
	pthread_mutex_lock(&io->lock);
	if (io->done_tail)
		io->done_tail->next = req;
	else
		io->done = req;
	io->done_tail = req;
	pthread_mutex_unlock(&io->lock);
	/* The eventfd the ring signals too: one watcher for both. */
	if (write(io->eventfd, &one, sizeof(one)) < 0) {
		/* Only a full counter fails, and then the loop wakes anyway. */
	}
}

static void *io_copier(void *arg)
{
	struct io_ctx *io = arg;
	int pipefd[2] = { -1, -1 };
	struct io_req *req;

	pthread_mutex_lock(&io->lock);
	for (;;) {
		while (!io->todo && !io->stopping)
			pthread_cond_wait(&io->more, &io->lock);
		req = io->todo;
		if (!req)
			break;
		io->todo = req->next;
		io->todo_count--;
		if (!io->todo)
			io->todo_tail = NULL;
		if (io->todo_urgent_tail == req)
			io->todo_urgent_tail = NULL;
		pthread_mutex_unlock(&io->lock);
		req->res = io_copy_run(req, pipefd);
		io_copy_finished(io, req);
		pthread_mutex_lock(&io->lock);
	}
	pthread_mutex_unlock(&io->lock);
	if (pipefd[0] >= 0) {
		close(pipefd[0]);
		close(pipefd[1]);
	}
	return NULL;
}

int io_copy(struct io_ctx *io, int in_fd, const void *buf, int out_fd,
	    size_t len, off_t off, unsigned int flags, io_done_fn done,
	    void *arg)
{
	struct io_req *req;

	if (out_fd < 0 || (!buf && in_fd < 0) || len == 0 || off < 0)
		return -EINVAL;
	req = malloc(sizeof(*req));
	if (!req)
		return -ENOMEM;
	*req = (struct io_req){ .op = IO_COPY, .fd = out_fd, .in_fd = in_fd,
				.buf = (char *)buf, .len = len, .off = off,
				.flags = flags, .done = done, .arg = arg };
	io->inflight++;
	io->copying++;
	if (!io->copier_on) {
		/* No thread could be started: copy here, report as ever. */
		int pipefd[2] = { -1, -1 };

		req->res = io_copy_run(req, pipefd);
		if (pipefd[0] >= 0) {
			close(pipefd[0]);
			close(pipefd[1]);
		}
		io_copy_finished(io, req);
		return 0;
	}
	pthread_mutex_lock(&io->lock);
	if (flags & IO_COPY_URGENT) {
		/* After the urgent ones already waiting, before the rest. */
		struct io_req **pp = io->todo_urgent_tail ?
				     &io->todo_urgent_tail->next : &io->todo;

		req->next = *pp;
		*pp = req;
		if (!req->next)
			io->todo_tail = req;
		io->todo_urgent_tail = req;
	} else {
		if (io->todo_tail)
			io->todo_tail->next = req;
		else
			io->todo = req;
		io->todo_tail = req;
	}
	io->todo_count++;
	pthread_cond_signal(&io->more);
	pthread_mutex_unlock(&io->lock);
	return 0;
}

/* Reports the copies finished, in the order they finished. */
static void io_reap_copies(struct io_ctx *io)
{
	struct io_req *req, *next;

	pthread_mutex_lock(&io->lock);
	req = io->done;
	io->done = io->done_tail = NULL;
	pthread_mutex_unlock(&io->lock);
	for (; req; req = next) {
		next = req->next;
		io_finish(io, req, req->res);
	}
}

static void io_eventfd_clear(struct io_ctx *io)
{
	uint64_t n;

	while (read(io->eventfd, &n, sizeof(n)) < 0 && errno == EINTR)
		;
}

static void io_eventfd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct io_ctx *io = w->data;

	(void)loop;
	(void)revents;
	/* The count only says "look"; the CQ ring and the list are the truth. */
	io_eventfd_clear(io);
	io_reap(io);
	io_reap_copies(io);
}

/* Submits, then reports what has finished, without waiting. */
static bool io_poll(struct io_ctx *io)
{
	io_flush(io);
	/* The copy thread's list is read without its lock: a glance, and
	   io_reap_copies() takes the lock. */
	if (!io_uring_cq_ready(&io->ring) && !io_work_pending(io) &&
	    !__atomic_load_n(&io->done, __ATOMIC_ACQUIRE))
		return false;
	io_reap(io);
	io_reap_copies(io);
	return true;
}

bool io_wait(struct io_ctx *io, unsigned long usec)
{
	struct __kernel_timespec ts = {
		.tv_sec = (long long)(usec / 1000000),
		.tv_nsec = (long long)(usec % 1000000) * 1000,
	};
	struct io_uring_cqe *cqe;

	io_flush(io);
	/* Copies report through the eventfd: those are only polled. */
	if (io->inflight > io->copying && !io_uring_cq_ready(&io->ring) &&
	    !__atomic_load_n(&io->done, __ATOMIC_ACQUIRE))
		io_uring_wait_cqe_timeout(&io->ring, &cqe, &ts);
	return io_poll(io);
}

static void io_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	(void)loop;
	(void)revents;
	io_flush(w->data);
}

/* The copy thread; without one, copies are made in place. */
static void io_start_copier(struct io_ctx *io)
{
	sigset_t all, old;

	/* Signals are the loop's: the thread starts with all blocked. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	io->copier_on = pthread_create(&io->copier, NULL, io_copier, io) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int io_init(struct io_ctx *io, struct ev_loop *loop, unsigned int entries)
{
	int ret;

	memset(io, 0, sizeof(*io));
	io->loop = loop;
	/*
	 * Completions run only when the loop asks (io_reap, io_wait): no
	 * interrupt of the daemon's thread for each (an IPI and a trip into
	 * the kernel, costly on a VM), and a thread waiting in io_wait is
	 * woken by the completion itself. Kernels before 6.1 have no such
	 * mode: completions then run as task work, as ever.
	 */
	ret = io_uring_queue_init(entries, &io->ring,
				  IORING_SETUP_SINGLE_ISSUER |
					  IORING_SETUP_DEFER_TASKRUN |
					  IORING_SETUP_TASKRUN_FLAG);
	if (ret == -EINVAL)
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
	pthread_mutex_init(&io->lock, NULL);
	pthread_cond_init(&io->more, NULL);
	io_start_copier(io);
	return 0;
}

void io_drain(struct io_ctx *io)
{
	struct pollfd p = { .fd = io->eventfd, .events = POLLIN };
	struct io_uring_cqe *cqe;

	while (io->inflight) {
		io_flush(io);
		if (io->inflight > io->copying) {
			if (io_uring_wait_cqe(&io->ring, &cqe) < 0)
				break;
		} else if (poll(&p, 1, -1) < 0 && errno != EINTR) {
			break;
		}
		io_eventfd_clear(io);
		io_reap(io);
		io_reap_copies(io);
	}
}

void io_exit(struct io_ctx *io)
{
	io_drain(io);
	pthread_mutex_lock(&io->lock);
	io->stopping = true;
	pthread_cond_broadcast(&io->more);
	pthread_mutex_unlock(&io->lock);
	if (io->copier_on)
		pthread_join(io->copier, NULL);
	io->copier_on = false;
	pthread_cond_destroy(&io->more);
	pthread_mutex_destroy(&io->lock);
	ev_io_stop(io->loop, &io->eventfd_watcher);
	ev_prepare_stop(io->loop, &io->prepare_watcher);
	io_uring_unregister_eventfd(&io->ring);
	close(io->eventfd);
	io_uring_queue_exit(&io->ring);
}

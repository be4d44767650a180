/*
 * io.h - backing-store I/O through io_uring, driven by the daemon's libev loop.
 *
 * Contract
 *
 * - io_read()/io_write()/io_fsync() only queue a request. Everything queued
 *   during one loop iteration is submitted at once, just before the loop
 *   sleeps (an ev_prepare watcher), so a burst of faults costs one
 *   io_uring_enter. io_flush() submits at once for callers that need it.
 * - Completions arrive through an eventfd registered with the ring and
 *   watched by the loop; each request's callback runs exactly once, from the
 *   loop, with the byte count or -errno.
 * - Short transfers are continued until the request is complete, the file
 *   ends (reads: the callback gets the shorter count) or an error occurs.
 * - The buffer must stay valid until the callback has run.
 * - io_copy() fills a file (the daemon's memfd page caches) from memory or
 *   from another file on the copy thread, so that copying never holds up
 *   the loop; its callback too runs from the loop. Copies run in the order
 *   queued, IO_COPY_URGENT ones first. One thread: writes into one memfd
 *   take its inode lock, so a second would mostly wait for the first.
 * - io_drain() waits for every request in flight (shutdown, msync).
 * - Single-threaded: all calls from the loop's thread. The copy thread
 *   touches nothing but the request it copies.
 */
#ifndef UPAGED_IO_H
#define UPAGED_IO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>
#include <liburing.h>

typedef void (*io_done_fn)(void *arg, ssize_t res);

struct io_stats {
	uint64_t reads;        /* requests completed */
	uint64_t writes;
	uint64_t fsyncs;
	uint64_t read_bytes;
	uint64_t write_bytes;
	uint64_t errors;       /* requests that ended in -errno */
	uint64_t submits;      /* io_uring_submit calls */
	uint64_t copies;
	uint64_t copy_bytes;
};

struct io_req;

struct io_ctx {
	struct io_uring ring;
	struct ev_loop *loop;
	ev_io eventfd_watcher;
	ev_prepare prepare_watcher;
	int eventfd;
	unsigned int queued;     /* SQEs not yet submitted */
	unsigned int inflight;   /* requests whose callback has not run */
	unsigned int copying;    /* of which copies */
	struct io_stats stats;
	/* The copy thread: a queue of copies to do, a list of copies done. */
	pthread_t copier;
	bool copier_on;          /* it runs; else copies are made in place */
	pthread_mutex_t lock;
	pthread_cond_t more;
	struct io_req *todo, *todo_tail, *todo_urgent_tail;
	unsigned int todo_count; /* copies not started */
	struct io_req *done, *done_tail;
	bool stopping;
};

/* Sets up a ring of `entries` slots on loop; -errno on failure. */
int io_init(struct io_ctx *io, struct ev_loop *loop, unsigned int entries);
/* Waits for what is in flight, then tears down. */
void io_exit(struct io_ctx *io);

int io_read(struct io_ctx *io, int fd, void *buf, size_t len, off_t off,
	    io_done_fn done, void *arg);
int io_write(struct io_ctx *io, int fd, const void *buf, size_t len,
	     off_t off, io_done_fn done, void *arg);
int io_fsync(struct io_ctx *io, int fd, io_done_fn done, void *arg);
/* Does nothing, then calls done(arg, 0) from the loop like any request:
   work finished at once reports in the same order as the rest. */
int io_nop(struct io_ctx *io, io_done_fn done, void *arg);

/*
 * Copies len bytes to out_fd at off: from buf, or when buf is NULL from
 * in_fd at the same offset (spliced: in_fd's cached pages are read by
 * reference, copied once). The callback gets len, fewer bytes if in_fd
 * ended, or -errno. The fds and buf must stay valid until it has run.
 */
#define IO_COPY_URGENT 1u /* ahead of every copy not yet started */
#define IO_COPY_WHOLE 2u  /* one write, from the start (never the first
			     page last): a huge page's zeroes never show */
int io_copy(struct io_ctx *io, int in_fd, const void *buf, int out_fd,
	    size_t len, off_t off, unsigned int flags, io_done_fn done,
	    void *arg);

/* Submits what is queued now. */
void io_flush(struct io_ctx *io);
/* Runs completions until nothing is in flight. */
void io_drain(struct io_ctx *io);
/*
 * Submits what is queued, waits up to usec microseconds for a read or
 * write to end if none has, then reports what has finished: true if
 * anything had. For a caller whose client waits on a read: the
 * completion wakes the thread, which costs less than polling for it on a
 * VM, where each completion would interrupt the polling thread. Copies
 * are not waited for, only reported.
 */
bool io_wait(struct io_ctx *io, unsigned long usec);

#endif

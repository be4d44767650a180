/*
 * uffd_floor.h - the benches' reference userfaultfd pager: one handler
 * that reads each message and answers it with UFFDIO_COPY; the page comes
 * from a buffer of zeroes or, given a file, from pread of the page at the
 * same offset. Nothing else (no cache, no budget, no readahead): the
 * least a pager built on userfaultfd pays, to compare upaged with.
 * - UFFD_FLOOR_THREAD: a thread of the faulting process, blocking in poll,
 *   copying into private anonymous memory.
 * - UFFD_FLOOR_PROCESS: a process of its own, in upaged's conditions: a
 *   fork child answering for its parent through the inherited uffd, that
 *   polls the uffd instead of sleeping (upaged polls while its clients
 *   fault) and copies into a shared memfd mapping (upaged's page cache is
 *   one; a copy there costs more than into anonymous memory).
 */
#ifndef UPAGED_UFFD_FLOOR_H
#define UPAGED_UFFD_FLOOR_H

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

enum uffd_floor_kind {
	UFFD_FLOOR_THREAD,
	UFFD_FLOOR_PROCESS,
	UFFD_FLOOR_KINDS, /* how many */
};

#define UFFD_FLOOR_PG 4096UL

struct uffd_floor {
	int uffd;
	int fd;                 /* pages read from here, or -1: zeroes */
	unsigned long cluster;  /* pages per fault */
	unsigned long start, end;
	void *buf;              /* cluster pages, page-aligned */
	int memfd;              /* behind the range, or -1: anonymous */
	unsigned long *failed;  /* shared: faults answered by a wake alone */
	enum uffd_floor_kind kind;
	pthread_t thread;
	pid_t pid;
};

static void *uffd_floor_handler(void *arg)
{
	struct uffd_floor *f = arg;
	const unsigned long pg = UFFD_FLOOR_PG;
	struct uffd_msg msg;

	for (;;) {
		/* The process polls: it ends by SIGKILL (uffd_floor_stop). */
		if (f->kind == UFFD_FLOOR_PROCESS) {
			if (read(f->uffd, &msg, sizeof(msg)) != sizeof(msg)) {
				if (errno != EAGAIN && errno != EINTR)
					return NULL;
				__builtin_ia32_pause();
				continue;
			}
		} else {
			struct pollfd pfd = { .fd = f->uffd, .events = POLLIN };

			if (poll(&pfd, 1, -1) < 0)
				continue;
			if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL))
				return NULL;
			if (read(f->uffd, &msg, sizeof(msg)) != sizeof(msg))
				continue;
		}
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		unsigned long a = msg.arg.pagefault.address & ~(pg - 1);
		unsigned long len = f->cluster * pg;

		if (a + len > f->end)
			len = f->end - a;
		struct uffdio_copy c = { .dst = a,
					 .src = (unsigned long)f->buf,
					 .len = len };
		bool ok = f->fd < 0 ||
			  pread(f->fd, f->buf, len, (off_t)(a - f->start)) ==
				  (ssize_t)len;

		if (!ok || (ioctl(f->uffd, UFFDIO_COPY, &c) < 0 &&
			    c.copy <= 0)) {
			struct uffdio_range w = { a, pg };

			/* The thread is not left waiting: it faults again. */
			__atomic_fetch_add(f->failed, 1, __ATOMIC_RELAXED);
			ioctl(f->uffd, UFFDIO_WAKE, &w);
		}
	}
}

/*
 * Maps len bytes served by a handler of the given kind (see above:
 * private anonymous memory, or a shared memfd) and returns them; exits 77
 * (skipped) without userfaultfd.
 */
static void *uffd_floor_start(struct uffd_floor *f, unsigned long len,
			      unsigned long cluster, int fd,
			      enum uffd_floor_kind kind)
{
	struct uffdio_api api = { .api = UFFD_API };
	pid_t parent = getpid();
	void *p;

	*f = (struct uffd_floor){ .fd = fd, .cluster = cluster,
				  .kind = kind, .memfd = -1 };
	f->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (f->uffd < 0 || ioctl(f->uffd, UFFDIO_API, &api) < 0)
		goto fail;
	f->buf = mmap(NULL, cluster * UFFD_FLOOR_PG, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	f->failed = mmap(NULL, sizeof(*f->failed), PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (kind == UFFD_FLOOR_PROCESS) {
		f->memfd = memfd_create("uffd-floor", MFD_CLOEXEC);
		if (f->memfd < 0 || ftruncate(f->memfd, (off_t)len) < 0)
			goto fail;
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED,
			 f->memfd, 0);
	} else {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	}
	if (f->buf == MAP_FAILED || f->failed == MAP_FAILED ||
	    p == MAP_FAILED)
		goto fail;
	f->start = (unsigned long)p;
	f->end = f->start + len;
	struct uffdio_register reg = {
		.range = { f->start, len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	if (ioctl(f->uffd, UFFDIO_REGISTER, &reg) < 0)
		goto fail;
	if (kind == UFFD_FLOOR_THREAD) {
		if (pthread_create(&f->thread, NULL, uffd_floor_handler, f))
			goto fail;
		return p;
	}
	/* The child's copy of the range is not registered (no EVENT_FORK):
	   the uffd answers for the parent's. */
	f->pid = fork();
	if (f->pid < 0)
		goto fail;
	if (f->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == parent)
			uffd_floor_handler(f);
		_exit(0);
	}
	return p;
fail:
	perror("bench: userfaultfd handler");
	exit(77);
}

/* Ends the handler and unmaps everything; the faults it could not copy. */
static unsigned long uffd_floor_stop(struct uffd_floor *f)
{
	unsigned long failed = *f->failed;

	munmap((void *)f->start, f->end - f->start);
	if (f->kind == UFFD_FLOOR_THREAD) {
		pthread_cancel(f->thread);
		pthread_join(f->thread, NULL);
	} else {
		kill(f->pid, SIGKILL);
		waitpid(f->pid, NULL, 0);
	}
	close(f->uffd);
	if (f->memfd >= 0)
		close(f->memfd);
	munmap(f->buf, f->cluster * UFFD_FLOOR_PG);
	munmap(f->failed, sizeof(*f->failed));
	return failed;
}

#endif

/*
 * fault.c - reading userfaultfds: page faults, and the events that keep each
 * mm's model equal to the client's real address space.
 *
 * Contract
 *
 * - Every uffd is O_NONBLOCK and read until EAGAIN, a batch of messages per
 *   read(). Page faults go to the faulting VMA's vm_ops->fault() (the policy),
 *   which fills through fault_fill_zero() and friends; write-protect faults
 *   (a tracked shared file mapping's first write to a page) go to
 *   reclaim_wp_fault(), which marks the page dirty and unprotects it.
 * - No faulting thread is left waiting: a fill that installs the page wakes
 *   it (the ioctl does), EEXIST (someone filled it first) and any fill error
 *   on a live client end in an explicit UFFDIO_WAKE, and EAGAIN (the kernel
 *   has an event for us that we have not read yet) defers the fault until
 *   that event is read and the mm has settled.
 * - ESRCH/ENOSPC from a fill, a hung-up uffd, or the pidfd of the client
 *   becoming readable mean the process is gone: umm_kill() frees its mm.
 * - Events: UNMAP/REMAP that the library caused find the model already
 *   updated (the request came first) and are no-ops; ones done behind the
 *   library's back (plain munmap/mremap) are applied to the model, and the
 *   arena range the kernel vacated is marked as a hole so that nothing is
 *   placed there again. REMOVE (MADV_DONTNEED) needs nothing for anonymous
 *   memory: the next touch faults and is zero-filled. FORK gives us the
 *   child's uffd: its mm is a dup_mmap() of the parent's, served at once
 *   and bound to a pid by its first fault (UFFD_FEATURE_THREAD_ID).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "file.h"

#ifndef MREMAP_FIXED
#define MREMAP_FIXED 2
#endif
#ifndef UFFDIO_POISON
/* Kernel 6.6; the installed headers are older. */
struct uffdio_poison {
	struct uffdio_range range;
#define UFFDIO_POISON_MODE_DONTWAKE ((__u64)1 << 0)
	__u64 mode;
	__s64 updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, 0x08, struct uffdio_poison)
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

struct fault_ctx {
	struct umm *umm;
};

/* When the batch of messages being handled was read (service time). */
static uint64_t fault_read_ns;

static void fault_uffd_cb(struct ev_loop *loop, ev_io *w, int revents);
static void fault_pidfd_cb(struct ev_loop *loop, ev_io *w, int revents);

struct umm *umm_new(struct client *c, int uffd, uint64_t features,
		    unsigned long base, unsigned long size,
		    unsigned long probe)
{
	struct umm *u = calloc(1, sizeof(*u));

	if (!u)
		return NULL;
	mm_init(&u->mm, base, base + size);
	u->uffd = uffd;
	u->pidfd = -1;
	u->features = features;
	u->probe_addr = probe;
	u->client = c;
	ev_io_init(&u->uffd_w, fault_uffd_cb, uffd, EV_READ);
	u->uffd_w.data = u;
	ev_io_start(upaged.loop, &u->uffd_w);
	u->next = upaged.mms;
	if (u->next)
		u->next->prev = u;
	upaged.mms = u;
	upaged.nmms++;
	return u;
}

/* Ties u to process tgid: its pidfd tells us when it dies. */
void umm_bind(struct umm *u, pid_t tgid)
{
	int fd;

	if (u->pid || tgid <= 0)
		return;
	u->pid = tgid;
	fd = (int)syscall(SYS_pidfd_open, tgid, 0);
	if (fd < 0) {
		/* Gone already, or no pidfds here (old kernel, valgrind):
		   the reaper watches every mm without a pidfd. */
		log_debug("pidfd_open %d: %s", tgid, strerror(errno));
		ev_timer_again(upaged.loop, &upaged.reap_w);
		return;
	}
	u->pidfd = fd;
	ev_io_init(&u->pidfd_w, fault_pidfd_cb, fd, EV_READ);
	u->pidfd_w.data = u;
	ev_io_start(upaged.loop, &u->pidfd_w);
}

void umm_kill(struct umm *u, const char *why)
{
	log_debug("mm of pid %d freed: %s", u->pid, why);
	if (u->client) {
		struct client *c = u->client;

		u->client = NULL;
		c->umm = NULL;
		client_free(c, why);
	}
	file_umm_gone(u);
	ev_io_stop(upaged.loop, &u->uffd_w);
	/* Closing the uffd wakes every thread still waiting on it: the kernel
	   then resolves their faults itself. */
	close(u->uffd);
	if (u->pidfd >= 0) {
		ev_io_stop(upaged.loop, &u->pidfd_w);
		close(u->pidfd);
	}
	exit_mmap(&u->mm);
	if (u->prev)
		u->prev->next = u->next;
	else
		upaged.mms = u->next;
	if (u->next)
		u->next->prev = u->prev;
	upaged.nmms--;
	free(u->deferred);
	free(u);
}

/* The thread group of a thread, from /proc (a fault names a thread). */
static pid_t fault_tgid_of(pid_t tid)
{
	char path[64], line[128];
	pid_t tgid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", tid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Tgid: %d", &tgid) == 1)
			break;
	fclose(f);
	return tgid;
}

int fault_register(struct umm *u, unsigned long addr, unsigned long len,
		   bool wp)
{
	struct uffdio_register reg = {
		.range = { .start = addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING |
			(wp ? UFFDIO_REGISTER_MODE_WP : 0),
	};

	if (ioctl(u->uffd, UFFDIO_REGISTER, &reg) < 0) {
		log_debug("register %#lx+%#lx: %s", addr, len, strerror(errno));
		return -errno;
	}
	return 0;
}

int fault_protect(struct umm *u, unsigned long addr, unsigned long len,
		  bool wp)
{
	struct uffdio_writeprotect w = {
		.range = { .start = addr, .len = len },
		.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};
	int r;

	do
		r = ioctl(u->uffd, UFFDIO_WRITEPROTECT, &w);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return 0;
	/* ENOSPC: the mm is gone, as ESRCH for the fills. */
	return errno == ENOSPC ? -ESRCH : -errno;
}

int fault_unregister(struct umm *u, unsigned long addr, unsigned long len)
{
	struct uffdio_range r = { .start = addr, .len = len };

	return ioctl(u->uffd, UFFDIO_UNREGISTER, &r) < 0 ? -errno : 0;
}

struct umm *fault_umm(const struct vm_fault *vmf)
{
	return ((struct fault_ctx *)vmf->ctx)->umm;
}

void fault_wake(struct umm *u, unsigned long addr, unsigned long len)
{
	struct uffdio_range r = { .start = addr, .len = len };

	u->cnt.wakes++;
	upaged.cnt.wakes++;
	if (ioctl(u->uffd, UFFDIO_WAKE, &r) < 0)
		log_debug("wake %#lx: %s", addr, strerror(errno));
}

/*
 * SIGBUS for whoever touches [addr, addr + len), as the kernel gives for a
 * page it cannot read: the waiting thread is woken into it. Falls back to a
 * plain wake where poisoning is refused (the page became present).
 */
void fault_poison(struct umm *u, unsigned long addr, unsigned long len)
{
	struct uffdio_poison p = { .range = { .start = addr, .len = len } };

	if (ioctl(u->uffd, UFFDIO_POISON, &p) < 0) {
		log_debug("poison %#lx: %s", addr, strerror(errno));
		fault_wake(u, addr, len);
	}
}

static void fault_count_fill(struct umm *u, unsigned long pages)
{
	u->cnt.fill_pages += pages;
	u->cnt.fill_calls++;
	upaged.cnt.fill_pages += pages;
	upaged.cnt.fill_calls++;
}

/*
 * Installs the page at data as the one at addr in u (UFFDIO_COPY), waking
 * whoever waits there; write-protected if wp. In a shared mapping of a
 * memfd the page joins its page cache. 0 or -errno (-EEXIST: a page is
 * there already).
 */
int fault_fill_page(struct umm *u, unsigned long addr, const void *data,
		    bool wp)
{
	struct uffdio_copy c = {
		.dst = addr, .src = (unsigned long)data, .len = PAGE_SIZE,
		.mode = wp ? UFFDIO_COPY_MODE_WP : 0,
	};

	if (ioctl(u->uffd, UFFDIO_COPY, &c) < 0)
		return -errno;
	fault_count_fill(u, 1);
	return 0;
}

/*
 * Installs zeroed pages at [addr, addr + len) (len at most the cluster)
 * in the client of vmf, waking whoever waits there. A write fault gets
 * private pages (UFFDIO_COPY); a read fault the shared zero page
 * (UFFDIO_ZEROPAGE), which costs no memory until written. The kernel stops
 * at the first page already present, so the range is clipped to those.
 * Returns the pages installed, 0 when the first page was already there
 * (the faulting thread was woken), -EAGAIN to retry after reading events,
 * or -ESRCH when the client is gone.
 */
long fault_fill_zero(struct vm_fault *vmf, unsigned long addr,
		     unsigned long len)
{
	struct umm *u = ((struct fault_ctx *)vmf->ctx)->umm;
	bool copy = vmf->flags & FAULT_FLAG_WRITE;
	long done;
	int r, e;

	if (len > upaged.cluster * PAGE_SIZE)
		len = upaged.cluster * PAGE_SIZE;
again:
	do {
		if (copy) {
			struct uffdio_copy c = {
				.dst = addr, .src = (unsigned long)upaged.zero,
				.len = len,
			};
			r = ioctl(u->uffd, UFFDIO_COPY, &c);
			done = c.copy;
		} else {
			struct uffdio_zeropage z = {
				.range = { .start = addr, .len = len },
			};
			r = ioctl(u->uffd, UFFDIO_ZEROPAGE, &z);
			done = z.zeropage;
		}
		e = errno;
	} while (r < 0 && e == EINTR);
	if (r < 0 && e == ENOENT && done <= 0 && len > PAGE_SIZE) {
		/* The kernel does not merge every pair of VMAs the model
		   does (anon_vma), and a fill may not cross from one of its
		   VMAs into the next: fill the faulting page alone. */
		len = PAGE_SIZE;
		goto again;
	}
	if (r == 0) {
		fault_count_fill(u, len >> PAGE_SHIFT);
		return len >> PAGE_SHIFT;
	}
	if (done > 0) {
		/* Stopped at a present page; what was filled is awake. */
		fault_count_fill(u, done >> PAGE_SHIFT);
		return done >> PAGE_SHIFT;
	}
	switch (e) {
	case EAGAIN:
		return -EAGAIN;
	case EEXIST:
		u->cnt.fill_eexist++;
		upaged.cnt.fill_eexist++;
		fault_wake(u, addr, PAGE_SIZE);
		return 0;
	case ESRCH:
	case ENOSPC:
		return -ESRCH;
	default:
		/* ENOENT: unregistered under us; the retried fault goes to
		   the kernel. Anything else: never leave the thread hanging. */
		log_debug("fill %#lx: %s", addr, strerror(e));
		fault_wake(u, addr, PAGE_SIZE);
		return 0;
	}
}

static int fault_defer(struct umm *u, unsigned long addr, unsigned int flags)
{
	if (u->ndeferred == u->deferred_cap) {
		size_t cap = u->deferred_cap ? 2 * u->deferred_cap : 16;
		void *p = realloc(u->deferred, cap * sizeof(*u->deferred));

		if (!p) {
			/* Better a spurious re-fault than a hang. */
			fault_wake(u, addr, PAGE_SIZE);
			return 0;
		}
		u->deferred = p;
		u->deferred_cap = cap;
	}
	u->deferred[u->ndeferred].addr = addr;
	u->deferred[u->ndeferred].flags = flags;
	u->ndeferred++;
	u->cnt.fill_eagain++;
	upaged.cnt.fill_eagain++;
	return 0;
}

/* Serves one fault at addr (page aligned). 0, or -ESRCH: client gone. */
static int fault_page(struct umm *u, unsigned long addr, unsigned int flags)
{
	struct fault_ctx ctx = { .umm = u };
	struct vm_fault vmf = { .address = addr, .flags = flags, .ctx = &ctx };
	struct vm_area_struct *vma;
	long r;

	vma = find_vma(&u->mm, addr);
	if (vma && vma->vm_start <= addr && vma->vm_ops &&
	    vma->vm_ops->fault) {
		vmf.pgoff = vma_pgoff_at(vma, addr);
		r = vma->vm_ops->fault(vma, &vmf);
	} else {
		/* The probe page, or registered memory the model does not
		   hold (grown behind our back): anonymous, so zeroes are
		   what the kernel would give too. */
		r = fault_fill_zero(&vmf, addr, PAGE_SIZE);
	}
	if (r == -EAGAIN)
		return fault_defer(u, addr, flags);
	return r == -ESRCH ? -ESRCH : 0;
}

/* Faults that met a pending event; retried once the events are read. */
static int fault_retry(struct umm *u)
{
	size_t n = u->ndeferred;
	struct deferred_fault *d;
	int r = 0;

	if (!n)
		return 0;
	d = u->deferred;
	u->deferred = NULL;
	u->ndeferred = u->deferred_cap = 0;
	for (size_t i = 0; i < n && r == 0; i++)
		r = fault_page(u, d[i].addr, d[i].flags);
	free(d);
	return r;
}

/* Marks [start, end) of the arena, vacated by the kernel, as a hole. */
static void fault_make_hole(struct umm *u, unsigned long start,
			    unsigned long end)
{
	struct mmap_req req = {
		.addr = start, .len = end - start, .prot = PROT_NONE,
		.flags = MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS,
		.ops = &hole_vm_ops, .fmode = MAP_FMODE_READ,
		.vm_flags = VM_IO | VM_DONTCOPY,
	};
	long r;

	if (start < u->mm.mmap_base)
		start = req.addr = u->mm.mmap_base;
	if (end > u->mm.task_size)
		end = u->mm.task_size;
	if (start >= end)
		return;
	req.len = end - start;
	r = do_mmap(&u->mm, &req, NULL);
	if (r < 0)
		log_warn("pid %d: cannot mark hole %#lx-%#lx: %s", u->pid,
			 start, end, strerror((int)-r));
}

/* Does [start, end) hold anything the library did not already remove? */
static bool fault_model_has(struct umm *u, unsigned long start,
			    unsigned long end)
{
	struct vm_area_struct *vma = find_vma_intersection(&u->mm, start, end);

	for (; vma && vma->vm_start < end; vma = vma_next(vma))
		if (vma->vm_ops != &hole_vm_ops)
			return true;
	return false;
}

static void fault_event_unmap(struct umm *u, unsigned long start,
			      unsigned long end)
{
	u->cnt.ev_unmap++;
	upaged.cnt.ev_unmap++;
	if (start < u->mm.mmap_base)
		start = u->mm.mmap_base;
	if (end > u->mm.task_size)
		end = u->mm.task_size;
	if (start >= end || !fault_model_has(u, start, end))
		return; /* ours: the model went first */
	log_debug("pid %d: munmap %#lx-%#lx behind the library", u->pid,
		  start, end);
	file_range_release(u, start, end - start);
	do_munmap(&u->mm, start, end - start);
	fault_make_hole(u, start, end);
}

static void fault_event_remap(struct umm *u, unsigned long from,
			      unsigned long to, unsigned long len)
{
	u->cnt.ev_remap++;
	upaged.cnt.ev_remap++;
	if (!umm_range_ok(u, from, len) || !fault_model_has(u, from, from + len))
		return; /* ours, or not in the arena */
	/*
	 * Both ends already mapped in the model: the library's own
	 * MREMAP_DONTUNMAP, which leaves the source mapped (and registered).
	 * A move behind our back finds its destination a hole at most: the
	 * kernel's unmap of it came first.
	 */
	if (umm_range_ok(u, to, len) && fault_model_has(u, to, to + len))
		return;
	log_debug("pid %d: mremap %#lx -> %#lx behind the library", u->pid,
		  from, to);
	file_range_release(u, from, len);
	if (umm_range_ok(u, to, len) &&
	    do_mremap(&u->mm, from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED,
		      to) >= 0) {
		fault_make_hole(u, from, from + len);
		return;
	}
	/* Moved out of the arena: give it to the kernel, whose anonymous
	   zero-fill is the same thing; whatever stays registered there is
	   still served (fault_page's fallback). */
	do_munmap(&u->mm, from, len);
	fault_make_hole(u, from, from + len);
	fault_unregister(u, to, len);
}

static void fault_event_fork(struct umm *u, int ufd)
{
	struct umm *child;

	u->cnt.ev_fork++;
	upaged.cnt.ev_fork++;
	fcntl(ufd, F_SETFD, FD_CLOEXEC);
	fcntl(ufd, F_SETFL, fcntl(ufd, F_GETFL) | O_NONBLOCK);
	child = umm_new(NULL, ufd, u->features, u->mm.mmap_base,
			u->mm.task_size - u->mm.mmap_base, u->probe_addr);
	if (!child) {
		/* The child runs unmanaged: the kernel zero-fills for it. */
		close(ufd);
		return;
	}
	child->uid = u->uid;
	if (dup_mmap(&child->mm, &u->mm) < 0) {
		umm_kill(child, "out of memory at fork");
		return;
	}
	/* Its pid is learnt from its first fault; until then the reaper
	   checks that it is alive. */
	ev_timer_again(upaged.loop, &upaged.reap_w);
	log_debug("pid %d forked", u->pid);
}

/* Handles one message. 0, or -ESRCH when the client is gone. */
static int fault_msg(struct umm *u, const struct uffd_msg *msg)
{
	unsigned long addr;
	unsigned int flags = 0;
	int kind, r;

	switch (msg->event) {
	case UFFD_EVENT_PAGEFAULT:
		addr = msg->arg.pagefault.address & PAGE_MASK;
		if (msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE)
			flags |= FAULT_FLAG_WRITE;
		u->cnt.faults++;
		upaged.cnt.faults++;
		if (flags & FAULT_FLAG_WRITE) {
			u->cnt.faults_write++;
			upaged.cnt.faults_write++;
		}
		if (!u->pid && msg->arg.pagefault.feat.ptid)
			umm_bind(u, fault_tgid_of(msg->arg.pagefault.feat.ptid));
		if (msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)
			flags |= FAULT_FLAG_WP;
		kind = query_fault_kind(u, addr, flags);
		if (flags & FAULT_FLAG_WP) {
			reclaim_wp_fault(u, addr);
			r = 0;
		} else {
			r = fault_page(u, addr, flags);
		}
		query_fault_done(kind, fault_read_ns); /* upagectl status */
		return r;
	case UFFD_EVENT_FORK:
		fault_event_fork(u, (int)msg->arg.fork.ufd);
		return 0;
	case UFFD_EVENT_REMAP:
		fault_event_remap(u, msg->arg.remap.from, msg->arg.remap.to,
				  msg->arg.remap.len);
		return 0;
	case UFFD_EVENT_REMOVE:
		/* MADV_DONTNEED/REMOVE: pages dropped, next touch refaults. */
		u->cnt.ev_remove++;
		upaged.cnt.ev_remove++;
		return 0;
	case UFFD_EVENT_UNMAP:
		fault_event_unmap(u, msg->arg.remove.start, msg->arg.remove.end);
		return 0;
	default:
		log_warn("pid %d: unknown uffd event %#x", u->pid, msg->event);
		return 0;
	}
}

/* The longest wait for I/O between two looks at a client's uffd. */
#define FAULT_WAIT_SLICE_NS 50000

static uint64_t fault_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Faults answered so far: woken, filled or put off until an event is read. */
static uint64_t fault_answered(void)
{
	return upaged.cnt.wakes + upaged.cnt.fill_calls + upaged.cnt.fill_eagain;
}

/* Reads u's uffd dry. 0, or -errno when the client is gone. */
static int fault_drain(struct umm *u)
{
	struct uffd_msg msgs[32];
	ssize_t n;
	int r;

	uint64_t start = 0, last = 0, now, faults, answered;
	const uint64_t budget = 8 * upaged.spin_ns + 100000;
	bool yielded = false;

	for (;;) {
		n = read(u->uffd, msgs, sizeof(msgs));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			/*
			 * Polling: a thread touching pages one after another
			 * faults again within microseconds. Waiting for it
			 * here saves the daemon a sleep and a wake-up per
			 * fault (the cross-process round trip's main cost),
			 * for at most spin_us after the last message and
			 * spin_budget_us per call, so others are not starved.
			 */
			if (!start || !upaged.spin_ns)
				break;
			now = fault_now_ns();
			if (now - start > budget)
				break;
			/*
			 * A thread waits for a read: its completion is
			 * waited for too, within the same budget, so that
			 * the wake-up follows the disk at once; in slices,
			 * so that the client's other threads are heard.
			 */
			if (file_waiting()) {
				uint64_t left = budget - (now - start);

				if (file_wait(left < FAULT_WAIT_SLICE_NS ?
						      left / 1000 :
						      FAULT_WAIT_SLICE_NS / 1000)) {
					last = fault_now_ns();
					yielded = false;
				}
				continue;
			}
			if (!last || now - last > upaged.spin_ns)
				break;
			/*
			 * Once per answer, the CPU is offered first: a client
			 * woken on this CPU runs to its next fault now rather
			 * than after the spin (5-17 µs per random read when
			 * the two share a CPU); elsewhere it costs one call.
			 */
			if (!yielded) {
				sched_yield();
				yielded = true;
			} else {
				__builtin_ia32_pause();
			}
			continue;
		}
		last = fault_read_ns = fault_now_ns();
		yielded = false;
		if (!start)
			start = last;
		if (n == 0 || n % sizeof(msgs[0]))
			return -EPIPE;
		faults = upaged.cnt.faults;
		answered = fault_answered();
		for (size_t i = 0; i < n / sizeof(msgs[0]); i++) {
			r = fault_msg(u, &msgs[i]);
			if (r < 0)
				return r;
		}
		r = fault_retry(u);
		if (r < 0)
			return r;
		/*
		 * A fault left waiting (for a read) is answered from the
		 * loop, by a completion: back to it at once, with no spin.
		 */
		if (upaged.cnt.faults - faults > fault_answered() - answered)
			last = 0;
	}
	if (u->ndeferred && !ev_is_active(&upaged.retry_w))
		ev_idle_start(upaged.loop, &upaged.retry_w);
	return 0;
}

static void fault_uffd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct umm *u = w->data;
	int r = fault_drain(u);

	if (r < 0)
		umm_kill(u, r == -ESRCH ? "process gone" : "userfaultfd hung up");
}

static void fault_pidfd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	umm_kill(w->data, "process exited");
}

/*
 * Idle watcher: deferred faults. The event that made a fill fail with
 * EAGAIN has been read, but the kernel lets fills through only once the
 * thread that raised it has run on; retry until it has.
 */
static void fault_retry_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct umm *u, *next;
	bool more = false;

	for (u = upaged.mms; u; u = next) {
		next = u->next;
		if (!u->ndeferred)
			continue;
		if (fault_retry(u) < 0) {
			umm_kill(u, "process gone"); /* frees u alone */
			continue;
		}
		more |= u->ndeferred != 0;
	}
	if (!more)
		ev_idle_stop(loop, w);
	else
		sched_yield();
}

/*
 * Timer: fork children never bound to a pid (they have not faulted yet)
 * have no pidfd, nor has any mm when pidfd_open() is not available. A fill aimed at the second probe page, which is never
 * registered, answers ESRCH once the process is gone and ENOENT before.
 */
void fault_reap_unbound(void)
{
	struct umm *u, *next;
	bool unbound = false;

	for (u = upaged.mms; u; u = next) {
		struct uffdio_zeropage z = {
			.range = { .start = u->probe_addr + PAGE_SIZE,
				   .len = PAGE_SIZE },
		};

		next = u->next;
		if (u->pidfd >= 0)
			continue;
		if (ioctl(u->uffd, UFFDIO_ZEROPAGE, &z) < 0 &&
		    (errno == ESRCH || errno == ENOSPC)) {
			umm_kill(u, "unbound child gone");
			continue;
		}
		unbound = true;
	}
	if (!unbound)
		ev_timer_stop(upaged.loop, &upaged.reap_w);
}

static void fault_reap_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	fault_reap_unbound();
}

void fault_init(void)
{
	ev_idle_init(&upaged.retry_w, fault_retry_cb);
	ev_init(&upaged.reap_w, fault_reap_cb);
	upaged.reap_w.repeat = 0.5;
}

/* At shutdown: serve what is already queued before the uffds close. */
void fault_drain_all(void)
{
	struct umm *u, *next;

	for (u = upaged.mms; u; u = next) {
		next = u->next;
		if (fault_drain(u) < 0) {
			umm_kill(u, "process gone");
		}
	}
}

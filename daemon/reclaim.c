/*
 * reclaim.c - the page cache under a memory budget, write-protection of
 * shared writable mappings, and the madvise hints that act on the cache.
 *
 * Contract
 *
 * - Budget (--max-resident): the resident pages of every backing object
 *   together. The moment a finished read takes them past the budget (the
 *   high watermark), eviction runs until they are down to the low
 *   watermark (the budget less a sixteenth, at least 16 pages), counting
 *   victims already being written back as gone. Faults that need a read
 *   wait (reclaim_must_wait()) while those write-backs hold the cache a
 *   sixteenth over the budget. Reads in flight count as resident
 *   throughout. So the cache holds at most the budget and a sixteenth,
 *   and a fault's own read.
 * - Victims come from evict.c (2Q: a scan passes through probation, pages
 *   that fault again soon after eviction are protected); a fault is the
 *   only access the daemon sees, a refault the signal. A huge object's
 *   victim (a budget of HUGE_BUDGET_MIN_PAGES or more) takes its whole
 *   extent along, the extent's other pages included (backing.h); once
 *   the excess is gone, the rest of a batch is kept.
 * - Past the middle of the gap between the watermarks, eviction also runs
 *   in small batches whenever the loop is idle (clients waiting for the
 *   disk), so that a fault seldom waits for a whole run.
 * - A victim must be stable before it goes: every mapping that may write
 *   it shared, in every client, is write-protected first (UFFDIO_
 *   WRITEPROTECT), so a write from then on raises a WP fault and is seen.
 *   Clean victims are punched out of the memfd at once (every mapper loses
 *   them together; private COW copies stay). Dirty ones are written back
 *   through io_uring first and punched when the write ends, unless written
 *   again meanwhile (their dirty bit is set again): those are kept.
 * - A victim that cannot be protected (a mapping that is not tracked, see
 *   file.h, or an ioctl refused while an event is pending) is kept and
 *   counted; eviction never loses a write to make room.
 * - WP faults: the page is marked dirty and made writable again in the
 *   faulting mapping only (the kernel's write-notify, done here). A WP
 *   fault on a page punched since it was raised is woken into a MISSING
 *   fault, which reads the page back first.
 * - Hints: WILLNEED reads the range ahead (at most half the budget);
 *   COLD puts its resident pages first in line for eviction; PAGEOUT
 *   evicts now the pages that no other mapping maps, written back first
 *   if dirty; SEQUENTIAL makes the pages behind a reader go first;
 *   RANDOM (policy_file.c) reads no more than the faulting page.
 *   DONTNEED needs nothing here: the client's own madvise drops its page
 *   table entries (shared data stays in the cache; private copies go).
 * - Anonymous pages are never evicted: only backing objects are.
 * - Single-threaded: the daemon's loop.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "evict.h"
#include "file.h"

#define RECLAIM_BATCH 64

static struct {
	struct evict ev;
	bool on;               /* a budget is set */
	bool busy;             /* in reclaim_evict() */
	struct ev_loop *loop;
	ev_idle idle;          /* eviction ahead of need */
	struct backing_table *t;
	struct io_ctx *io;
	unsigned long budget, low;
	unsigned long leaving; /* victims being written back, pages */
	unsigned long peak;
	uint64_t runs, evicted, wb_pages, kept, refaults, advised;
} rc;

/* Dirty victims being written back before they go. */
struct reclaim_wb {
	struct backing *b; /* held */
	unsigned long first, n;
	bool advised;      /* PAGEOUT: not counted in leaving */
};

static void reclaim_keep(struct backing *b, unsigned long first,
			 unsigned long n)
{
	for (unsigned long i = first; i < first + n && i < b->npages; i++) {
		/* An extent's pages that were no victims are still in line. */
		if (!backing_resident(b, i) ||
		    (rc.on && evict_is_resident(&rc.ev, b, i)))
			continue;
		rc.kept++;
		if (rc.on)
			evict_page_keep(&rc.ev, b, i);
	}
}

/*
 * Write-protects w's part of pages [first, last] (*f..*l): 0 (also when
 * its process is gone), 1 if w needs none (it cannot write them shared,
 * or maps none of them), -EOPNOTSUPP for an untracked writer, or -errno.
 */
static int reclaim_protect_vma(struct vm_area_struct *w, unsigned long first,
			       unsigned long last, unsigned long *f,
			       unsigned long *l)
{
	struct umm *u = umm_of(w);
	int r;

	/* Not writable now: an mprotect to writing protects it first
	   (file_protect). */
	if (!vma_writes_shared(w) || !vma_clip(w, first, last, f, l))
		return 1;
	if (!umm_tracks(u))
		return -EOPNOTSUPP;
	r = fault_protect(u, vma_address(w, *f), (*l - *f + 1) << PAGE_SHIFT,
			  true);
	return r == -ESRCH ? 0 : r;
}

/*
 * After a hole punch over [first, first + n): a fault racing with the
 * punch can leave a writer's entry empty rather than write-protected (the
 * kernel drops the marker of a page table entry it zaps while truncating a
 * page mapped again meanwhile), and a page read in later would then be
 * mapped writable, unseen. So the range is write-protected again at once,
 * before any fault is served. A writer that cannot be is no longer trusted
 * to be tracked: its writes count as unseen from now on (file.h).
 */
static void reclaim_rearm(struct backing *b, unsigned long first,
			  unsigned long n)
{
	unsigned long last = first + n - 1, f, l;
	struct vm_area_struct *w;

	rmap_for_each(w, &b->as, first, last) {
		int r = reclaim_protect_vma(w, first, last, &f, &l);

		/* An untracked writer counts its pages as written already. */
		if (r < 0 && r != -EOPNOTSUPP) {
			log_warn("pid %d: write-protect after eviction: %s; "
				 "its writes are tracked conservatively",
				 umm_of(w)->pid, strerror(-r));
			umm_untrack(umm_of(w));
		}
	}
}

/* Punches the clean pages of the run; the rest stays, tracked again. */
static void reclaim_drop(struct backing *b, unsigned long first,
			 unsigned long n)
{
	unsigned long before = b->nr_resident;
	int r = backing_evict(b, first, n);

	if (r < 0)
		log_warn("%s: cannot drop pages: %s", b->path, strerror(-r));
	if (b->nr_resident != before)
		reclaim_rearm(b, first, n);
	rc.evicted += before - b->nr_resident;
	reclaim_keep(b, first, n);
}

static void reclaim_wb_done(void *arg, ssize_t res)
{
	struct reclaim_wb *w = arg;

	if (!w->advised)
		rc.leaving -= w->n;
	if (res < 0) {
		log_warn("%s: write-back before eviction: %s (pages kept)",
			 w->b->path, strerror((int)-res));
		reclaim_keep(w->b, w->first, w->n);
	} else {
		reclaim_drop(w->b, w->first, w->n);
	}
	backing_put(w->b);
	free(w);
	file_unpark(); /* faults parked while the cache was over budget */
}

static unsigned long reclaim_count_dirty(const struct backing *b,
					 unsigned long first, unsigned long n)
{
	unsigned long d = 0;

	for (unsigned long i = first; i < first + n; i++)
		d += page_test(b->dirty, i);
	return d;
}

/*
 * Evicts resident pages [first, first + n) of b, out of the policy's
 * tracking already: protect, write back if dirty, punch.
 */
static void reclaim_run(struct backing *b, unsigned long first,
			unsigned long n, bool advised)
{
	struct reclaim_wb *w;
	unsigned long dirty;

	if (first >= b->npages)
		return;
	if (first + n > b->npages)
		n = b->npages - first;
	if (reclaim_protect(b, first, n, NULL)) {
		reclaim_keep(b, first, n);
		return;
	}
	dirty = reclaim_count_dirty(b, first, n);
	if (!dirty) {
		reclaim_drop(b, first, n);
		return;
	}
	w = malloc(sizeof(*w));
	if (!w) {
		reclaim_keep(b, first, n);
		return;
	}
	*w = (struct reclaim_wb){ .b = b, .first = first, .n = n,
				  .advised = advised };
	backing_hold(b);
	if (backing_writeback(b, first, n, reclaim_wb_done, w) < 0) {
		backing_put(b);
		free(w);
		reclaim_keep(b, first, n);
		return;
	}
	rc.wb_pages += dirty;
	if (!advised)
		rc.leaving += n;
}

/* Pages over the low watermark, counting victims on their way out. */
static size_t reclaim_excess(void)
{
	size_t have = rc.t->resident_pages + rc.t->reading_pages;

	return have > rc.low + rc.leaving ? have - rc.low - rc.leaving : 0;
}

/*
 * Victims in the policy's order: runs of one object's consecutive pages.
 * A huge object's victim takes its whole extent along (backing.h), its
 * other pages too; so victims left once the excess is gone are kept.
 */
static void reclaim_victims(const struct evict_victim *v, size_t n)
{
	size_t i = 0;

	while (i < n) {
		struct backing *b = (struct backing *)v[i].owner;
		unsigned long first = v[i].pgoff, end;
		size_t j = i + 1;

		while (j < n && v[j].owner == v[i].owner &&
		       v[j].pgoff == v[j - 1].pgoff + 1)
			j++;
		end = v[j - 1].pgoff + 1;
		i = j;
		if (b->huge && !reclaim_excess()) {
			reclaim_keep(b, first, end - first);
			continue;
		}
		if (b->huge) {
			first &= ~(HUGE_PAGES - 1);
			end = backing_extent_end(b, (end - 1) & ~(HUGE_PAGES - 1));
		}
		reclaim_run(b, first, end - first, false);
	}
}

/* Evicts down to the low watermark, or at most max victims. */
static void reclaim_evict(size_t max)
{
	struct evict_victim v[RECLAIM_BATCH];
	size_t limit, picked = 0;

	if (rc.busy)
		return;
	rc.busy = true;
	rc.runs++;
	/* Kept victims come round again: one pass over the queue at most. */
	limit = evict_resident(&rc.ev) + RECLAIM_BATCH;
	if (limit > max)
		limit = max;
	while (reclaim_excess() && picked < limit) {
		size_t want = reclaim_excess(), n;

		if (want > limit - picked)
			want = limit - picked;
		n = evict_pick(&rc.ev, v, want < RECLAIM_BATCH ? want :
					  RECLAIM_BATCH);
		if (!n)
			break;
		picked += n;
		reclaim_victims(v, n);
	}
	rc.busy = false;
}

bool reclaim_must_wait(void)
{
	/* A held marker's read ends only when released: none to wait for. */
	return rc.on &&
	       (rc.leaving || rc.t->reading_pages > rc.t->held_pages) &&
	       rc.t->resident_pages + rc.t->reading_pages >=
		       rc.budget + (rc.budget - rc.low);
}

static void reclaim_resident_changed(struct backing *b, unsigned long first,
				     unsigned long n, bool in)
{
	if (rc.t->resident_pages > rc.peak)
		rc.peak = rc.t->resident_pages;
	if (!rc.on)
		return;
	for (unsigned long i = first; i < first + n; i++) {
		if (!in)
			evict_page_removed(&rc.ev, b, i);
		else if (evict_page_added(&rc.ev, b, i) == 1)
			rc.refaults++;
	}
	if (!in)
		return;
	if (rc.t->resident_pages + rc.t->reading_pages > rc.budget)
		reclaim_evict(SIZE_MAX);
	else if (!ev_is_active(&rc.idle) &&
		 2 * reclaim_excess() > rc.budget - rc.low)
		ev_idle_start(rc.loop, &rc.idle);
}

/*
 * Idle watcher: past the middle of the gap between the watermarks, victims
 * go in small batches while the loop has nothing else to do (a client
 * waiting for the disk), so that a fault seldom pays for a whole run.
 */
static void reclaim_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	reclaim_evict(RECLAIM_BATCH);
	if (!reclaim_excess())
		ev_idle_stop(loop, w);
}

static void reclaim_object_gone(struct backing *b)
{
	if (rc.on)
		evict_forget_owner(&rc.ev, b);
}

int reclaim_init(struct ev_loop *loop, struct backing_table *t,
		 struct io_ctx *io, unsigned long budget_pages)
{
	unsigned long gap;
	int r;

	memset(&rc, 0, sizeof(rc));
	rc.t = t;
	rc.io = io;
	rc.loop = loop;
	ev_idle_init(&rc.idle, reclaim_idle_cb);
	t->resident_changed = reclaim_resident_changed;
	t->object_gone = reclaim_object_gone;
	if (!budget_pages)
		return 0;
	r = evict_init(&rc.ev, budget_pages);
	if (r < 0)
		return r;
	gap = budget_pages / 16 > 16 ? budget_pages / 16 : 16;
	rc.budget = budget_pages;
	rc.low = budget_pages > gap ? budget_pages - gap : 0;
	/* A window at most a sixteenth of the budget (several are in
	   flight at once), so that what is read is still there when used. */
	t->ra_cap = budget_pages / 16 > RA_MIN_PAGES ? budget_pages / 16 :
						       RA_MIN_PAGES;
	rc.on = true;
	return 0;
}

void reclaim_exit(void)
{
	if (rc.loop)
		ev_idle_stop(rc.loop, &rc.idle);
	if (rc.on)
		evict_exit(&rc.ev);
	if (rc.t) {
		rc.t->resident_changed = NULL;
		rc.t->object_gone = NULL;
	}
	rc.on = false;
}

int reclaim_protect(struct backing *b, unsigned long first, unsigned long n,
		    const struct vm_area_struct *skip)
{
	unsigned long last = first + n - 1, f, l;
	struct vm_area_struct *w;
	int failed = 0, r;

	if (!n)
		return 0;
	rmap_for_each(w, &b->as, first, last) {
		if (w == skip)
			continue;
		r = reclaim_protect_vma(w, first, last, &f, &l);
		if (r >= 0)
			continue;
		log_debug("pid %d: cannot write-protect %#lx: %s",
			  umm_of(w)->pid, vma_address(w, f), strerror(-r));
		file_mark_written(b, f, l - f + 1);
		failed++;
	}
	return failed;
}

void reclaim_wp_fault(struct umm *u, unsigned long addr)
{
	struct vm_area_struct *vma = find_vma(&u->mm, addr);

	if (vma && vma->vm_start <= addr && vma->vm_ops == &file_vm_ops) {
		struct backing *b = backing_of(vma);
		unsigned long pgoff = vma_pgoff_at(vma, addr);

		if (pgoff < b->npages && !backing_resident(b, pgoff)) {
			/* Punched (or still being read) since the write
			   faulted: the retry is a MISSING fault that reads
			   it back, then this fault again. */
			fault_wake(u, addr, PAGE_SIZE);
			return;
		}
		if (pgoff < b->npages) {
			file_rmw_written(u, addr & ~(PAGE_SIZE - 1));
			backing_mark_dirty(b, pgoff, 1);
			if (rc.on)
				evict_page_referenced(&rc.ev, b, pgoff);
		}
	}
	/* Writable again here; the ioctl wakes the writer. */
	if (fault_protect(u, addr, PAGE_SIZE, false) < 0)
		fault_wake(u, addr, PAGE_SIZE);
}

/* Pages a sequential reader leaves behind it go first (drop-behind). */
#define RECLAIM_BEHIND_PAGES (2 * RA_MAX_PAGES)

void reclaim_fault_hint(struct vm_area_struct *vma, unsigned long pgoff)
{
	struct backing *b = backing_of(vma);
	unsigned long from;

	if (!rc.on || !(vma->vm_flags & VM_SEQ_READ))
		return;
	from = pgoff > RECLAIM_BEHIND_PAGES ? pgoff - RECLAIM_BEHIND_PAGES : 0;
	if (from < vma->vm_pgoff)
		from = vma->vm_pgoff;
	for (unsigned long i = from; i < pgoff && i < b->npages; i++)
		if (backing_resident(b, i))
			evict_page_cold(&rc.ev, b, i);
}

/* PAGEOUT of pages [f, l] of vma's object: those no other VMA maps. */
static void reclaim_pageout(struct vm_area_struct *vma, unsigned long f,
			    unsigned long l)
{
	struct backing *b = backing_of(vma);
	unsigned long i = f;

	while (i <= l && i < b->npages) {
		struct vm_area_struct *w;
		unsigned long end = l + 1, wf, wl;
		bool shared = false;

		/* The run from i up to the next page another VMA maps or
		   stops mapping. */
		rmap_for_each(w, &b->as, i, l) {
			if (w == vma || !vma_clip(w, i, l, &wf, &wl))
				continue;
			if (wf <= i) {
				shared = true;
				if (wl + 1 < end)
					end = wl + 1;
			} else if (wf < end) {
				end = wf;
			}
		}
		if (!shared) {
			unsigned long j = i;

			while (j < end) {
				unsigned long s = j;

				while (s < end && !backing_resident(b, s))
					s++;
				j = s;
				while (j < end && backing_resident(b, j))
					j++;
				if (j == s)
					break;
				rc.advised += j - s;
				for (unsigned long k = s; k < j; k++)
					if (rc.on)
						evict_page_removed(&rc.ev, b, k);
				reclaim_run(b, s, j - s, true);
			}
		}
		i = end;
	}
}

int reclaim_advise(struct umm *u, unsigned long addr, unsigned long len,
		   int advice)
{
	unsigned long end = addr + len;
	struct vm_area_struct *vma;

	if (advice != MADV_WILLNEED && advice != MADV_COLD &&
	    advice != MADV_PAGEOUT)
		return 0;
	/* A fork child that has exec'd or died before we learnt its pid
	   still holds its copy of the mappings: not another mapper. */
	if (advice == MADV_PAGEOUT) {
		fault_reap_unbound();
		/* A page being written back cannot go until the write ends:
		   let those in flight end, as msync(MS_SYNC) does. */
		io_drain(rc.io);
	}
	vma = find_vma_intersection(&u->mm, addr, end);
	for (; vma && vma->vm_start < end; vma = vma_next(vma)) {
		unsigned long s = vma->vm_start > addr ? vma->vm_start : addr;
		unsigned long e = vma->vm_end < end ? vma->vm_end : end;
		unsigned long f, l, n;
		struct backing *b;

		if (!vma_is_file(vma))
			continue;
		b = backing_of(vma);
		f = vma_pgoff_at(vma, s);
		l = vma_pgoff_at(vma, e - 1);
		if (f >= b->npages)
			continue;
		if (l >= b->npages)
			l = b->npages - 1;
		n = l - f + 1;
		switch (advice) {
		case MADV_WILLNEED: {
			/* More than the cache holds would evict itself;
			   in windows, as readahead reads. */
			unsigned long step = rc.t->ra_cap ? rc.t->ra_cap : n;

			if (rc.on && n > rc.budget / 2)
				n = rc.budget / 2;
			for (unsigned long i = f; i < f + n; i += step)
				if (backing_readahead(b, i, f + n - i < step ?
						      f + n - i : step) < 0)
					break;
			rc.advised += n;
			break;
		}
		case MADV_COLD:
			for (unsigned long i = f; i <= l; i++) {
				if (!backing_resident(b, i))
					continue;
				rc.advised++;
				if (rc.on)
					evict_page_cold(&rc.ev, b, i);
			}
			break;
		case MADV_PAGEOUT:
			reclaim_pageout(vma, f, l);
			break;
		}
	}
	return 0;
}

void reclaim_status(struct upage_status_reply *r)
{
	r->budget_pages = rc.budget;
	r->low_pages = rc.low;
	r->resident_peak_pages = rc.peak;
	r->evict_runs = rc.runs;
	r->evict_writeback_pages = rc.wb_pages;
	r->evict_kept_pages = rc.kept;
	r->refaults = rc.refaults;
	r->advised_pages = rc.advised;
	r->evicted_pages = rc.evicted;
}

/*
 * file.h - what the file policies (policy_file.c, policy_cow.c) and the
 * page-cache budget (reclaim.c) share inside the daemon.
 *
 * Contract
 *
 * - A file VMA's vm_file is the address_space inside its backing object;
 *   its vm_mm is the mm inside a struct umm.
 * - A shared file VMA that can write (VM_WRITE) is registered MISSING|WP
 *   when its client's userfaultfd has write-protect for shared memory
 *   (umm_tracks): it is "tracked". The daemon write-protects the whole
 *   range at commit, or at the mprotect that makes it writable (before the
 *   client's own), so the first write to each page raises a WP fault that
 *   marks the page dirty: for tracked VMAs the dirty bit is exact. A VMA
 *   that cannot write now needs no protection; one that could write before
 *   keeps its registration. An untracked writable VMA may write any
 *   resident page unseen: those pages count as possibly written wherever
 *   the dirty bit matters.
 */
#ifndef UPAGED_FILE_H
#define UPAGED_FILE_H

#include <stddef.h>

#include "backing.h"
#include "upaged.h"

static inline struct backing *backing_of(const struct vm_area_struct *vma)
{
	return (struct backing *)((char *)vma->vm_file -
				  offsetof(struct backing, as));
}

static inline struct umm *umm_of(const struct vm_area_struct *vma)
{
	return (struct umm *)((char *)vma->vm_mm - offsetof(struct umm, mm));
}

static inline bool vma_is_file(const struct vm_area_struct *vma)
{
	return vma->vm_ops == &file_vm_ops || vma->vm_ops == &cow_vm_ops;
}

/* Does the client map the page cache MAP_SHARED under vma (a shared
   mapping of a writable fd), rather than privately (file_memfd())? */
static inline bool vma_maps_cache_shared(const struct vm_area_struct *vma)
{
	return vma->vm_ops == &file_vm_ops && (vma->vm_flags & VM_MAYWRITE);
}

/* A shared file VMA that can write now. */
static inline bool vma_writes_shared(const struct vm_area_struct *vma)
{
	return vma->vm_ops == &file_vm_ops &&
	       (vma->vm_flags & (VM_SHARED | VM_WRITE)) ==
		       (VM_SHARED | VM_WRITE);
}

/* The [first, last] pages of b that vma maps, clipped; false if none. */
static inline bool vma_clip(const struct vm_area_struct *vma,
			    unsigned long first, unsigned long last,
			    unsigned long *f, unsigned long *l)
{
	unsigned long vl = vma->vm_pgoff + vma_pages(vma) - 1;

	*f = first > vma->vm_pgoff ? first : vma->vm_pgoff;
	*l = last < vl ? last : vl;
	return *f <= *l;
}

/* policy_file.c */
/* Resident pages [first, first + n) of b may have been written unseen. */
void file_mark_written(struct backing *b, unsigned long first,
		       unsigned long n);
/* Wakes the faults parked until some I/O ends, to fault again. */
void file_unpark(void);
/* u wrote its page at addr (a WP fault): feeds the read-modify-write
   prediction of its random reads. */
void file_rmw_written(struct umm *u, unsigned long addr);

/* reclaim.c */
int reclaim_init(struct ev_loop *loop, struct backing_table *t,
		 struct io_ctx *io, unsigned long budget_pages);
void reclaim_exit(void);
/*
 * Write-protects pages [first, first + n) of b in every tracked writable
 * shared mapping, so that a write from now on raises a WP fault, before
 * their dirty bits are cleared by a write-back. Untracked writable
 * mappings cannot be protected: their resident pages there are marked
 * dirty again (possibly written). skip: a VMA going away, not protected.
 * Returns the number of mappings that could not be protected.
 */
int reclaim_protect(struct backing *b, unsigned long first, unsigned long n,
		    const struct vm_area_struct *skip);
/*
 * Dirty victims on their way to the file hold the cache over the budget:
 * a fault that needs a read waits (is retried) until they are written.
 */
bool reclaim_must_wait(void);
/* A write to a write-protected page of a tracked mapping. */
void reclaim_wp_fault(struct umm *u, unsigned long addr);
/* A fault at pgoff of vma, before it is served: access hints. */
void reclaim_fault_hint(struct vm_area_struct *vma, unsigned long pgoff);
/* madvise advice over [addr, addr + len) of u, after the model's. */
int reclaim_advise(struct umm *u, unsigned long addr, unsigned long len,
		   int advice);
/* The figures for STATUS. */
void reclaim_status(struct upage_status_reply *r);

#endif

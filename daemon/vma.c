/*
 * vma.c - the VMA engine: placing, merging, splitting, protecting, moving and
 * copying the regions of one client's address space (contract in vma.h).
 *
 * Shape of every modifying operation: check everything and take every VMA it
 * may need from the slab first, with the index nodes linking them may take,
 * so that nothing can fail once the model starts to change; then split at
 * the edges of the range, change or remove what lies inside, and finally
 * merge across the edges that were touched.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>

#include "rmap.h"
#include "slab.h"
#include "vma.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

_Static_assert(sizeof(struct vm_area_struct) <= 96,
	       "a VMA and its share of the index must fit in 128 bytes");

/*
 * VMAs come from a slab, so each costs exactly its size and allocation is
 * a pointer pop. 32-byte alignment puts every VMA on exactly two cache lines.
 */
static struct slab vma_slab = SLAB_INIT(struct vm_area_struct, 32);

size_t vma_slab_bytes(void)
{
	return vma_slab.bytes + vma_index_bytes();
}

static struct vm_area_struct *vma_alloc(void)
{
	return slab_alloc(&vma_slab);
}

static void vma_free(struct vm_area_struct *vma)
{
	slab_free(&vma_slab, vma);
}

/* ---- the address-ordered index ---- */

/* Adds vma (fields set, not overlapping anything) to mm and the rmap. */
static void vma_link(struct mm_struct *mm, struct vm_area_struct *vma)
{
	vma->vm_mm = mm;
	vma_index_insert(&mm->mm_index, vma);
	if (vma->vm_file)
		vma_interval_tree_insert(vma, vma->vm_file);
	mm->map_count++;
	mm->total_vm += vma_pages(vma);
}

/* Removes vma from mm and the rmap; the caller closes and frees it. */
static void vma_unlink(struct mm_struct *mm, struct vm_area_struct *vma)
{
	if (vma->vm_file)
		vma_interval_tree_remove(vma, vma->vm_file);
	vma_index_erase(&mm->mm_index, vma);
	if (mm->mmap_cache == vma)
		mm->mmap_cache = NULL;
	mm->map_count--;
	mm->total_vm -= vma_pages(vma);
}

/*
 * Gives a linked VMA new bounds and offset. The new range may only cover
 * space that is free or was its own, so the index order holds.
 */
static void vma_adjust(struct vm_area_struct *vma, unsigned long start,
		       unsigned long end, unsigned long pgoff)
{
	struct mm_struct *mm = vma->vm_mm;

	unsigned long old_last = vma->vm_pgoff + vma_pages(vma) - 1;
	bool moved = pgoff != vma->vm_pgoff;

	mm->total_vm -= vma_pages(vma);
	vma_index_set_bounds(&mm->mm_index, vma, start, end);
	vma->vm_pgoff = pgoff;
	mm->total_vm += vma_pages(vma);
	if (vma->vm_file && moved)
		vma_interval_tree_update(vma, vma->vm_file);
	else if (vma->vm_file)
		vma_interval_tree_resize(vma, old_last);
}
static inline void vma_open(struct vm_area_struct *vma)
{
	if (vma->vm_ops && vma->vm_ops->open)
		vma->vm_ops->open(vma);
}

static inline void vma_close(struct vm_area_struct *vma)
{
	if (vma->vm_ops && vma->vm_ops->close)
		vma->vm_ops->close(vma);
}

/* Unlinks, closes and frees. */
static void vma_remove(struct mm_struct *mm, struct vm_area_struct *vma)
{
	vma_unlink(mm, vma);
	vma_close(vma);
	vma_free(vma);
}

/* ---- merging and splitting ---- */

static bool vma_attrs_match(const struct vm_area_struct *a, unsigned int flags,
			    struct address_space *file,
			    const struct vm_operations_struct *ops)
{
	return a->vm_flags == flags && a->vm_file == file && a->vm_ops == ops &&
	       !(flags & VM_SPECIAL);
}

/* Could a and the VMA right above it (starting at a->vm_end) be one? */
static bool vma_can_merge(const struct vm_area_struct *a,
			  const struct vm_area_struct *b)
{
	if (!a || !b || a->vm_end != b->vm_start)
		return false;
	if (!vma_attrs_match(a, b->vm_flags, b->vm_file, b->vm_ops))
		return false;
	return !a->vm_file || a->vm_pgoff + vma_pages(a) == b->vm_pgoff;
}

/*
 * a grows up to b's end, over b and any hole between them (the caller maps
 * it); b is closed and freed.
 */
static void vma_merge_pair(struct mm_struct *mm, struct vm_area_struct *a,
			   struct vm_area_struct *b)
{
	unsigned long old_last = a->vm_pgoff + vma_pages(a) - 1;

	mm->total_vm += (b->vm_start - a->vm_end) >> PAGE_SHIFT;
	vma_index_absorb(&mm->mm_index, a, b);
	/*
	 * a takes b's last page before b leaves the rmap, so that the
	 * largest-last values above them hold on the way and stop climbing.
	 */
	if (a->vm_file) {
		vma_interval_tree_resize(a, old_last);
		vma_interval_tree_remove(b, b->vm_file);
	}
	if (mm->mmap_cache == b)
		mm->mmap_cache = NULL;
	mm->map_count--;
	vma_close(b);
	vma_free(b);
}

/*
 * Merges every mergeable pair from cur up to the boundaries at or below end.
 * After an operation that changed a range, called with the VMA just below
 * the range (or its first) and the range's end, this restores the canonical
 * form: nothing outside the range changed.
 */
static void vma_merge_range(struct mm_struct *mm, struct vm_area_struct *cur,
			    unsigned long end)
{
	struct vm_area_struct *next;

	while (cur && cur->vm_end <= end) {
		next = vma_next(cur);
		if (!next || next->vm_start > end)
			break;
		if (vma_can_merge(cur, next))
			vma_merge_pair(mm, cur, next);
		else
			cur = next;
	}
}

/*
 * Splits vma at addr using the preallocated spare: vma keeps [vm_start,
 * addr) and the spare, returned, becomes [addr, vm_end).
 */
static struct vm_area_struct *vma_split(struct mm_struct *mm,
					struct vm_area_struct *vma,
					unsigned long addr,
					struct vm_area_struct *spare)
{
	unsigned long old_last = vma->vm_pgoff + vma_pages(vma) - 1;

	*spare = *vma;
	spare->vm_start = addr;
	if (vma->vm_file)
		spare->vm_pgoff = vma_pgoff_at(vma, addr);
	/* The spare fills what vma gives up: total_vm stays. */
	vma_index_split(&mm->mm_index, vma, spare);
	if (vma->vm_file) {
		/* The spare first: it keeps vma's old last page in the tree. */
		vma_interval_tree_insert_after(spare, vma, vma->vm_file);
		vma_interval_tree_resize(vma, old_last);
	}
	mm->map_count++;
	vma_open(spare);
	return spare;
}

/*
 * A small reserve of VMAs taken before an operation starts changing things,
 * with the index nodes that linking each of them may need.
 */
struct vma_reserve {
	struct vm_area_struct *v[5];
	int n;
};

static int vma_reserve_fill(struct mm_struct *mm, struct vma_reserve *r, int n)
{
	r->n = 0;
	while (r->n < n) {
		r->v[r->n] = vma_alloc();
		if (!r->v[r->n])
			return -ENOMEM;
		r->n++;
	}
	return vma_index_reserve(&mm->mm_index, n) ? -ENOMEM : 0;
}

static struct vm_area_struct *vma_reserve_take(struct vma_reserve *r)
{
	if (r->n == 0)
		abort(); /* the count was worked out wrong: a bug */
	return r->v[--r->n];
}

static void vma_reserve_release(struct vma_reserve *r)
{
	while (r->n > 0)
		vma_free(r->v[--r->n]);
}

static bool map_count_allows(const struct mm_struct *mm, int more)
{
	return !mm->max_map_count || mm->map_count + more <= mm->max_map_count;
}

/* ---- lookup ---- */

void mm_init(struct mm_struct *mm, unsigned long mmap_base,
	     unsigned long task_size)
{
	memset(mm, 0, sizeof(*mm));
	mm->mmap_base = mmap_base & PAGE_MASK;
	mm->task_size = task_size & PAGE_MASK;
	vma_index_init(&mm->mm_index, mm->mmap_base);
}

struct vm_area_struct *find_vma(struct mm_struct *mm, unsigned long addr)
{
	struct vm_area_struct *vma = mm->mmap_cache;

	if (vma && vma->vm_start <= addr && addr < vma->vm_end)
		return vma;
	vma = vma_index_find(&mm->mm_index, addr, NULL);
	if (vma)
		mm->mmap_cache = vma;
	return vma;
}

struct vm_area_struct *find_vma_prev(struct mm_struct *mm, unsigned long addr,
				     struct vm_area_struct **pprev)
{
	struct vm_area_struct *vma = mm->mmap_cache;

	/* After a hit the index's hint is usually vma's leaf: prev is there. */
	if (vma && vma->vm_start <= addr && addr < vma->vm_end) {
		*pprev = vma_index_prev(&mm->mm_index, vma);
		return vma;
	}
	vma = vma_index_find(&mm->mm_index, addr, pprev);
	if (vma)
		mm->mmap_cache = vma;
	return vma;
}

struct vm_area_struct *vma_prev(const struct vm_area_struct *vma)
{
	return vma_index_prev(&vma->vm_mm->mm_index, vma);
}

struct vm_area_struct *find_vma_intersection(struct mm_struct *mm,
					     unsigned long start,
					     unsigned long end)
{
	struct vm_area_struct *vma = find_vma(mm, start);

	return vma && vma->vm_start < end ? vma : NULL;
}

/* ---- placement ---- */

static bool range_in_arena(const struct mm_struct *mm, unsigned long addr,
			   unsigned long len)
{
	return addr >= mm->mmap_base && len <= mm->task_size - mm->mmap_base &&
	       addr <= mm->task_size - len;
}

/* Highest start for len bytes in a free gap, or -ENOMEM. */
static long unmapped_area_topdown(struct mm_struct *mm, unsigned long len)
{
	struct vm_area_struct *last = mm_last_vma(mm), *vma;
	unsigned long top = last ? last->vm_end : mm->mmap_base;

	if (mm->task_size - top >= len)
		return (long)(mm->task_size - len);
	/* The index's gap counts lead down one path to the highest fit. */
	vma = vma_index_gap_above(&mm->mm_index, len);
	return vma ? (long)(vma->vm_start - len) : -ENOMEM;
}

/* A hint (page aligned in *addr) that is free is taken as it is, as the
   kernel does. */
static bool hint_is_free(struct mm_struct *mm, unsigned long *addr,
			 unsigned long len)
{
	if (!*addr)
		return false;
	*addr = PAGE_ALIGN(*addr);
	return *addr && range_in_arena(mm, *addr, len) &&
	       !find_vma_intersection(mm, *addr, *addr + len);
}

long get_unmapped_area(struct mm_struct *mm, unsigned long addr,
		       unsigned long len, int flags)
{
	if (len == 0)
		return -EINVAL;
	if (len > mm->task_size - mm->mmap_base)
		return -ENOMEM;
	if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) {
		if (!PAGE_ALIGNED(addr))
			return -EINVAL;
		if (!range_in_arena(mm, addr, len))
			return -ENOMEM;
		/* As in the kernel, NOREPLACE wins over a MAP_FIXED beside it. */
		if ((flags & MAP_FIXED_NOREPLACE) &&
		    find_vma_intersection(mm, addr, addr + len))
			return -EEXIST;
		return (long)addr;
	}
	if (hint_is_free(mm, &addr, len))
		return (long)addr;
	return unmapped_area_topdown(mm, len);
}

/*
 * As get_unmapped_area() without a fixed address, with the start at off
 * modulo align: the highest such start in the gap that fits len + align.
 * Falls back to the plain search where no gap is that large.
 */
static long get_unmapped_area_aligned(struct mm_struct *mm,
				      unsigned long addr, unsigned long len,
				      int flags, unsigned long align,
				      unsigned long off)
{
	long a;

	if ((flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) || len < align ||
	    len + align < len)
		return get_unmapped_area(mm, addr, len, flags);
	if (hint_is_free(mm, &addr, len))
		return (long)addr;
	a = unmapped_area_topdown(mm, len + align);
	if (a < 0)
		return get_unmapped_area(mm, 0, len, flags);
	/* [a, a + len + align) is free: the highest start in it with the
	   offset wanted. */
	addr = (unsigned long)a + align;
	addr -= (addr - off) & (align - 1);
	return (long)addr;
}

/* ---- unmap ---- */

/*
 * What [start, end) holds, found with one lookup and a walk over the VMAs
 * inside it: what an operation needs to check and reserve before it starts,
 * and where it starts.
 */
struct range_scan {
	struct vm_area_struct *prev;  /* the VMA before first, or NULL */
	struct vm_area_struct *first; /* first VMA ending above start */
	int splits;                   /* edges falling inside a VMA: 0..2 */
	int middle;                   /* 1: one VMA sticks out at both */
};

static void range_scan(struct mm_struct *mm, unsigned long start,
		       unsigned long end, struct range_scan *rs)
{
	struct vm_area_struct *v;

	rs->first = find_vma_prev(mm, start, &rs->prev);
	rs->splits = rs->middle = 0;
	v = rs->first;
	if (!v || v->vm_start >= end)
		return;
	if (v->vm_start < start) {
		rs->splits++;
		if (v->vm_end > end) {
			rs->splits++;
			rs->middle = 1;
			return;
		}
	}
	while (v && v->vm_end <= end)
		v = vma_next(v);
	if (v && v->vm_start < end)
		rs->splits++;
}

/*
 * Unmaps [start, end), both checked, from the scan taken just before, with
 * r holding rs->splits VMAs. *pprev and *pnext (if asked) get the VMAs now
 * below and above the hole.
 */
static void munmap_range(struct mm_struct *mm, const struct range_scan *rs,
			 unsigned long start, unsigned long end,
			 struct vma_reserve *r, struct vm_area_struct **pprev,
			 struct vm_area_struct **pnext)
{
	struct vm_area_struct *prev = rs->prev, *vma = rs->first, *next;

	/*
	 * A VMA sticking out at an edge is cut back rather than split and
	 * half removed: no VMA to allocate, link and free again. Only one
	 * sticking out at both edges is split, at end.
	 */
	if (vma && vma->vm_start < start && vma->vm_start < end) {
		if (vma->vm_end > end)
			vma_split(mm, vma, end, vma_reserve_take(r));
		prev = vma;
		vma = vma_next(vma);
		vma_adjust(prev, prev->vm_start, start, prev->vm_pgoff);
	}
	while (vma && vma->vm_start < end) {
		if (vma->vm_end > end) {
			vma_adjust(vma, end, vma->vm_end, vma_pgoff_at(vma, end));
			break;
		}
		next = vma_next(vma);
		vma_remove(mm, vma);
		vma = next;
	}
	if (pprev)
		*pprev = prev;
	if (pnext)
		*pnext = vma;
}

int do_munmap(struct mm_struct *mm, unsigned long start, unsigned long len)
{
	struct range_scan rs;
	struct vma_reserve r;
	unsigned long end;

	if (!PAGE_ALIGNED(start) || len == 0)
		return -EINVAL;
	len = PAGE_ALIGN(len);
	if (len == 0 || !range_in_arena(mm, start, len))
		return -EINVAL;
	end = start + len;
	range_scan(mm, start, end, &rs);
	if (!map_count_allows(mm, rs.middle))
		return -ENOMEM;
	if (vma_reserve_fill(mm, &r, rs.splits)) {
		vma_reserve_release(&r);
		return -ENOMEM;
	}
	munmap_range(mm, &rs, start, end, &r, NULL, NULL);
	vma_reserve_release(&r);
	return 0;
}

/* ---- map ---- */

static unsigned int calc_vm_prot_bits(int prot)
{
	return (prot & PROT_READ ? VM_READ : 0) |
	       (prot & PROT_WRITE ? VM_WRITE : 0) |
	       (prot & PROT_EXEC ? VM_EXEC : 0);
}

/*
 * Maps [addr, addr + len) with the given attributes over whatever is there,
 * merging with the neighbours. rs is the range's scan taken just before; r
 * holds enough VMAs for the unmap and one new VMA. Returns the VMA now
 * holding addr.
 */
static struct vm_area_struct *
mmap_region(struct mm_struct *mm, const struct range_scan *rs,
	    unsigned long addr, unsigned long len,
	    unsigned int vm_flags, struct address_space *file,
	    unsigned long pgoff, const struct vm_operations_struct *ops,
	    unsigned int policy_word, struct vma_reserve *r)
{
	unsigned long end = addr + len;
	struct vm_area_struct *prev, *next, *vma;
	bool merge_prev, merge_next;

	munmap_range(mm, rs, addr, end, r, &prev, &next);
	merge_prev = prev && prev->vm_end == addr &&
		     vma_attrs_match(prev, vm_flags, file, ops) &&
		     (!file || prev->vm_pgoff + vma_pages(prev) == pgoff);
	merge_next = next && next->vm_start == end &&
		     vma_attrs_match(next, vm_flags, file, ops) &&
		     (!file || pgoff + (len >> PAGE_SHIFT) == next->vm_pgoff);

	if (merge_prev && merge_next) {
		vma_merge_pair(mm, prev, next);
		return prev;
	}
	if (merge_prev) {
		vma_adjust(prev, prev->vm_start, end, prev->vm_pgoff);
		return prev;
	}
	if (merge_next) {
		vma_adjust(next, addr, next->vm_end, pgoff);
		return next;
	}
	vma = vma_reserve_take(r);
	memset(vma, 0, sizeof(*vma));
	vma->vm_start = addr;
	vma->vm_end = end;
	vma->vm_pgoff = pgoff;
	vma->vm_file = file;
	vma->vm_ops = ops;
	vma->vm_flags = vm_flags;
	vma->vm_policy_word = policy_word;
	vma_link(mm, vma);
	vma_open(vma);
	mm->mmap_cache = vma;
	return vma;
}

/*
 * VMAs mm will have after mapping [addr, end) with these attributes over
 * what is there: the VMAs it covers go, pieces sticking out at either edge
 * stay, one is added, and one less for each side it merges with.
 */
static int mmap_count_after(struct mm_struct *mm, unsigned long addr,
			    unsigned long end, unsigned int vm_flags,
			    struct address_space *file, unsigned long pgoff,
			    const struct vm_operations_struct *ops)
{
	struct vm_area_struct *vma, *left = NULL, *right = NULL;
	int count = mm->map_count + 1;

	vma = find_vma_prev(mm, addr, &left);
	if (vma && vma->vm_start < addr)
		left = vma;
	for (; vma && vma->vm_start < end; vma = vma_next(vma)) {
		/* It goes; what sticks out at either edge stays. */
		count += -1 + (vma->vm_start < addr) + (vma->vm_end > end);
		if (vma->vm_end > end)
			right = vma;
	}
	if (!right)
		right = vma && vma->vm_start == end ? vma : NULL;
	if (left && left->vm_end >= addr && left->vm_start < addr &&
	    vma_attrs_match(left, vm_flags, file, ops) &&
	    (!file || vma_pgoff_at(left, addr) == pgoff))
		count--;
	if (right && right->vm_start <= end &&
	    vma_attrs_match(right, vm_flags, file, ops) &&
	    (!file || vma_pgoff_at(right, end) == pgoff + ((end - addr) >> PAGE_SHIFT)))
		count--;
	return count;
}

/* Works out the VMA flags of a request, or -errno. */
static long mmap_vm_flags(const struct mmap_req *req, unsigned int *out)
{
	int type = req->flags & MAP_TYPE;
	unsigned int vm_flags;

	if (type != MAP_SHARED && type != MAP_PRIVATE &&
	    type != MAP_SHARED_VALIDATE)
		return -EINVAL;
	vm_flags = calc_vm_prot_bits(req->prot) | VM_MAY_FLAGS |
		   (req->vm_flags & ~(VM_ACCESS_FLAGS | VM_SHARED | VM_MAYSHARE));
	if (req->flags & MAP_GROWSDOWN)
		vm_flags |= VM_GROWSDOWN;
	if (req->flags & MAP_LOCKED)
		vm_flags |= VM_LOCKED;
	if (req->flags & MAP_NORESERVE)
		vm_flags |= VM_NORESERVE;

	if (!req->obj) {
		/* Anonymous private memory; shared memory needs an object. */
		if (type != MAP_PRIVATE)
			return -EINVAL;
		*out = vm_flags;
		return 0;
	}
	if (!(req->fmode & MAP_FMODE_READ))
		return -EACCES;
	if (!(req->fmode & MAP_FMODE_EXEC)) {
		if (req->prot & PROT_EXEC)
			return -EPERM;
		vm_flags &= ~VM_MAYEXEC;
	}
	if (type != MAP_PRIVATE) {
		if ((req->prot & PROT_WRITE) && !(req->fmode & MAP_FMODE_WRITE))
			return -EACCES;
		vm_flags |= VM_SHARED | VM_MAYSHARE;
		/* A read-only fd gives a mapping that can never be written. */
		if (!(req->fmode & MAP_FMODE_WRITE))
			vm_flags &= ~(VM_MAYWRITE | VM_SHARED);
	}
	*out = vm_flags;
	return 0;
}

long do_mmap(struct mm_struct *mm, const struct mmap_req *req,
	     struct vm_area_struct **out)
{
	unsigned long len = req->len, pgoff = req->pgoff;
	struct vm_area_struct *vma;
	struct range_scan rs;
	struct vma_reserve r;
	unsigned int vm_flags;
	long addr, err;

	if (len == 0)
		return -EINVAL;
	len = PAGE_ALIGN(len);
	if (len == 0)
		return -ENOMEM;
	if ((req->flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) &&
	    !PAGE_ALIGNED(req->addr))
		return -EINVAL;
	if (!req->obj)
		pgoff = 0;
	else if (pgoff + (len >> PAGE_SHIFT) < pgoff)
		return -EOVERFLOW;
	err = mmap_vm_flags(req, &vm_flags);
	if (err)
		return err;
	if (req->align)
		addr = get_unmapped_area_aligned(mm, req->addr, len,
						 req->flags, req->align,
						 pgoff << PAGE_SHIFT);
	else
		addr = get_unmapped_area(mm, req->addr, len, req->flags);
	if (addr < 0)
		return addr;
	if (mm->max_map_count &&
	    mmap_count_after(mm, addr, addr + len, vm_flags, req->obj, pgoff,
			     req->ops) > mm->max_map_count)
		return -ENOMEM;
	range_scan(mm, addr, addr + len, &rs);
	if (vma_reserve_fill(mm, &r, 1 + rs.splits)) {
		vma_reserve_release(&r);
		return -ENOMEM;
	}
	vma = mmap_region(mm, &rs, addr, len, vm_flags, req->obj, pgoff,
			  req->ops, 0, &r);
	vma_reserve_release(&r);
	if (out)
		*out = vma;
	return addr;
}

/* ---- protect and advise ---- */

/*
 * Sets vm_flags = (vm_flags & ~clear) | set on every VMA in [start, end),
 * which must be mapped whole. Splits only VMAs whose flags change, then
 * merges across the touched boundaries. rs is the range's scan taken just
 * before; r holds two VMAs for the edges.
 */
static void vma_modify_flags(struct mm_struct *mm, const struct range_scan *rs,
			     unsigned long start, unsigned long end,
			     unsigned int clear, unsigned int set,
			     struct vma_reserve *r)
{
	struct vm_area_struct *vma = rs->first;
	struct vm_area_struct *below = vma ? rs->prev : NULL;

	while (vma && vma->vm_start < end) {
		unsigned int flags = (vma->vm_flags & ~clear) | set;

		if (flags != vma->vm_flags) {
			if (vma->vm_start < start) {
				below = vma;
				vma = vma_split(mm, vma, start,
						vma_reserve_take(r));
			}
			if (vma->vm_end > end)
				vma_split(mm, vma, end, vma_reserve_take(r));
			vma->vm_flags = flags;
		}
		if (!below)
			below = vma;
		vma = vma_next(vma);
	}
	if (below) {
		vma_merge_range(mm, below, end);
		/* The next call is likely about the same range: cache it. */
		if (below->vm_end <= start)
			below = vma_next(below);
		if (below && below->vm_start <= start)
			mm->mmap_cache = below;
	}
}

int do_mprotect(struct mm_struct *mm, unsigned long start, unsigned long len,
		int prot)
{
	unsigned int newbits = calc_vm_prot_bits(prot);
	struct vm_area_struct *vma;
	unsigned long end, pos;
	struct range_scan rs;
	struct vma_reserve r;
	int splits = 0;

	if (!PAGE_ALIGNED(start) ||
	    (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)))
		return -EINVAL;
	if (len == 0)
		return 0;
	len = PAGE_ALIGN(len);
	if (len == 0 || !range_in_arena(mm, start, len))
		return -ENOMEM;
	end = start + len;
	/*
	 * One pass checks everything, in address order as the kernel meets
	 * it (a hole: -ENOMEM, a VMA that forbids it: -EACCES), and counts
	 * the splits: only a VMA whose flags change is split.
	 */
	range_scan(mm, start, end, &rs);
	pos = start;
	for (vma = rs.first; vma && vma->vm_start < end; vma = vma_next(vma)) {
		if (vma->vm_start > pos)
			return -ENOMEM;
		/* VM_MAY* sit four bits above the access bits they allow. */
		if (newbits & ~(vma->vm_flags >> 4) & VM_ACCESS_FLAGS)
			return -EACCES;
		if (((vma->vm_flags & ~VM_ACCESS_FLAGS) | newbits) !=
		    vma->vm_flags)
			splits += (vma->vm_start < start) + (vma->vm_end > end);
		pos = vma->vm_end;
	}
	if (pos < end)
		return -ENOMEM;
	if (!map_count_allows(mm, splits))
		return -ENOMEM;
	if (vma_reserve_fill(mm, &r, splits)) {
		vma_reserve_release(&r);
		return -ENOMEM;
	}
	vma_modify_flags(mm, &rs, start, end, VM_ACCESS_FLAGS, newbits, &r);
	vma_reserve_release(&r);
	return 0;
}

/* The VMA flags an advice changes, or -EINVAL; 1 if it changes none. */
static int madvise_flags(int advice, unsigned int *clear, unsigned int *set)
{
	*clear = *set = 0;
	switch (advice) {
	case MADV_NORMAL:
		*clear = VM_SEQ_READ | VM_RAND_READ;
		return 0;
	case MADV_SEQUENTIAL:
		*clear = VM_RAND_READ;
		*set = VM_SEQ_READ;
		return 0;
	case MADV_RANDOM:
		*clear = VM_SEQ_READ;
		*set = VM_RAND_READ;
		return 0;
	case MADV_DONTFORK:
		*set = VM_DONTCOPY;
		return 0;
	case MADV_DOFORK:
		*clear = VM_DONTCOPY;
		return 0;
	case MADV_DONTDUMP:
		*set = VM_DONTDUMP;
		return 0;
	case MADV_DODUMP:
		*clear = VM_DONTDUMP;
		return 0;
	case MADV_WILLNEED:
	case MADV_DONTNEED:
	case MADV_FREE:
	case MADV_REMOVE:
	case MADV_COLD:
	case MADV_PAGEOUT:
	case MADV_HUGEPAGE:
	case MADV_NOHUGEPAGE:
	case MADV_MERGEABLE:
	case MADV_UNMERGEABLE:
	case MADV_WIPEONFORK:
	case MADV_KEEPONFORK:
	case MADV_POPULATE_READ:
	case MADV_POPULATE_WRITE:
		return 1;
	default:
		return -EINVAL;
	}
}

int do_madvise(struct mm_struct *mm, unsigned long start, unsigned long len,
	       int advice)
{
	unsigned int clear, set;
	struct vma_reserve r;
	unsigned long end, pos;
	bool hole = false;
	int kind;

	kind = madvise_flags(advice, &clear, &set);
	if (kind < 0 || !PAGE_ALIGNED(start))
		return -EINVAL;
	len = PAGE_ALIGN(len);
	end = start + len;
	if (end < start)
		return -EINVAL;
	if (end == start)
		return 0;
	if (!range_in_arena(mm, start, len))
		return -ENOMEM;
	/* Like the kernel: apply to each mapped piece, then report holes. */
	for (pos = start; pos < end;) {
		struct vm_area_struct *vma = find_vma(mm, pos);
		unsigned long piece_end;

		if (!vma || vma->vm_start >= end) {
			hole = true;
			break;
		}
		if (vma->vm_start > pos) {
			hole = true;
			pos = vma->vm_start;
		}
		piece_end = vma->vm_end < end ? vma->vm_end : end;
		if (kind == 0) {
			struct range_scan rs;

			range_scan(mm, pos, piece_end, &rs);
			if (!map_count_allows(mm, rs.splits) ||
			    vma_reserve_fill(mm, &r, rs.splits)) {
				vma_reserve_release(&r);
				return -ENOMEM;
			}
			vma_modify_flags(mm, &rs, pos, piece_end, clear, set,
					 &r);
			vma_reserve_release(&r);
		}
		pos = piece_end;
	}
	return hole ? -ENOMEM : 0;
}

/* ---- remap ---- */

/*
 * Moves [old_addr, +old_len) of vma to new_addr as new_len bytes: maps the
 * destination with the same attributes, then unmaps the source. Merging at
 * the destination can move the source's edges, so the reserve covers the
 * worst case: one new VMA and two splits at each range.
 */
static long move_vma(struct mm_struct *mm, struct vm_area_struct *vma,
		     unsigned long old_addr, unsigned long old_len,
		     unsigned long new_addr, unsigned long new_len,
		     bool dontunmap)
{
	unsigned int flags = vma->vm_flags, word = vma->vm_policy_word;
	struct address_space *file = vma->vm_file;
	const struct vm_operations_struct *ops = vma->vm_ops;
	unsigned long pgoff = file ? vma_pgoff_at(vma, old_addr) : 0;
	struct range_scan src, dst;
	struct vma_reserve r;
	int delta;

	range_scan(mm, old_addr, old_addr + old_len, &src);
	range_scan(mm, new_addr, new_addr + new_len, &dst);
	delta = 1 + dst.middle + (dontunmap ? 0 : src.middle);
	if (!map_count_allows(mm, delta))
		return -ENOMEM;
	if (vma_reserve_fill(mm, &r, 5)) {
		vma_reserve_release(&r);
		return -ENOMEM;
	}
	mmap_region(mm, &dst, new_addr, new_len, flags, file, pgoff, ops, word,
		    &r);
	if (!dontunmap) {
		/* Mapping the destination may have changed the source's edges. */
		range_scan(mm, old_addr, old_addr + old_len, &src);
		munmap_range(mm, &src, old_addr, old_addr + old_len, &r, NULL,
			     NULL);
	}
	vma_reserve_release(&r);
	return (long)new_addr;
}

long do_mremap(struct mm_struct *mm, unsigned long old_addr,
	       unsigned long old_len, unsigned long new_len, int flags,
	       unsigned long new_addr)
{
	struct vm_area_struct *vma, *next;
	unsigned long old_end;
	long addr;

	if (flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP))
		return -EINVAL;
	if ((flags & MREMAP_FIXED) && !(flags & MREMAP_MAYMOVE))
		return -EINVAL;
	if (!PAGE_ALIGNED(old_addr))
		return -EINVAL;
	old_len = PAGE_ALIGN(old_len);
	new_len = PAGE_ALIGN(new_len);
	/*
	 * old_len == 0 asks the kernel to duplicate a shared mapping; the
	 * engine does not model that and refuses it.
	 */
	if (new_len == 0 || old_len == 0)
		return -EINVAL;
	if ((flags & MREMAP_DONTUNMAP) &&
	    (!(flags & MREMAP_MAYMOVE) || old_len != new_len))
		return -EINVAL;
	if (!range_in_arena(mm, old_addr, old_len))
		return -EFAULT;
	old_end = old_addr + old_len;
	if (flags & MREMAP_FIXED) {
		if (!PAGE_ALIGNED(new_addr) ||
		    !range_in_arena(mm, new_addr, new_len))
			return -EINVAL;
		if (new_addr < old_end && old_addr < new_addr + new_len)
			return -EINVAL;
	}

	vma = find_vma(mm, old_addr);
	if (!vma || vma->vm_start > old_addr || old_end > vma->vm_end)
		return -EFAULT;
	if (new_len > old_len && (vma->vm_flags & (VM_DONTEXPAND | VM_PFNMAP)))
		return -EFAULT;

	if (flags & MREMAP_FIXED)
		return move_vma(mm, vma, old_addr, old_len, new_addr, new_len,
				flags & MREMAP_DONTUNMAP);
	if (flags & MREMAP_DONTUNMAP) {
		addr = get_unmapped_area(mm, new_addr, new_len, 0);
		if (addr < 0)
			return addr;
		return move_vma(mm, vma, old_addr, old_len, (unsigned long)addr,
				new_len, true);
	}
	if (new_len <= old_len) {
		if (new_len < old_len) {
			int err = do_munmap(mm, old_addr + new_len,
					    old_len - new_len);
			if (err)
				return err;
		}
		return (long)old_addr;
	}
	/* Grow in place when the range ends the VMA and the space above is free. */
	next = vma_next(vma);
	if (old_end == vma->vm_end &&
	    range_in_arena(mm, old_addr, new_len) &&
	    (!next || next->vm_start >= old_addr + new_len)) {
		vma_adjust(vma, vma->vm_start, old_addr + new_len,
			   vma->vm_pgoff);
		vma_merge_range(mm, vma, vma->vm_end);
		return (long)old_addr;
	}
	if (!(flags & MREMAP_MAYMOVE))
		return -ENOMEM;
	addr = get_unmapped_area(mm, 0, new_len, 0);
	if (addr < 0)
		return addr;
	return move_vma(mm, vma, old_addr, old_len, (unsigned long)addr,
			new_len, false);
}

/* ---- fork and exit ---- */

int dup_mmap(struct mm_struct *child, struct mm_struct *parent)
{
	struct vm_area_struct *vma, *copy;

	for_each_vma(parent, vma) {
		if (vma->vm_flags & VM_DONTCOPY)
			continue;
		copy = vma_alloc();
		if (!copy || vma_index_reserve(&child->mm_index, 1)) {
			vma_free(copy);
			exit_mmap(child);
			return -ENOMEM;
		}
		*copy = *vma;
		/* Locks are not inherited across fork. */
		copy->vm_flags &= ~(VM_LOCKED | VM_LOCKONFAULT);
		vma_link(child, copy);
		vma_open(copy);
	}
	/* Dropping VM_LOCKED may have made neighbours identical. */
	vma_merge_range(child, mm_first_vma(child), child->task_size);
	return 0;
}

void exit_mmap(struct mm_struct *mm)
{
	struct vm_area_struct *vma, *next;

	/* The index goes as a whole: nothing is unlinked one by one. */
	for (vma = mm_first_vma(mm); vma; vma = next) {
		next = vma->vm_next;
		if (vma->vm_file)
			vma_interval_tree_remove(vma, vma->vm_file);
		vma_close(vma);
		vma_free(vma);
	}
	vma_index_destroy(&mm->mm_index);
	mm->mmap_cache = NULL;
	mm->map_count = 0;
	mm->total_vm = 0;
}

/* ---- output ---- */

int vma_format_maps(const struct vm_area_struct *vma, const char *path,
		    char *buf, size_t size)
{
	unsigned long dev = vma->vm_file ? vma->vm_file->dev : 0;
	unsigned long ino = vma->vm_file ? vma->vm_file->ino : 0;
	unsigned long long off =
		vma->vm_file ? (unsigned long long)vma->vm_pgoff << PAGE_SHIFT : 0;
	int n;

	n = snprintf(buf, size, "%08lx-%08lx %c%c%c%c %08llx %02x:%02x %lu ",
		     vma->vm_start, vma->vm_end,
		     vma->vm_flags & VM_READ ? 'r' : '-',
		     vma->vm_flags & VM_WRITE ? 'w' : '-',
		     vma->vm_flags & VM_EXEC ? 'x' : '-',
		     vma->vm_flags & VM_MAYSHARE ? 's' : 'p', off,
		     major(dev), minor(dev), ino);
	if (!path || n < 0)
		return n;
	/* The kernel pads the fixed part to 72 columns, then adds a space. */
	return n + snprintf(buf + ((size_t)n < size ? (size_t)n : size),
			    (size_t)n < size ? size - (size_t)n : 0,
			    "%*s %s", n < 72 ? 72 - n : 0, "", path);
}

/* ---- validation ---- */

int validate_mm(struct mm_struct *mm)
{
	struct vm_area_struct *vma, *prev = NULL, *cached = mm->mmap_cache;
	unsigned long pages = 0;
	bool cache_found = cached == NULL;
	int count = 0;

	/* First, so that the walk below follows a list known to end. */
	if (vma_index_validate(&mm->mm_index, mm->map_count) < 0)
		return -1;
	for_each_vma(mm, vma) {
		if (vma->vm_start >= vma->vm_end ||
		    !PAGE_ALIGNED(vma->vm_start) || !PAGE_ALIGNED(vma->vm_end)) {
			fprintf(stderr, "vma %#lx-%#lx: bad bounds\n",
				vma->vm_start, vma->vm_end);
			return -1;
		}
		if (vma->vm_start < mm->mmap_base ||
		    vma->vm_end > mm->task_size) {
			fprintf(stderr, "vma %#lx-%#lx: outside the arena\n",
				vma->vm_start, vma->vm_end);
			return -1;
		}
		if (vma->vm_mm != mm || vma_prev(vma) != prev) {
			fprintf(stderr, "vma %#lx-%#lx: bad mm or prev link\n",
				vma->vm_start, vma->vm_end);
			return -1;
		}
		if (prev && prev->vm_end > vma->vm_start) {
			fprintf(stderr, "vma %#lx-%#lx overlaps %#lx-%#lx\n",
				vma->vm_start, vma->vm_end, prev->vm_start,
				prev->vm_end);
			return -1;
		}
		if (vma_can_merge(prev, vma)) {
			fprintf(stderr, "vma %#lx-%#lx could merge with %#lx-%#lx\n",
				vma->vm_start, vma->vm_end, prev->vm_start,
				prev->vm_end);
			return -1;
		}
		if (vma->vm_file && !rmap_contains(vma->vm_file, vma)) {
			fprintf(stderr, "vma %#lx-%#lx: missing from rmap\n",
				vma->vm_start, vma->vm_end);
			return -1;
		}
		if (vma == cached)
			cache_found = true;
		pages += vma_pages(vma);
		count++;
		prev = vma;
	}
	if (!cache_found) {
		fprintf(stderr, "mm: lookup cache points outside the mm\n");
		return -1;
	}
	if (count != mm->map_count || pages != mm->total_vm) {
		fprintf(stderr, "mm: %d VMAs / %lu pages, counters say %d / %lu\n",
			count, pages, mm->map_count, mm->total_vm);
		return -1;
	}
	return 0;
}

/*
 * vma.h - the address-space model: one mm per client process, its VMAs, and
 * the reverse map from each backing object to the VMAs that map it.
 *
 * Contract
 *
 * - Pure data structures: nothing here does I/O, sleeps or talks to a client.
 *   The daemon applies an operation to the model first and then makes the
 *   client's real address space agree; tests drive the same calls directly.
 * - Addresses are bytes, page aligned; a VMA covers [vm_start, vm_end).
 *   Offsets into a backing object (vm_pgoff) are in pages.
 * - The VMAs of one mm never overlap and are kept in a B+tree ordered by
 *   address (vma_index.h): find_vma() is O(log n) with a one-entry cache,
 *   and every node knows the largest free gap in its subtree, so
 *   get_unmapped_area() is O(log n) too. They also form a list in address
 *   order (vm_next).
 * - The model is always canonical: no two neighbouring VMAs could be merged.
 *   Two neighbours merge when they touch, have identical vm_flags and vm_ops,
 *   map the same backing object at contiguous offsets (anonymous private
 *   memory has no object and merges on flags alone) and carry no VM_SPECIAL
 *   flag. Every operation restores this at the edges it touched.
 * - Every VMA with a backing object sits in that object's i_mmap interval
 *   tree, keyed by [vm_pgoff, vm_pgoff + pages - 1] and augmented by the
 *   largest last page in each subtree: all VMAs of all mms that map pages
 *   a..b are found in O(log n + k).
 * - vm_ops->open runs whenever a VMA comes into being (new map, a split
 *   piece, a fork copy); vm_ops->close whenever one goes away (unmap, being
 *   absorbed by a merge, teardown). The two are always balanced.
 * - Operations return 0 or an address on success and -errno on failure with
 *   the kernel's errno values; a failed operation leaves the model unchanged
 *   (madvise excepted, which like the kernel applies to what is mapped
 *   before reporting a hole).
 * - Not thread-safe: one thread (the daemon's loop) owns every mm.
 */
#ifndef UPAGED_VMA_H
#define UPAGED_VMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "rbtree.h"
#include "vma_index.h"

#define PAGE_SHIFT 12
#define PAGE_SIZE (1UL << PAGE_SHIFT)
#define PAGE_MASK (~(PAGE_SIZE - 1))
#define PAGE_ALIGN(x) (((x) + PAGE_SIZE - 1) & PAGE_MASK)
#define PAGE_ALIGNED(x) (((x) & (PAGE_SIZE - 1)) == 0)

/* vm_flags, with the kernel's values so that dumps read the same. */
#define VM_NONE 0x00000000U
#define VM_READ 0x00000001U
#define VM_WRITE 0x00000002U
#define VM_EXEC 0x00000004U
#define VM_SHARED 0x00000008U
#define VM_MAYREAD 0x00000010U
#define VM_MAYWRITE 0x00000020U
#define VM_MAYEXEC 0x00000040U
#define VM_MAYSHARE 0x00000080U
#define VM_GROWSDOWN 0x00000100U
#define VM_UFFD_MISSING 0x00000200U
#define VM_PFNMAP 0x00000400U
#define VM_UFFD_WP 0x00001000U
#define VM_LOCKED 0x00002000U
#define VM_IO 0x00004000U
#define VM_SEQ_READ 0x00008000U
#define VM_RAND_READ 0x00010000U
#define VM_DONTCOPY 0x00020000U
#define VM_DONTEXPAND 0x00040000U
#define VM_LOCKONFAULT 0x00080000U
#define VM_ACCOUNT 0x00100000U
#define VM_NORESERVE 0x00200000U
#define VM_HUGETLB 0x00400000U
#define VM_WIPEONFORK 0x02000000U
#define VM_DONTDUMP 0x04000000U
#define VM_MIXEDMAP 0x10000000U

#define VM_ACCESS_FLAGS (VM_READ | VM_WRITE | VM_EXEC)
#define VM_MAY_FLAGS (VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC)
/* VMAs carrying any of these are never merged. */
#define VM_SPECIAL (VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP)

struct mm_struct;
struct vm_area_struct;
struct address_space;

/* What a policy's fault handler is told; the daemon fills the rest in. */
struct vm_fault {
	unsigned long address; /* faulting address, page aligned */
	unsigned long pgoff;   /* page offset in the backing object */
	unsigned int flags;    /* FAULT_FLAG_* */
	void *ctx;             /* the daemon's per-fault state */
};

#define FAULT_FLAG_WRITE 0x1U
#define FAULT_FLAG_WP 0x2U
#define FAULT_FLAG_MINOR 0x4U

/* Per-policy methods; any may be NULL. */
struct vm_operations_struct {
	const char *name;
	void (*open)(struct vm_area_struct *vma);
	void (*close)(struct vm_area_struct *vma);
	int (*fault)(struct vm_area_struct *vma, struct vm_fault *vmf);
};

/*
 * One mapped region. 96 bytes on LP64, from a slab; with its share of the
 * index's nodes a VMA costs about 120 bytes in all. What a walk over the
 * VMAs reads comes first, then what the reverse map reads: the first 32
 * bytes always share a cache line, and for every other VMA the first 64.
 */
struct vm_area_struct {
	unsigned long vm_start;          /* first byte, inclusive */
	unsigned long vm_end;            /* first byte after, exclusive */
	struct vm_area_struct *vm_next;  /* neighbour above, or NULL */
	unsigned long vm_pgoff;          /* offset in vm_file, pages */
	struct rb_node shared_rb;        /* node in vm_file->i_mmap */
	unsigned long shared_last;       /* largest last page in subtree */
	struct mm_struct *vm_mm;         /* owning address space */
	struct address_space *vm_file;   /* backing object; NULL: anonymous
					    private */
	const struct vm_operations_struct *vm_ops;
	unsigned int vm_flags;           /* VM_* */
	unsigned int vm_policy_word;     /* owned by the policy (readahead
					    window, say); kept on split,
					    the lower VMA's wins on merge */
};

/* One per client process: its VMAs inside the arena [mmap_base, task_size). */
struct mm_struct {
	struct vma_index mm_index;         /* the VMAs, by address */
	struct vm_area_struct *mmap_cache; /* last find_vma() hit */
	unsigned long mmap_base;           /* arena start, inclusive */
	unsigned long task_size;           /* arena end, exclusive */
	unsigned long total_vm;            /* pages mapped */
	int map_count;                     /* VMAs */
	int max_map_count;                 /* limit; 0 = none */
};

/*
 * A backing object (a file, or one anonymous shared region). The daemon
 * embeds this in its own object; the engine uses only these fields.
 */
struct address_space {
	struct rb_root i_mmap;        /* interval tree of mapping VMAs */
	unsigned long i_mmap_count;   /* VMAs in i_mmap */
	unsigned long dev;            /* st_dev, for maps output */
	unsigned long ino;            /* st_ino, for maps output */
};

/* A mapping request: mmap(2)'s arguments plus what the caller checked. */
struct mmap_req {
	unsigned long addr;  /* hint, or the address with MAP_FIXED* */
	unsigned long len;   /* bytes, rounded up to pages */
	int prot;            /* PROT_* */
	int flags;           /* MAP_* */
	unsigned long pgoff; /* pages into obj */
	struct address_space *obj; /* NULL for anonymous private memory */
	const struct vm_operations_struct *ops;
	unsigned int fmode;  /* MAP_FMODE_* access of the caller's fd */
	unsigned int vm_flags; /* extra VM_* (DONTCOPY, LOCKED, ...) */
	unsigned long align; /* bytes, a power of two, or 0: a start chosen
				here keeps pgoff's offset modulo align when
				len is at least align (huge pages, as the
				kernel places a file that has them) */
};

#define MAP_FMODE_READ 0x1U
#define MAP_FMODE_WRITE 0x2U
#define MAP_FMODE_EXEC 0x4U /* the file may be executed (not noexec) */

/* mm life cycle. */
void mm_init(struct mm_struct *mm, unsigned long mmap_base,
	     unsigned long task_size);
/* Removes every VMA (close() on each, rmap updated); mm is reusable. */
void exit_mmap(struct mm_struct *mm);
/*
 * Copies every VMA of parent except VM_DONTCOPY into the empty child, as
 * fork does: same addresses, flags less VM_LOCKED, same backing and offsets,
 * each copy added to the rmap and opened. -ENOMEM leaves child empty.
 */
int dup_mmap(struct mm_struct *child, struct mm_struct *parent);

void address_space_init(struct address_space *as, unsigned long dev,
			unsigned long ino);

/* Lookup. */
struct vm_area_struct *find_vma(struct mm_struct *mm, unsigned long addr);
/* As find_vma(); *pprev gets the VMA below addr (or NULL). */
struct vm_area_struct *find_vma_prev(struct mm_struct *mm, unsigned long addr,
				     struct vm_area_struct **pprev);
/* First VMA overlapping [start, end), or NULL. */
struct vm_area_struct *find_vma_intersection(struct mm_struct *mm,
					     unsigned long start,
					     unsigned long end);

static inline struct vm_area_struct *vma_next(const struct vm_area_struct *vma)
{
	return vma->vm_next;
}

/* The VMA below, found through the index (usually its last leaf). */
struct vm_area_struct *vma_prev(const struct vm_area_struct *vma);

static inline struct vm_area_struct *mm_first_vma(const struct mm_struct *mm)
{
	return vma_index_first(&mm->mm_index);
}

static inline struct vm_area_struct *mm_last_vma(const struct mm_struct *mm)
{
	return vma_index_last(&mm->mm_index);
}

#define for_each_vma(mm, vma) \
	for ((vma) = mm_first_vma(mm); (vma); (vma) = vma_next(vma))

static inline unsigned long vma_pages(const struct vm_area_struct *vma)
{
	return (vma->vm_end - vma->vm_start) >> PAGE_SHIFT;
}

/* Address at which vma maps page pgoff of its object (pgoff must be inside). */
static inline unsigned long vma_address(const struct vm_area_struct *vma,
					unsigned long pgoff)
{
	return vma->vm_start + ((pgoff - vma->vm_pgoff) << PAGE_SHIFT);
}

/* Page of the backing object that addr (inside vma) maps. */
static inline unsigned long vma_pgoff_at(const struct vm_area_struct *vma,
					 unsigned long addr)
{
	return vma->vm_pgoff + ((addr - vma->vm_start) >> PAGE_SHIFT);
}

/*
 * Chooses where len bytes go. MAP_FIXED: addr itself (checked: aligned,
 * inside the arena). MAP_FIXED_NOREPLACE: addr, or -EEXIST if anything is
 * mapped there. Otherwise addr as a hint when that range is free, else the
 * highest free range in the arena (top-down). -ENOMEM when nothing fits.
 */
long get_unmapped_area(struct mm_struct *mm, unsigned long addr,
		       unsigned long len, int flags);

/*
 * mmap(2) on the model: places, checks permissions against req->fmode
 * (-EACCES), replaces what MAP_FIXED covers, and merges with neighbours.
 * Returns the address; *out (if not NULL) gets the VMA that now holds it.
 */
long do_mmap(struct mm_struct *mm, const struct mmap_req *req,
	     struct vm_area_struct **out);

/* munmap(2): truncates, splits or deletes every VMA in the range. */
int do_munmap(struct mm_struct *mm, unsigned long start, unsigned long len);

/*
 * mprotect(2): the whole range must be mapped (-ENOMEM) and every VMA must
 * allow the new protection (-EACCES); checked before anything changes.
 */
int do_mprotect(struct mm_struct *mm, unsigned long start, unsigned long len,
		int prot);

/*
 * The VMA-changing part of madvise(2): MADV_NORMAL, MADV_SEQUENTIAL,
 * MADV_RANDOM, MADV_DONTFORK, MADV_DOFORK, MADV_DONTDUMP, MADV_DODUMP split
 * and re-merge like the kernel; every other advice only checks the range.
 * -ENOMEM if part of the range is unmapped (the rest is still changed).
 */
int do_madvise(struct mm_struct *mm, unsigned long start, unsigned long len,
	       int advice);

/*
 * mremap(2): shrink, grow in place, or move (MREMAP_MAYMOVE, MREMAP_FIXED,
 * MREMAP_DONTUNMAP). The old range must lie within one VMA (-EFAULT).
 * Returns the new address.
 */
long do_mremap(struct mm_struct *mm, unsigned long old_addr,
	       unsigned long old_len, unsigned long new_len, int flags,
	       unsigned long new_addr);

/* Reverse map: every VMA, of any mm, mapping a page in [first, last]. */
struct vm_area_struct *vma_interval_tree_iter_first(struct address_space *as,
						    unsigned long first,
						    unsigned long last);
struct vm_area_struct *vma_interval_tree_iter_next(struct vm_area_struct *vma,
						   unsigned long first,
						   unsigned long last);

#define rmap_for_each(vma, as, first, last)                               \
	for ((vma) = vma_interval_tree_iter_first((as), (first), (last)); \
	     (vma); (vma) = vma_interval_tree_iter_next((vma), (first), (last)))

/*
 * Checks every invariant of mm (order, no overlap, alignment, canonical
 * form, index keys and gap counts, cache, counters, rmap membership).
 * Returns 0, or -1 after printing what is wrong to stderr.
 */
int validate_mm(struct mm_struct *mm);
/* Checks an object's interval tree (order, augmentation, count). */
int validate_rmap(struct address_space *as);

/*
 * Writes vma as one /proc/PID/maps line (no newline), padded as the kernel
 * pads it; path may be NULL. Returns the length as snprintf does.
 */
int vma_format_maps(const struct vm_area_struct *vma, const char *path,
		    char *buf, size_t size);

/*
 * Bytes the VMA slab and the index nodes hold from the system, across
 * every mm (for measurements).
 */
size_t vma_slab_bytes(void);

#endif

/*
 * vma_index.h - the address-ordered index of one mm's VMAs: a B+tree keyed
 * by vm_end, with the largest free gap of every subtree.
 *
 * Contract
 *
 * - Leaves hold up to 13 (vm_end, VMA) pairs in one 256-byte node, inner
 *   nodes up to 15 children with each child's largest key and largest gap.
 *   A lookup reads two or three cache lines of keys per level, all at
 *   once, and never touches a VMA: a million VMAs take six or seven node
 *   visits, the upper ones in cache.
 * - The gap of a VMA is the free space below it (down to the VMA below, or
 *   to the arena start). A leaf keeps its largest gap and how many of its
 *   VMAs have it, so that a change costs a comparison, not a rescan of the
 *   leaf's VMAs; inner nodes keep the largest gap of each child.
 * - The index also keeps every VMA's vm_next: the VMAs form a list in
 *   address order.
 * - Changes keep the order: a key may only move within the free space
 *   around it. Insertions may split nodes; vma_index_reserve() first makes
 *   sure the nodes they may need are there, so that nothing fails once an
 *   operation has started. Removals merge a node into its sibling when the
 *   two fit in one, so nodes stay half full on average.
 * - Engine-internal: vma.c is the only caller.
 */
#ifndef UPAGED_VMA_INDEX_H
#define UPAGED_VMA_INDEX_H

#include <stdbool.h>
#include <stddef.h>

struct vm_area_struct;
struct vma_node;
struct vma_leaf;

struct vma_index {
	struct vma_node *root;  /* NULL when empty */
	struct vma_leaf *hint;  /* leaf of the last lookup, or NULL */
	unsigned long base;     /* arena start: bounds the lowest gap */
	int height;             /* inner levels above the leaves */
};

void vma_index_init(struct vma_index *ix, unsigned long base);
/* Frees every node (not the VMAs); ix is empty afterwards. */
void vma_index_destroy(struct vma_index *ix);

/* Makes sure `inserts` insertions can take the nodes they need: 0/-ENOMEM. */
int vma_index_reserve(struct vma_index *ix, int inserts);

/* First VMA with addr < vm_end, or NULL; *pprev (if asked) the one below. */
struct vm_area_struct *vma_index_find(struct vma_index *ix, unsigned long addr,
				      struct vm_area_struct **pprev);
struct vm_area_struct *vma_index_prev(struct vma_index *ix,
				      const struct vm_area_struct *vma);
struct vm_area_struct *vma_index_first(const struct vma_index *ix);
struct vm_area_struct *vma_index_last(const struct vma_index *ix);

/* Adds vma (bounds set, overlapping nothing). */
void vma_index_insert(struct vma_index *ix, struct vm_area_struct *vma);
void vma_index_erase(struct vma_index *ix, struct vm_area_struct *vma);
/*
 * vma keeps [vm_start, spare->vm_start) and spare, whose bounds the caller
 * set to the rest of vma, is added right after it.
 */
void vma_index_split(struct vma_index *ix, struct vm_area_struct *vma,
		     struct vm_area_struct *spare);
/* a grows over b, the VMA right above it and touching it; b leaves. */
void vma_index_absorb(struct vma_index *ix, struct vm_area_struct *a,
		      struct vm_area_struct *b);
/* New bounds for a VMA in the index (each within the free space beside). */
void vma_index_set_bounds(struct vma_index *ix, struct vm_area_struct *vma,
			  unsigned long start, unsigned long end);

/* Largest free gap below any VMA. */
unsigned long vma_index_max_gap(const struct vma_index *ix);
/* The highest VMA with at least len free bytes below it, or NULL. */
struct vm_area_struct *vma_index_gap_above(const struct vma_index *ix,
					   unsigned long len);

/* Checks every node against the VMAs; 0, or -1 after saying what is wrong. */
int vma_index_validate(const struct vma_index *ix, int count);
/* Bytes index nodes hold from the system, across every mm. */
size_t vma_index_bytes(void);

#endif

/*
 * rmap.h - engine-internal reverse-map calls (the query side is in vma.h).
 *
 * vma.c keeps every file-backed VMA in its object's i_mmap tree: inserted
 * when it is linked, removed before its vm_pgoff or size changes and
 * inserted again after.
 */
#ifndef UPAGED_RMAP_H
#define UPAGED_RMAP_H

#include "vma.h"

void vma_interval_tree_insert(struct vm_area_struct *vma,
			      struct address_space *as);
/* As insert, starting from hint, a VMA that sorts just before vma. */
void vma_interval_tree_insert_after(struct vm_area_struct *vma,
				    struct vm_area_struct *hint,
				    struct address_space *as);
void vma_interval_tree_remove(struct vm_area_struct *vma,
			      struct address_space *as);
/* Re-places vma after its vm_pgoff or size changed in place. */
void vma_interval_tree_update(struct vm_area_struct *vma,
			      struct address_space *as);
/*
 * Only vma's size changed (its last page was old_last): its place holds,
 * and only largest-last values it held or now passes move.
 */
void vma_interval_tree_resize(struct vm_area_struct *vma,
			      unsigned long old_last);
bool rmap_contains(struct address_space *as, const struct vm_area_struct *vma);

#endif

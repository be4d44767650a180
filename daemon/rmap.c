/*
 * rmap.c - the reverse map: each backing object's interval tree of the VMAs
 * (from every mm) that map it.
 *
 * Nodes are ordered by first page (vm_pgoff), ties broken by address of the
 * VMA so that identical intervals from several processes coexist. Each node
 * carries the largest last page of its subtree, which lets a query skip any
 * subtree that ends before the pages asked for: O(log n + k).
 */
#include <stdio.h>

#include "rmap.h"

static inline unsigned long vma_last_pgoff(const struct vm_area_struct *vma)
{
	return vma->vm_pgoff + vma_pages(vma) - 1;
}

static inline struct vm_area_struct *shared_entry(const struct rb_node *n)
{
	return rb_entry_safe(n, struct vm_area_struct, shared_rb);
}

static bool rmap_recompute(struct rb_node *n)
{
	struct vm_area_struct *vma = shared_entry(n);
	unsigned long last = vma_last_pgoff(vma);

	if (n->left && shared_entry(n->left)->shared_last > last)
		last = shared_entry(n->left)->shared_last;
	if (n->right && shared_entry(n->right)->shared_last > last)
		last = shared_entry(n->right)->shared_last;
	if (vma->shared_last == last)
		return false;
	vma->shared_last = last;
	return true;
}

static bool rmap_before(const struct vm_area_struct *a,
			const struct vm_area_struct *b);

void address_space_init(struct address_space *as, unsigned long dev,
			unsigned long ino)
{
	as->i_mmap.node = NULL;
	as->i_mmap_count = 0;
	as->dev = dev;
	as->ino = ino;
}

void vma_interval_tree_insert(struct vm_area_struct *vma,
			      struct address_space *as)
{
	struct rb_node **link = &as->i_mmap.node, *parent = NULL;

	while (*link) {
		struct vm_area_struct *cur = shared_entry(*link);

		parent = *link;
		if (vma->vm_pgoff < cur->vm_pgoff ||
		    (vma->vm_pgoff == cur->vm_pgoff && vma < cur))
			link = &parent->left;
		else
			link = &parent->right;
	}
	vma->shared_last = vma_last_pgoff(vma);
	rb_link_node(&vma->shared_rb, parent, link);
	rb_insert(&vma->shared_rb, &as->i_mmap, rmap_recompute);
	as->i_mmap_count++;
}

void vma_interval_tree_insert_after(struct vm_area_struct *vma,
				    struct vm_area_struct *hint,
				    struct address_space *as)
{
	struct rb_node *n = &hint->shared_rb, **link;
	struct vm_area_struct *next = shared_entry(rb_next(n));

	/* Only when vma sorts right after hint; otherwise the usual walk. */
	if (!rmap_before(hint, vma) || (next && !rmap_before(vma, next))) {
		vma_interval_tree_insert(vma, as);
		return;
	}
	/* The in-order successor slot: leftmost under hint's right child. */
	link = &n->right;
	while (*link) {
		n = *link;
		link = &n->left;
	}
	vma->shared_last = vma_last_pgoff(vma);
	rb_link_node(&vma->shared_rb, n, link);
	rb_insert(&vma->shared_rb, &as->i_mmap, rmap_recompute);
	as->i_mmap_count++;
}

void vma_interval_tree_remove(struct vm_area_struct *vma,
			      struct address_space *as)
{
	rb_erase(&vma->shared_rb, &as->i_mmap, rmap_recompute);
	as->i_mmap_count--;
}

/* Order of the tree: first page, then address of the VMA. */
static bool rmap_before(const struct vm_area_struct *a,
			const struct vm_area_struct *b)
{
	return a->vm_pgoff < b->vm_pgoff ||
	       (a->vm_pgoff == b->vm_pgoff && a < b);
}

void vma_interval_tree_update(struct vm_area_struct *vma,
			      struct address_space *as)
{
	struct vm_area_struct *prev = shared_entry(rb_prev(&vma->shared_rb));
	struct vm_area_struct *next = shared_entry(rb_next(&vma->shared_rb));

	/*
	 * Usually the VMA keeps its place among its neighbours (a size
	 * change, or a start moving by less than the gap to the next key):
	 * then only the largest-last values above it change.
	 */
	if ((!prev || rmap_before(prev, vma)) &&
	    (!next || rmap_before(vma, next))) {
		rmap_recompute(&vma->shared_rb);
		rb_propagate(rb_parent(&vma->shared_rb), rmap_recompute);
		return;
	}
	vma_interval_tree_remove(vma, as);
	vma_interval_tree_insert(vma, as);
}

void vma_interval_tree_resize(struct vm_area_struct *vma,
			      unsigned long old_last)
{
	unsigned long last = vma_last_pgoff(vma);
	struct rb_node *n;

	/*
	 * The order is by first page, so the place holds. Growing past the
	 * largest last below it raises the values above, without reading
	 * anyone's other child; a last that was not the largest, and is not
	 * now, changes nothing.
	 */
	if (last > vma->shared_last) {
		for (n = &vma->shared_rb;
		     n && shared_entry(n)->shared_last < last; n = rb_parent(n))
			shared_entry(n)->shared_last = last;
		return;
	}
	if (old_last < vma->shared_last || last == old_last)
		return;
	rmap_recompute(&vma->shared_rb);
	rb_propagate(rb_parent(&vma->shared_rb), rmap_recompute);
}

/* Leftmost VMA under n that overlaps [first, last], or NULL. */
static struct vm_area_struct *rmap_subtree_first(struct rb_node *n,
						 unsigned long first,
						 unsigned long last)
{
	for (;;) {
		struct vm_area_struct *vma = shared_entry(n);

		/*
		 * Anything overlapping further left beats this node; if the
		 * left subtree reaches first at all, the leftmost answer, if
		 * any, is there (its starts are no later than ours).
		 */
		if (n->left && shared_entry(n->left)->shared_last >= first) {
			n = n->left;
			continue;
		}
		if (vma->vm_pgoff > last)
			return NULL; /* everything from here on starts later */
		if (vma_last_pgoff(vma) >= first)
			return vma;
		n = n->right;
		if (!n || shared_entry(n)->shared_last < first)
			return NULL;
	}
}

struct vm_area_struct *vma_interval_tree_iter_first(struct address_space *as,
						    unsigned long first,
						    unsigned long last)
{
	struct rb_node *root = as->i_mmap.node;

	if (!root || shared_entry(root)->shared_last < first)
		return NULL;
	return rmap_subtree_first(root, first, last);
}

struct vm_area_struct *vma_interval_tree_iter_next(struct vm_area_struct *vma,
						   unsigned long first,
						   unsigned long last)
{
	struct rb_node *n = &vma->shared_rb, *prev;

	for (;;) {
		/* Later overlaps are in the right subtree, if it reaches. */
		if (n->right && shared_entry(n->right)->shared_last >= first)
			return rmap_subtree_first(n->right, first, last);
		/* Otherwise climb to the first ancestor we are left of. */
		do {
			prev = n;
			n = rb_parent(n);
			if (!n)
				return NULL;
		} while (prev == n->right);
		vma = shared_entry(n);
		if (vma->vm_pgoff > last)
			return NULL;
		if (vma_last_pgoff(vma) >= first)
			return vma;
	}
}

static int rmap_validate_node(struct rb_node *n, unsigned long *count,
			      const struct vm_area_struct **prev)
{
	struct vm_area_struct *vma;
	unsigned long last;

	if (!n)
		return 0;
	if (rmap_validate_node(n->left, count, prev))
		return -1;
	vma = shared_entry(n);
	if (*prev && ((*prev)->vm_pgoff > vma->vm_pgoff ||
		      ((*prev)->vm_pgoff == vma->vm_pgoff && *prev > vma))) {
		fprintf(stderr, "rmap: pgoff %lu after %lu out of order\n",
			vma->vm_pgoff, (*prev)->vm_pgoff);
		return -1;
	}
	*prev = vma;
	(*count)++;
	last = vma_last_pgoff(vma);
	if (n->left && shared_entry(n->left)->shared_last > last)
		last = shared_entry(n->left)->shared_last;
	if (n->right && shared_entry(n->right)->shared_last > last)
		last = shared_entry(n->right)->shared_last;
	if (vma->shared_last != last) {
		fprintf(stderr, "rmap: subtree last %lu, should be %lu\n",
			vma->shared_last, last);
		return -1;
	}
	return rmap_validate_node(n->right, count, prev);
}

int validate_rmap(struct address_space *as)
{
	const struct vm_area_struct *prev = NULL;
	unsigned long count = 0;

	if (rb_validate(&as->i_mmap) < 0) {
		fprintf(stderr, "rmap: red-black properties broken\n");
		return -1;
	}
	if (rmap_validate_node(as->i_mmap.node, &count, &prev))
		return -1;
	if (count != as->i_mmap_count) {
		fprintf(stderr, "rmap: %lu nodes, count says %lu\n", count,
			as->i_mmap_count);
		return -1;
	}
	return 0;
}

/* True if vma is in as's tree (debug checks only: a plain rmap walk). */
bool rmap_contains(struct address_space *as, const struct vm_area_struct *vma)
{
	struct vm_area_struct *v;

	rmap_for_each(v, as, vma->vm_pgoff, vma_last_pgoff(vma))
		if (v == vma)
			return true;
	return false;
}

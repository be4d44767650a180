/*
 * rbtree.c - intrusive augmented red-black tree (see rbtree.h).
 *
 * Null children are the black leaves. Augmented values are refreshed on the
 * path from a change to the root, and on both nodes of every rotation: a
 * rotation keeps the set of nodes under the pair, so nothing above changes.
 */
#include "rbtree.h"

#define RB_BLACK ((uintptr_t)1)

static inline bool rb_is_red(const struct rb_node *n)
{
	return n && !(n->parent_color & RB_BLACK);
}

static inline bool rb_is_black(const struct rb_node *n)
{
	return !rb_is_red(n);
}

static inline void rb_set_black(struct rb_node *n)
{
	n->parent_color |= RB_BLACK;
}

static inline void rb_set_red(struct rb_node *n)
{
	n->parent_color &= ~RB_BLACK;
}

static inline void rb_set_parent(struct rb_node *n, struct rb_node *p)
{
	n->parent_color = (uintptr_t)p | (n->parent_color & RB_BLACK);
}

static inline void rb_copy_color(struct rb_node *dst, const struct rb_node *src)
{
	dst->parent_color = (dst->parent_color & ~RB_BLACK) |
			    (src->parent_color & RB_BLACK);
}

/* Points the parent's (or the root's) link at new instead of old. */
static inline void rb_replace_child(struct rb_node *old, struct rb_node *new,
				    struct rb_node *parent, struct rb_root *root)
{
	if (!parent)
		root->node = new;
	else if (parent->left == old)
		parent->left = new;
	else
		parent->right = new;
}

static void rb_rotate_left(struct rb_node *x, struct rb_root *root,
			   rb_recompute_fn recompute)
{
	struct rb_node *y = x->right;
	struct rb_node *p = rb_parent(x);

	x->right = y->left;
	if (y->left)
		rb_set_parent(y->left, x);
	rb_set_parent(y, p);
	rb_replace_child(x, y, p, root);
	y->left = x;
	rb_set_parent(x, y);
	if (recompute) {
		recompute(x);
		recompute(y);
	}
}

static void rb_rotate_right(struct rb_node *x, struct rb_root *root,
			    rb_recompute_fn recompute)
{
	struct rb_node *y = x->left;
	struct rb_node *p = rb_parent(x);

	x->left = y->right;
	if (y->right)
		rb_set_parent(y->right, x);
	rb_set_parent(y, p);
	rb_replace_child(x, y, p, root);
	y->right = x;
	rb_set_parent(x, y);
	if (recompute) {
		recompute(x);
		recompute(y);
	}
}

void rb_propagate(struct rb_node *n, rb_recompute_fn recompute)
{
	while (n && recompute(n))
		n = rb_parent(n);
}

void rb_insert(struct rb_node *z, struct rb_root *root,
	       rb_recompute_fn recompute)
{
	struct rb_node *p, *g, *u;

	/*
	 * A new leaf changes only the values on its own path. Its own value
	 * may already be right, so the early stop starts at the parent.
	 */
	if (recompute) {
		recompute(z);
		rb_propagate(rb_parent(z), recompute);
	}

	while ((p = rb_parent(z)) && rb_is_red(p)) {
		g = rb_parent(p); /* exists: a red node is never the root */
		if (p == g->left) {
			u = g->right;
			if (rb_is_red(u)) {
				rb_set_black(p);
				rb_set_black(u);
				rb_set_red(g);
				z = g;
				continue;
			}
			if (z == p->right) {
				rb_rotate_left(p, root, recompute);
				z = p;
				p = rb_parent(z);
			}
			rb_set_black(p);
			rb_set_red(g);
			rb_rotate_right(g, root, recompute);
		} else {
			u = g->left;
			if (rb_is_red(u)) {
				rb_set_black(p);
				rb_set_black(u);
				rb_set_red(g);
				z = g;
				continue;
			}
			if (z == p->left) {
				rb_rotate_right(p, root, recompute);
				z = p;
				p = rb_parent(z);
			}
			rb_set_black(p);
			rb_set_red(g);
			rb_rotate_left(g, root, recompute);
		}
	}
	rb_set_black(root->node);
}

static void rb_erase_fixup(struct rb_node *x, struct rb_node *xp,
			   struct rb_root *root, rb_recompute_fn recompute)
{
	struct rb_node *w;

	while (x != root->node && rb_is_black(x)) {
		if (x == xp->left) {
			w = xp->right;
			if (rb_is_red(w)) {
				rb_set_black(w);
				rb_set_red(xp);
				rb_rotate_left(xp, root, recompute);
				w = xp->right;
			}
			if (rb_is_black(w->left) && rb_is_black(w->right)) {
				rb_set_red(w);
				x = xp;
				xp = rb_parent(x);
				continue;
			}
			if (rb_is_black(w->right)) {
				rb_set_black(w->left);
				rb_set_red(w);
				rb_rotate_right(w, root, recompute);
				w = xp->right;
			}
			rb_copy_color(w, xp);
			rb_set_black(xp);
			rb_set_black(w->right);
			rb_rotate_left(xp, root, recompute);
		} else {
			w = xp->left;
			if (rb_is_red(w)) {
				rb_set_black(w);
				rb_set_red(xp);
				rb_rotate_right(xp, root, recompute);
				w = xp->left;
			}
			if (rb_is_black(w->left) && rb_is_black(w->right)) {
				rb_set_red(w);
				x = xp;
				xp = rb_parent(x);
				continue;
			}
			if (rb_is_black(w->left)) {
				rb_set_black(w->right);
				rb_set_red(w);
				rb_rotate_left(w, root, recompute);
				w = xp->left;
			}
			rb_copy_color(w, xp);
			rb_set_black(xp);
			rb_set_black(w->left);
			rb_rotate_right(xp, root, recompute);
		}
		x = root->node;
		break;
	}
	if (x)
		rb_set_black(x);
}

void rb_erase(struct rb_node *z, struct rb_root *root,
	      rb_recompute_fn recompute)
{
	struct rb_node *x, *xp, *y = NULL, *n;
	bool removed_black;

	if (!z->left || !z->right) {
		/* z has at most one child: splice it out. */
		x = z->left ? z->left : z->right;
		xp = rb_parent(z);
		removed_black = rb_is_black(z);
		rb_replace_child(z, x, xp, root);
		if (x)
			rb_set_parent(x, xp);
	} else {
		/* Two children: the successor y takes z's place. */
		y = z->right;
		while (y->left)
			y = y->left;
		removed_black = rb_is_black(y);
		x = y->right;
		if (rb_parent(y) == z) {
			xp = y;
		} else {
			xp = rb_parent(y);
			xp->left = x;
			if (x)
				rb_set_parent(x, xp);
			y->right = z->right;
			rb_set_parent(y->right, y);
		}
		rb_replace_child(z, y, rb_parent(z), root);
		y->parent_color = z->parent_color;
		y->left = z->left;
		rb_set_parent(y->left, y);
	}
	/*
	 * The nodes from the splice point up saw their subtrees change. A
	 * value that holds stops the climb, except that a successor moved
	 * into z's place has new children and is always recomputed.
	 */
	if (recompute) {
		for (n = xp; n && n != y; n = rb_parent(n))
			if (!recompute(n))
				break;
		if (y) {
			recompute(y);
			rb_propagate(rb_parent(y), recompute);
		}
	}
	if (removed_black)
		rb_erase_fixup(x, xp, root, recompute);
}

struct rb_node *rb_first(const struct rb_root *root)
{
	struct rb_node *n = root->node;

	if (!n)
		return NULL;
	while (n->left)
		n = n->left;
	return n;
}

struct rb_node *rb_last(const struct rb_root *root)
{
	struct rb_node *n = root->node;

	if (!n)
		return NULL;
	while (n->right)
		n = n->right;
	return n;
}

struct rb_node *rb_next(const struct rb_node *n)
{
	struct rb_node *p;

	if (n->right) {
		n = n->right;
		while (n->left)
			n = n->left;
		return (struct rb_node *)n;
	}
	while ((p = rb_parent(n)) && n == p->right)
		n = p;
	return p;
}

struct rb_node *rb_prev(const struct rb_node *n)
{
	struct rb_node *p;

	if (n->left) {
		n = n->left;
		while (n->right)
			n = n->right;
		return (struct rb_node *)n;
	}
	while ((p = rb_parent(n)) && n == p->left)
		n = p;
	return p;
}

static int rb_validate_node(const struct rb_node *n, const struct rb_node *parent)
{
	int lh, rh;

	if (!n)
		return 1;
	if (rb_parent(n) != parent)
		return -1;
	if (rb_is_red(n) && (rb_is_red(n->left) || rb_is_red(n->right)))
		return -1;
	lh = rb_validate_node(n->left, n);
	rh = rb_validate_node(n->right, n);
	if (lh < 0 || rh < 0 || lh != rh)
		return -1;
	return lh + (rb_is_black(n) ? 1 : 0);
}

int rb_validate(const struct rb_root *root)
{
	if (rb_is_red(root->node))
		return -1;
	return rb_validate_node(root->node, NULL);
}

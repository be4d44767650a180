/*
 * rbtree.h - intrusive, augmented red-black tree.
 *
 * Contract: the tree never allocates. A node is embedded in the caller's
 * structure and found again with container_of(). The caller links a new node
 * as a leaf with rb_link_node() (it does its own key comparison while walking
 * down) and then calls rb_insert() to rebalance; rb_erase() unlinks a node.
 *
 * Augmented trees keep a per-node value that is a pure function of the node and
 * its two children (the largest gap below, the highest interval end below).
 * The caller supplies a recompute() callback that refreshes that value for one
 * node from its children and says whether it changed. The tree calls it on
 * every node whose subtree changed shape; the caller calls rb_propagate() after
 * changing a node's own key data in place (a VMA growing, say).
 *
 * Every operation is O(log n). Colour is kept in the low bit of the parent
 * pointer, so a node costs three words.
 */
#ifndef UPAGED_RBTREE_H
#define UPAGED_RBTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rb_node {
	uintptr_t parent_color; /* parent pointer | colour bit (1 = black) */
	struct rb_node *left;
	struct rb_node *right;
};

struct rb_root {
	struct rb_node *node;
};

/* Refreshes n's augmented value from n and its children; true if it changed. */
typedef bool (*rb_recompute_fn)(struct rb_node *n);

#ifndef container_of
#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))
#endif

#define rb_entry(ptr, type, member) container_of(ptr, type, member)
#define rb_entry_safe(ptr, type, member) \
	((ptr) ? rb_entry(ptr, type, member) : NULL)

static inline struct rb_node *rb_parent(const struct rb_node *n)
{
	return (struct rb_node *)(n->parent_color & ~(uintptr_t)1);
}

/* Makes node a leaf child of parent at *link (the slot found while walking). */
static inline void rb_link_node(struct rb_node *node, struct rb_node *parent,
				struct rb_node **link)
{
	node->parent_color = (uintptr_t)parent; /* red */
	node->left = node->right = NULL;
	*link = node;
}

/* Rebalances after rb_link_node(); recompute may be NULL for plain trees. */
void rb_insert(struct rb_node *node, struct rb_root *root,
	       rb_recompute_fn recompute);
/* Unlinks node and rebalances. */
void rb_erase(struct rb_node *node, struct rb_root *root,
	      rb_recompute_fn recompute);
/* Recomputes from n up to the root, stopping early once a value holds. */
void rb_propagate(struct rb_node *n, rb_recompute_fn recompute);

struct rb_node *rb_first(const struct rb_root *root);
struct rb_node *rb_last(const struct rb_root *root);
struct rb_node *rb_next(const struct rb_node *n);
struct rb_node *rb_prev(const struct rb_node *n);

/* Checks colours and black heights; returns the black height or -1. */
int rb_validate(const struct rb_root *root);

#endif

/*
 * vma_index.c - B+tree of one mm's VMAs by vm_end, with free-gap
 * augmentation (see vma_index.h).
 *
 * Every change runs in the same order, so that a leaf's gap count is never
 * recounted from a half-changed leaf: make room first (a split works on the
 * tree as it was), then move the entries, then apply the gap changes as
 * differences, then recount any leaf whose count of largest gaps ran out,
 * and last merge underfull nodes and carry keys and gaps to the root.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slab.h"
#include "vma.h"
#include "vma_index.h"

#define LEAF_SLOTS 13
#define INNER_SLOTS 15
/* Unused slots hold a key above every address, so ranks ignore them. */
#define NO_KEY (~0UL)

struct vma_inner;

struct vma_node {
	struct vma_inner *parent;
	unsigned long max_gap;  /* largest gap in the subtree */
	unsigned char leaf;
	unsigned char count;    /* slots in use */
	unsigned short max_cnt; /* leaf: VMAs with max_gap, never more than
				   really have it; 0 with entries: max_gap
				   may be stale, recount */
};

struct vma_leaf {
	struct vma_node h;
	unsigned long key[LEAF_SLOTS]; /* vm_end, ascending */
	struct vm_area_struct *vma[LEAF_SLOTS];
	struct vma_leaf *prev, *next;  /* leaves in address order */
};

struct vma_inner {
	struct vma_node h;
	unsigned long key[INNER_SLOTS]; /* largest key under child i */
	struct vma_node *child[INNER_SLOTS];
	unsigned long gap[INNER_SLOTS]; /* child i's max_gap */
};

_Static_assert(sizeof(struct vma_leaf) <= 256, "a leaf is four cache lines");
_Static_assert(sizeof(struct vma_inner) <= 384, "an inner node is six lines");

static struct slab leaf_slab = SLAB_INIT(struct vma_leaf, 64);
static struct slab inner_slab = SLAB_INIT(struct vma_inner, 64);

#define LEAF(n) ((struct vma_leaf *)(n))
#define INNER(n) ((struct vma_inner *)(n))

size_t vma_index_bytes(void)
{
	return leaf_slab.bytes + inner_slab.bytes;
}

static inline unsigned long node_max_key(const struct vma_node *n)
{
	return n->leaf ? LEAF(n)->key[n->count - 1]
		       : INNER(n)->key[n->count - 1];
}

/* The first slot whose key is above addr; counting every slot has no branch. */
static inline int leaf_rank(const struct vma_leaf *l, unsigned long addr)
{
	int i, r = 0;

	for (i = 0; i < LEAF_SLOTS; i++)
		r += l->key[i] <= addr;
	return r;
}

static inline int inner_rank(const struct vma_inner *in, unsigned long addr)
{
	int i, r = 0;

	for (i = 0; i < INNER_SLOTS; i++)
		r += in->key[i] <= addr;
	return r;
}

static struct vma_leaf *leaf_new(void)
{
	struct vma_leaf *l = slab_alloc(&leaf_slab);
	int i;

	if (!l)
		abort(); /* vma_index_reserve() was not called: a bug */
	memset(l, 0, sizeof(*l));
	l->h.leaf = 1;
	for (i = 0; i < LEAF_SLOTS; i++)
		l->key[i] = NO_KEY;
	return l;
}

static struct vma_inner *inner_new(void)
{
	struct vma_inner *in = slab_alloc(&inner_slab);
	int i;

	if (!in)
		abort();
	memset(in, 0, sizeof(*in));
	for (i = 0; i < INNER_SLOTS; i++)
		in->key[i] = NO_KEY;
	return in;
}

static void node_free(struct vma_index *ix, struct vma_node *n)
{
	if (ix->hint == LEAF(n))
		ix->hint = NULL;
	slab_free(n->leaf ? &leaf_slab : &inner_slab, n);
}

void vma_index_init(struct vma_index *ix, unsigned long base)
{
	ix->root = NULL;
	ix->hint = NULL;
	ix->base = base;
	ix->height = 0;
}

static void node_destroy(struct vma_index *ix, struct vma_node *n)
{
	int i;

	if (!n->leaf)
		for (i = 0; i < n->count; i++)
			node_destroy(ix, INNER(n)->child[i]);
	node_free(ix, n);
}

void vma_index_destroy(struct vma_index *ix)
{
	if (ix->root)
		node_destroy(ix, ix->root);
	vma_index_init(ix, ix->base);
}

int vma_index_reserve(struct vma_index *ix, int inserts)
{
	/* One leaf and a split of every level, a new root included. */
	if (slab_reserve(&leaf_slab, (size_t)inserts) ||
	    slab_reserve(&inner_slab, (size_t)inserts * (ix->height + 2)))
		return -ENOMEM;
	return 0;
}

/* ---- positions ---- */

/*
 * The leaf holding the first key above addr. Past the last key: NULL, or
 * with clamp the last leaf.
 */
static struct vma_leaf *descend(const struct vma_index *ix, unsigned long addr,
				bool clamp)
{
	struct vma_node *n = ix->root;
	int i;

	if (!n)
		return NULL;
	while (!n->leaf) {
		i = inner_rank(INNER(n), addr);
		if (i >= n->count) {
			if (!clamp)
				return NULL;
			i = n->count - 1;
		}
		n = INNER(n)->child[i];
	}
	return LEAF(n);
}

/* Where vma sits: from the hint leaf when its keys span vma's, else a walk. */
static void locate(struct vma_index *ix, const struct vm_area_struct *vma,
		   struct vma_leaf **pl, int *ps)
{
	unsigned long key = vma->vm_end;
	struct vma_leaf *l = ix->hint;
	int s = 0;

	if (!l || !l->h.count || key < l->key[0] ||
	    key > l->key[l->h.count - 1])
		l = descend(ix, key - 1, false);
	if (l)
		s = leaf_rank(l, key - 1);
	if (!l || s >= l->h.count || l->vma[s] != vma) {
		fprintf(stderr, "vma_index: vma %#lx-%#lx is not indexed\n",
			vma->vm_start, vma->vm_end);
		abort();
	}
	*pl = l;
	*ps = s;
}

static inline struct vm_area_struct *prev_vma(const struct vma_leaf *l, int s)
{
	if (s)
		return l->vma[s - 1];
	return l->prev ? l->prev->vma[l->prev->h.count - 1] : NULL;
}

/* End of whatever lies below slot s: the VMA there, or the arena start. */
static inline unsigned long prev_end(const struct vma_index *ix,
				     const struct vma_leaf *l, int s)
{
	if (s)
		return l->key[s - 1];
	return l->prev ? l->prev->key[l->prev->h.count - 1] : ix->base;
}

static inline unsigned long entry_gap(const struct vma_index *ix,
				      const struct vma_leaf *l, int s)
{
	return l->vma[s]->vm_start - prev_end(ix, l, s);
}

/* The slot after s, possibly the next leaf's first; *pl NULL at the end. */
static inline void next_pos(struct vma_leaf **pl, int *ps)
{
	if (*ps + 1 < (*pl)->h.count) {
		(*ps)++;
	} else {
		*pl = (*pl)->next;
		*ps = 0;
	}
}

/* ---- gap counts ---- */

static inline void gap_add(struct vma_leaf *l, unsigned long g)
{
	if (g > l->h.max_gap) {
		l->h.max_gap = g;
		l->h.max_cnt = 1;
	} else if (g == l->h.max_gap) {
		l->h.max_cnt++;
	}
}

static inline void gap_del(struct vma_leaf *l, unsigned long g)
{
	if (g == l->h.max_gap && l->h.max_cnt)
		l->h.max_cnt--;
}

static inline void gap_change(struct vma_leaf *l, unsigned long old,
			      unsigned long new)
{
	if (old != new) {
		gap_del(l, old);
		gap_add(l, new);
	}
}

/* l's largest gap, measured from its VMAs, and how many have it. */
static unsigned long leaf_measure(const struct vma_index *ix,
				  const struct vma_leaf *l, int *count)
{
	unsigned long m = 0, g;
	int s, c = 0;

	for (s = 0; s < l->h.count; s++) {
		g = entry_gap(ix, l, s);
		if (g > m) {
			m = g;
			c = 1;
		} else if (g == m) {
			c++;
		}
	}
	*count = c;
	return m;
}

static void leaf_recount(const struct vma_index *ix, struct vma_leaf *l)
{
	int c;

	l->h.max_gap = leaf_measure(ix, l, &c);
	l->h.max_cnt = (unsigned short)c;
}

static inline void leaf_settle(const struct vma_index *ix, struct vma_leaf *l)
{
	if (l && l->h.count && !l->h.max_cnt)
		leaf_recount(ix, l);
}

/* ---- keys and gaps up the tree ---- */

static inline int child_index(const struct vma_inner *p,
			      const struct vma_node *n)
{
	int i;

	for (i = 0; i < p->h.count; i++)
		if (p->child[i] == n)
			return i;
	abort(); /* a node its parent does not know: corrupt index */
}

static inline void inner_regap(struct vma_inner *p)
{
	unsigned long m = 0;
	int i;

	for (i = 0; i < p->h.count; i++)
		if (p->gap[i] > m)
			m = p->gap[i];
	p->h.max_gap = m;
}

/* Carries n's largest key and gap towards the root until they hold. */
static void fix_up(struct vma_node *n)
{
	struct vma_inner *p;
	unsigned long k;
	int i;

	while ((p = n->parent)) {
		i = child_index(p, n);
		k = node_max_key(n);
		if (p->key[i] == k && p->gap[i] == n->max_gap)
			return;
		p->key[i] = k;
		p->gap[i] = n->max_gap;
		inner_regap(p);
		n = &p->h;
	}
}

/* ---- growing ---- */

static void link_right(struct vma_index *ix, struct vma_node *n,
		       struct vma_node *r);

static inline void inner_put(struct vma_inner *p, int i, struct vma_node *c)
{
	int n = p->h.count - i;

	memmove(&p->key[i + 1], &p->key[i], n * sizeof(p->key[0]));
	memmove(&p->child[i + 1], &p->child[i], n * sizeof(p->child[0]));
	memmove(&p->gap[i + 1], &p->gap[i], n * sizeof(p->gap[0]));
	p->key[i] = node_max_key(c);
	p->child[i] = c;
	p->gap[i] = c->max_gap;
	c->parent = p;
	p->h.count++;
}

/*
 * Where to split a full node for an insertion at slot i: at an end (an
 * ascending or descending run of mappings) the old node stays nearly full.
 */
static inline int split_point(int i, int slots)
{
	if (i >= slots)
		return slots - 1;
	if (i == 0)
		return 1;
	return (slots + 1) / 2;
}

/* Puts child c into p at slot i, splitting p when it is full. */
static void inner_insert(struct vma_index *ix, struct vma_inner *p, int i,
			 struct vma_node *c)
{
	if (p->h.count == INNER_SLOTS) {
		int sp = split_point(i, INNER_SLOTS), j, n = INNER_SLOTS - sp;
		struct vma_inner *q = inner_new();

		memcpy(q->key, &p->key[sp], n * sizeof(q->key[0]));
		memcpy(q->child, &p->child[sp], n * sizeof(q->child[0]));
		memcpy(q->gap, &p->gap[sp], n * sizeof(q->gap[0]));
		for (j = sp; j < INNER_SLOTS; j++) {
			p->key[j] = NO_KEY;
			p->child[j] = NULL;
			p->gap[j] = 0;
		}
		q->h.count = (unsigned char)n;
		p->h.count = (unsigned char)sp;
		for (j = 0; j < n; j++)
			q->child[j]->parent = q;
		inner_regap(p);
		inner_regap(q);
		link_right(ix, &p->h, &q->h);
		if (i > sp) {
			p = q;
			i -= sp;
		}
	}
	inner_put(p, i, c);
	inner_regap(p);
	fix_up(&p->h);
}

/* Links r, a new node holding what lies just above n, as n's right sibling. */
static void link_right(struct vma_index *ix, struct vma_node *n,
		       struct vma_node *r)
{
	struct vma_inner *p = n->parent;

	if (!p) {
		p = inner_new();
		inner_put(p, 0, n);
		inner_regap(p);
		ix->root = &p->h;
		ix->height++;
		inner_insert(ix, p, 1, r);
		return;
	}
	fix_up(n);
	inner_insert(ix, p, child_index(p, n) + 1, r);
}

/*
 * Moves l's entries from slot sp on to a new leaf right of it. Runs before
 * the operation changes anything, so the gap counts it starts from hold.
 */
static struct vma_leaf *leaf_split(struct vma_index *ix, struct vma_leaf *l,
				   int sp)
{
	struct vma_leaf *r = leaf_new();
	int j, n = l->h.count - sp;
	unsigned long g;

	memcpy(r->key, &l->key[sp], n * sizeof(r->key[0]));
	memcpy(r->vma, &l->vma[sp], n * sizeof(r->vma[0]));
	for (j = sp; j < l->h.count; j++) {
		l->key[j] = NO_KEY;
		l->vma[j] = NULL;
	}
	r->h.count = (unsigned char)n;
	l->h.count = (unsigned char)sp;
	r->prev = l;
	r->next = l->next;
	if (l->next)
		l->next->prev = r;
	l->next = r;
	if (n == 1) {
		/* One VMA moves: its gap moves with it. */
		g = entry_gap(ix, r, 0);
		r->h.max_gap = g;
		r->h.max_cnt = 1;
		gap_del(l, g);
		leaf_settle(ix, l);
	} else if (sp == 1) {
		g = entry_gap(ix, l, 0);
		r->h.max_gap = l->h.max_gap;
		r->h.max_cnt = l->h.max_cnt;
		gap_del(r, g);
		leaf_settle(ix, r);
		l->h.max_gap = g;
		l->h.max_cnt = 1;
	} else {
		leaf_recount(ix, l);
		leaf_recount(ix, r);
	}
	link_right(ix, &l->h, &r->h);
	return r;
}

/* Makes room for one more entry at slot *ps of *pl, which may move. */
static void leaf_make_room(struct vma_index *ix, struct vma_leaf **pl, int *ps)
{
	int sp;
	struct vma_leaf *r;

	if ((*pl)->h.count < LEAF_SLOTS)
		return;
	sp = split_point(*ps, LEAF_SLOTS);
	r = leaf_split(ix, *pl, sp);
	if (*ps > sp) {
		*pl = r;
		*ps -= sp;
	}
}

static inline void leaf_put(struct vma_leaf *l, int s,
			    struct vm_area_struct *vma)
{
	int n = l->h.count - s;

	memmove(&l->key[s + 1], &l->key[s], n * sizeof(l->key[0]));
	memmove(&l->vma[s + 1], &l->vma[s], n * sizeof(l->vma[0]));
	l->key[s] = vma->vm_end;
	l->vma[s] = vma;
	l->h.count++;
}

static inline void leaf_take(struct vma_leaf *l, int s)
{
	int n = l->h.count - s - 1;

	memmove(&l->key[s], &l->key[s + 1], n * sizeof(l->key[0]));
	memmove(&l->vma[s], &l->vma[s + 1], n * sizeof(l->vma[0]));
	l->h.count--;
	l->key[l->h.count] = NO_KEY;
	l->vma[l->h.count] = NULL;
}

/* ---- shrinking ---- */

static void node_rebalance(struct vma_index *ix, struct vma_node *n);

/* Drops the empty node n from the tree. */
static void node_remove(struct vma_index *ix, struct vma_node *n)
{
	struct vma_inner *p = n->parent;
	int i, k;

	if (n->leaf) {
		struct vma_leaf *l = LEAF(n);

		if (l->prev)
			l->prev->next = l->next;
		if (l->next)
			l->next->prev = l->prev;
	}
	if (!p) {
		node_free(ix, n);
		ix->root = NULL;
		ix->height = 0;
		return;
	}
	i = child_index(p, n);
	node_free(ix, n);
	k = p->h.count - i - 1;
	memmove(&p->key[i], &p->key[i + 1], k * sizeof(p->key[0]));
	memmove(&p->child[i], &p->child[i + 1], k * sizeof(p->child[0]));
	memmove(&p->gap[i], &p->gap[i + 1], k * sizeof(p->gap[0]));
	p->h.count--;
	p->key[p->h.count] = NO_KEY;
	p->child[p->h.count] = NULL;
	p->gap[p->h.count] = 0;
	if (!p->h.count) {
		node_remove(ix, &p->h);
		return;
	}
	inner_regap(p);
	fix_up(&p->h);
	node_rebalance(ix, &p->h);
}

/* b, a's right sibling, moves into a; both fit in one node. */
static void node_merge(struct vma_index *ix, struct vma_node *a,
		       struct vma_node *b)
{
	int n = b->count, at = a->count, j;

	if (a->leaf) {
		struct vma_leaf *la = LEAF(a), *lb = LEAF(b);

		memcpy(&la->key[at], lb->key, n * sizeof(la->key[0]));
		memcpy(&la->vma[at], lb->vma, n * sizeof(la->vma[0]));
		/* Both counts hold; the larger maximum wins, equal ones add. */
		if (b->max_gap > a->max_gap || !at) {
			a->max_gap = b->max_gap;
			a->max_cnt = b->max_cnt;
		} else if (b->max_gap == a->max_gap) {
			a->max_cnt += b->max_cnt;
		}
	} else {
		struct vma_inner *ia = INNER(a), *ib = INNER(b);

		memcpy(&ia->key[at], ib->key, n * sizeof(ia->key[0]));
		memcpy(&ia->child[at], ib->child, n * sizeof(ia->child[0]));
		memcpy(&ia->gap[at], ib->gap, n * sizeof(ia->gap[0]));
		for (j = 0; j < n; j++)
			ia->child[at + j]->parent = ia;
	}
	a->count = (unsigned char)(at + n);
	b->count = 0;
	if (!a->leaf)
		inner_regap(INNER(a));
	fix_up(a);
	node_remove(ix, b);
}

/*
 * Merges n with a sibling when the two fit in one node, so that nodes are
 * half full on average; a root left with one child gives way to it.
 */
static void node_rebalance(struct vma_index *ix, struct vma_node *n)
{
	struct vma_inner *p = n->parent;
	int slots = n->leaf ? LEAF_SLOTS : INNER_SLOTS, i;
	struct vma_node *a, *b;

	if (!p) {
		while (!n->leaf && n->count == 1) {
			struct vma_node *c = INNER(n)->child[0];

			c->parent = NULL;
			ix->root = c;
			ix->height--;
			node_free(ix, n);
			n = c;
		}
		return;
	}
	if (n->count >= slots / 2)
		return;
	i = child_index(p, n);
	if (i + 1 < p->h.count) {
		a = n;
		b = p->child[i + 1];
	} else if (i > 0) {
		a = p->child[i - 1];
		b = n;
	} else {
		return;
	}
	if (a->count + b->count <= slots)
		node_merge(ix, a, b);
}

/*
 * A touched leaf's largest key and gap as they were: only when one of them
 * changed does the change climb into the parents, whose slot arrays are
 * seldom in cache.
 */
struct leaf_was {
	struct vma_leaf *l;
	unsigned long key, gap;
};

static inline void leaf_note(struct leaf_was *w, struct vma_leaf *l)
{
	w->l = l;
	w->key = l ? node_max_key(&l->h) : 0;
	w->gap = l ? l->h.max_gap : 0;
}

static inline void leaf_carry(const struct vma_index *ix,
			      const struct leaf_was *w)
{
	struct vma_leaf *l = w->l;

	leaf_settle(ix, l);
	if (node_max_key(&l->h) != w->key || l->h.max_gap != w->gap)
		fix_up(&l->h);
}

/*
 * Ends a change to leaf a (which lost an entry if `shrank`) and leaf b
 * (NULL, or a's successor's leaf): recounts, carries upwards, merges.
 */
static void finish(struct vma_index *ix, const struct leaf_was *a,
		   const struct leaf_was *b, bool shrank)
{
	/* b first: a may go, and b's lowest gap is measured from a's end. */
	if (b->l && b->l != a->l)
		leaf_carry(ix, b);
	if (shrank && !a->l->h.count) {
		node_remove(ix, &a->l->h);
		return;
	}
	leaf_carry(ix, a);
	if (shrank)
		node_rebalance(ix, &a->l->h);
}

/* ---- the operations ---- */

struct vm_area_struct *vma_index_find(struct vma_index *ix, unsigned long addr,
				      struct vm_area_struct **pprev)
{
	struct vma_leaf *l = descend(ix, addr, false);
	int s = l ? leaf_rank(l, addr) : 0;

	if (!l || s >= l->h.count) {
		if (pprev)
			*pprev = vma_index_last(ix);
		return NULL;
	}
	ix->hint = l;
	if (pprev)
		*pprev = prev_vma(l, s);
	return l->vma[s];
}

struct vm_area_struct *vma_index_prev(struct vma_index *ix,
				      const struct vm_area_struct *vma)
{
	struct vma_leaf *l;
	int s;

	locate(ix, vma, &l, &s);
	return prev_vma(l, s);
}

struct vm_area_struct *vma_index_first(const struct vma_index *ix)
{
	struct vma_node *n = ix->root;

	if (!n)
		return NULL;
	while (!n->leaf)
		n = INNER(n)->child[0];
	return LEAF(n)->vma[0];
}

struct vm_area_struct *vma_index_last(const struct vma_index *ix)
{
	struct vma_node *n = ix->root;

	if (!n)
		return NULL;
	while (!n->leaf)
		n = INNER(n)->child[n->count - 1];
	return LEAF(n)->vma[n->count - 1];
}

void vma_index_insert(struct vma_index *ix, struct vm_area_struct *vma)
{
	struct vm_area_struct *prev, *next = NULL;
	struct leaf_was wl, wn;
	struct vma_leaf *l;
	unsigned long pend;
	int s;

	if (!ix->root) {
		l = leaf_new();
		ix->root = &l->h;
		ix->height = 0;
		leaf_put(l, 0, vma);
		l->h.max_gap = vma->vm_start - ix->base;
		l->h.max_cnt = 1;
		vma->vm_next = NULL;
		ix->hint = l;
		return;
	}
	l = descend(ix, vma->vm_end - 1, true);
	s = leaf_rank(l, vma->vm_end - 1);
	leaf_make_room(ix, &l, &s);
	/* The successor is at slot s, or first in the next leaf. */
	leaf_note(&wl, l);
	leaf_note(&wn, s < l->h.count ? l : l->next);
	pend = prev_end(ix, l, s);
	prev = prev_vma(l, s);
	leaf_put(l, s, vma);
	gap_add(l, vma->vm_start - pend);
	if (wn.l) {
		next = wn.l == l ? l->vma[s + 1] : wn.l->vma[0];
		gap_change(wn.l, next->vm_start - pend,
			   next->vm_start - vma->vm_end);
	}
	vma->vm_next = next;
	if (prev)
		prev->vm_next = vma;
	ix->hint = l;
	finish(ix, &wl, &wn, false);
}

void vma_index_erase(struct vma_index *ix, struct vm_area_struct *vma)
{
	struct vm_area_struct *prev, *next = vma->vm_next;
	struct leaf_was wl, wn;
	struct vma_leaf *l;
	unsigned long pend;
	int s;

	locate(ix, vma, &l, &s);
	leaf_note(&wl, l);
	leaf_note(&wn, !next ? NULL : s + 1 < l->h.count ? l : l->next);
	pend = prev_end(ix, l, s);
	prev = prev_vma(l, s);
	leaf_take(l, s);
	gap_del(l, vma->vm_start - pend);
	if (next)
		gap_change(wn.l, next->vm_start - vma->vm_end,
			   next->vm_start - pend);
	if (prev)
		prev->vm_next = next;
	finish(ix, &wl, &wn, true);
}

void vma_index_split(struct vma_index *ix, struct vm_area_struct *vma,
		     struct vm_area_struct *spare)
{
	struct leaf_was wl;
	struct vma_leaf *l;
	int s;

	locate(ix, vma, &l, &s);
	s++;
	/* The split keeps vma right before the spare's slot, in one leaf. */
	leaf_make_room(ix, &l, &s);
	leaf_note(&wl, l);
	vma->vm_end = spare->vm_start;
	l->key[s - 1] = vma->vm_end;
	leaf_put(l, s, spare);
	/* The spare touches vma, and the gap above it is vma's old one. */
	gap_add(l, 0);
	spare->vm_next = vma->vm_next;
	vma->vm_next = spare;
	ix->hint = l;
	leaf_carry(ix, &wl);
}

void vma_index_absorb(struct vma_index *ix, struct vm_area_struct *a,
		      struct vm_area_struct *b)
{
	struct leaf_was wa, wb;
	struct vma_leaf *l, *bl;
	int s, bs;

	locate(ix, a, &l, &s);
	bl = l;
	bs = s;
	next_pos(&bl, &bs);
	if (!bl || bl->vma[bs] != b)
		abort(); /* b is not a's upper neighbour: a bug in the caller */
	leaf_note(&wa, l);
	leaf_note(&wb, bl);
	leaf_take(bl, bs);
	/* What lay between them is now a's; the gap above b stays. */
	gap_del(bl, b->vm_start - a->vm_end);
	a->vm_end = b->vm_end;
	l->key[s] = a->vm_end;
	a->vm_next = b->vm_next;
	finish(ix, &wb, &wa, true);
}

void vma_index_set_bounds(struct vma_index *ix, struct vm_area_struct *vma,
			  unsigned long start, unsigned long end)
{
	struct leaf_was wl, wn;
	struct vma_leaf *l, *nl;
	unsigned long pend;
	int s, ns;

	locate(ix, vma, &l, &s);
	nl = l;
	ns = s;
	next_pos(&nl, &ns);
	leaf_note(&wl, l);
	leaf_note(&wn, nl);
	pend = prev_end(ix, l, s);
	gap_change(l, vma->vm_start - pend, start - pend);
	if (nl)
		gap_change(nl, nl->vma[ns]->vm_start - vma->vm_end,
			   nl->vma[ns]->vm_start - end);
	vma->vm_start = start;
	vma->vm_end = end;
	l->key[s] = end;
	finish(ix, &wl, &wn, false);
}

unsigned long vma_index_max_gap(const struct vma_index *ix)
{
	return ix->root ? ix->root->max_gap : 0;
}

struct vm_area_struct *vma_index_gap_above(const struct vma_index *ix,
					   unsigned long len)
{
	struct vma_node *n = ix->root;
	struct vma_leaf *l;
	int i;

	if (!n || n->max_gap < len)
		return NULL;
	/* The highest child whose largest gap fits, down to a leaf. */
	while (!n->leaf) {
		for (i = n->count - 1; i >= 0; i--)
			if (INNER(n)->gap[i] >= len)
				break;
		if (i < 0)
			abort(); /* the counts promised a gap: corrupt index */
		n = INNER(n)->child[i];
	}
	l = LEAF(n);
	for (i = l->h.count - 1; i >= 0; i--)
		if (entry_gap(ix, l, i) >= len)
			return l->vma[i];
	abort();
}

/* ---- validation ---- */

struct index_walk {
	const struct vma_leaf *leaf;       /* last leaf seen */
	const struct vm_area_struct *vma;  /* last VMA seen */
	int count;
};

static int bad(const char *what, const struct vma_node *n)
{
	fprintf(stderr, "vma_index: %s (node %p, %d slots)\n", what,
		(const void *)n, n->count);
	return -1;
}

static int validate_node(const struct vma_index *ix, const struct vma_node *n,
			 int depth, struct index_walk *w)
{
	const unsigned long *key = n->leaf ? LEAF(n)->key : INNER(n)->key;
	int slots = n->leaf ? LEAF_SLOTS : INNER_SLOTS, i;

	if (!n->count || n->count > slots)
		return bad("slot count out of range", n);
	for (i = 0; i < slots; i++) {
		if (i >= n->count ? key[i] != NO_KEY :
		    i > 0 && key[i] <= key[i - 1])
			return bad("keys out of order", n);
	}
	if (!n->leaf) {
		const struct vma_inner *in = INNER(n);
		unsigned long m = 0;

		if (depth >= ix->height)
			return bad("inner node at leaf depth", n);
		for (i = 0; i < n->count; i++) {
			const struct vma_node *c = in->child[i];

			if (c->parent != in)
				return bad("child with a wrong parent", n);
			if (validate_node(ix, c, depth + 1, w))
				return -1;
			if (in->key[i] != node_max_key(c) ||
			    in->gap[i] != c->max_gap)
				return bad("stale key or gap of a child", n);
			if (in->gap[i] > m)
				m = in->gap[i];
		}
		if (n->max_gap != m)
			return bad("stale largest gap", n);
		return 0;
	}

	const struct vma_leaf *l = LEAF(n);
	int c;

	if (depth != ix->height)
		return bad("leaf at the wrong depth", n);
	if (l->prev != w->leaf || (w->leaf && w->leaf->next != l))
		return bad("leaf list broken", n);
	if (w->vma && w->vma->vm_end >= key[0])
		return bad("keys out of order across leaves", n);
	for (i = 0; i < n->count; i++) {
		if (l->vma[i]->vm_end != key[i])
			return bad("key is not the VMA's end", n);
		if (w->vma && w->vma->vm_next != l->vma[i])
			return bad("vm_next chain broken", n);
		w->vma = l->vma[i];
		w->count++;
	}
	if (n->max_gap != leaf_measure(ix, l, &c) || !n->max_cnt ||
	    n->max_cnt > c)
		return bad("largest gap or its count wrong", n);
	w->leaf = l;
	return 0;
}

int vma_index_validate(const struct vma_index *ix, int count)
{
	struct index_walk w = { NULL, NULL, 0 };

	if (!ix->root) {
		if (!count)
			return 0;
		fprintf(stderr, "vma_index: empty, but %d VMAs counted\n",
			count);
		return -1;
	}
	if (ix->root->parent)
		return bad("root with a parent", ix->root);
	if (validate_node(ix, ix->root, 0, &w))
		return -1;
	if (w.leaf->next || w.vma->vm_next)
		return bad("list runs past the last VMA", &w.leaf->h);
	if (w.count != count) {
		fprintf(stderr, "vma_index: %d VMAs indexed, %d counted\n",
			w.count, count);
		return -1;
	}
	return 0;
}

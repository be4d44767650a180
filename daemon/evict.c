/*
 * evict.c - the 2Q eviction policy (contract in evict.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "evict.h"

#define EVICT_CHUNK 1024 /* nodes per allocation */

static void list_init(struct evict_list *l)
{
	l->head.next = l->head.prev = &l->head;
	l->count = 0;
}

static void list_del(struct evict_list *l, struct evict_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	l->count--;
}

static void list_add_tail(struct evict_list *l, struct evict_node *n)
{
	n->prev = l->head.prev;
	n->next = &l->head;
	l->head.prev->next = n;
	l->head.prev = n;
	l->count++;
}

static void list_add_head(struct evict_list *l, struct evict_node *n)
{
	n->next = l->head.next;
	n->prev = &l->head;
	l->head.next->prev = n;
	l->head.next = n;
	l->count++;
}

static struct evict_node *list_oldest(struct evict_list *l)
{
	return l->count ? l->head.next : NULL;
}

static struct evict_list *queue_list(struct evict *e, int q)
{
	switch (q) {
	case EVICT_A1IN:
		return &e->a1in;
	case EVICT_AM:
		return &e->am;
	default:
		return &e->ghosts;
	}
}

static size_t hash_of(const struct evict *e, const void *owner,
		      unsigned long pgoff)
{
	uint64_t h = (uint64_t)(uintptr_t)owner * 0x9e3779b97f4a7c15ULL ^
		     pgoff * 0xc2b2ae3d27d4eb4fULL;

	return (size_t)(h ^ (h >> 31)) & (e->nbuckets - 1);
}

static struct evict_node *lookup(struct evict *e, const void *owner,
				 unsigned long pgoff)
{
	struct evict_node *n = e->buckets[hash_of(e, owner, pgoff)];

	while (n && (n->owner != owner || n->pgoff != pgoff))
		n = n->hash_next;
	return n;
}

static void hash_del(struct evict *e, struct evict_node *n)
{
	struct evict_node **pp = &e->buckets[hash_of(e, n->owner, n->pgoff)];

	while (*pp != n)
		pp = &(*pp)->hash_next;
	*pp = n->hash_next;
}

static void hash_add(struct evict *e, struct evict_node *n)
{
	size_t h = hash_of(e, n->owner, n->pgoff);

	n->hash_next = e->buckets[h];
	e->buckets[h] = n;
}

/* Doubles the table when chains would grow past two on average. */
static void maybe_grow(struct evict *e)
{
	size_t total = e->a1in.count + e->am.count + e->ghosts.count;
	struct evict_node **old = e->buckets, *n, *next;
	size_t old_n = e->nbuckets;

	if (total < 2 * e->nbuckets)
		return;
	e->buckets = calloc(old_n * 2, sizeof(*e->buckets));
	if (!e->buckets) {
		e->buckets = old; /* keep working with longer chains */
		return;
	}
	e->nbuckets = old_n * 2;
	for (size_t i = 0; i < old_n; i++)
		for (n = old[i]; n; n = next) {
			next = n->hash_next;
			hash_add(e, n);
		}
	free(old);
}

/* Node pool: chunks are kept until evict_exit(), nodes recycled. */
struct evict_chunk {
	struct evict_chunk *next;
	struct evict_node nodes[EVICT_CHUNK];
};

static struct evict_node *node_alloc(struct evict *e)
{
	struct evict_node *n;

	if (!e->free_nodes) {
		struct evict_chunk *c = malloc(sizeof(*c));

		if (!c)
			return NULL;
		c->next = e->chunks;
		e->chunks = c;
		for (size_t i = 0; i < EVICT_CHUNK; i++) {
			c->nodes[i].next = e->free_nodes;
			e->free_nodes = &c->nodes[i];
		}
	}
	n = e->free_nodes;
	e->free_nodes = n->next;
	memset(n, 0, sizeof(*n));
	return n;
}

static void node_free(struct evict *e, struct evict_node *n)
{
	n->next = e->free_nodes;
	e->free_nodes = n;
}

/* Drops a node from its queue and the table. */
static void node_forget(struct evict *e, struct evict_node *n)
{
	list_del(queue_list(e, n->queue), n);
	hash_del(e, n);
	node_free(e, n);
}

/* Page (owner, pgoff) joins the end of probation, in node n (a ghost taken
   off its list) or a new one. */
static int probation_add(struct evict *e, const void *owner,
			 unsigned long pgoff, struct evict_node *n)
{
	if (!n) {
		n = node_alloc(e);
		if (!n)
			return -ENOMEM;
		n->owner = owner;
		n->pgoff = pgoff;
		hash_add(e, n);
	}
	n->queue = EVICT_A1IN;
	n->referenced = 0;
	list_add_tail(&e->a1in, n);
	maybe_grow(e);
	return 0;
}

int evict_init(struct evict *e, size_t budget)
{
	size_t want = 1024;

	memset(e, 0, sizeof(*e));
	list_init(&e->a1in);
	list_init(&e->am);
	list_init(&e->ghosts);
	e->budget = budget;
	/* Remember as many ghosts as half the cache holds (the 2Q paper). */
	e->ghost_max = budget / 2 > 64 ? budget / 2 : 64;
	while (want < budget + e->ghost_max)
		want *= 2;
	e->nbuckets = want;
	e->buckets = calloc(want, sizeof(*e->buckets));
	return e->buckets ? 0 : -ENOMEM;
}

void evict_exit(struct evict *e)
{
	struct evict_chunk *c = e->chunks;

	while (c) {
		struct evict_chunk *next = c->next;

		free(c);
		c = next;
	}
	free(e->buckets);
	memset(e, 0, sizeof(*e));
}

int evict_page_added(struct evict *e, const void *owner, unsigned long pgoff)
{
	struct evict_node *n = lookup(e, owner, pgoff);

	e->stats.added++;
	if (n && n->queue == EVICT_GHOST) {
		/* Came back while remembered: protect it. */
		list_del(&e->ghosts, n);
		n->queue = EVICT_AM;
		n->referenced = 0;
		list_add_tail(&e->am, n);
		e->stats.refaults++;
		e->stats.promoted++;
		return 1;
	}
	if (n) {
		/* Already resident (a second fill of one page): a use. */
		n->referenced = 1;
		return 0;
	}
	return probation_add(e, owner, pgoff, NULL);
}

void evict_page_referenced(struct evict *e, const void *owner,
			   unsigned long pgoff)
{
	struct evict_node *n = lookup(e, owner, pgoff);

	if (n && n->queue != EVICT_GHOST)
		n->referenced = 1;
}

void evict_page_removed(struct evict *e, const void *owner,
			unsigned long pgoff)
{
	struct evict_node *n = lookup(e, owner, pgoff);

	/* A ghost is a page this policy evicted: it stays remembered. */
	if (n && n->queue != EVICT_GHOST)
		node_forget(e, n);
}

int evict_page_keep(struct evict *e, const void *owner, unsigned long pgoff)
{
	struct evict_node *n = lookup(e, owner, pgoff);

	if (n && n->queue != EVICT_GHOST)
		return 0;
	if (n)
		list_del(&e->ghosts, n);
	if (probation_add(e, owner, pgoff, n) < 0)
		return -ENOMEM;
	e->stats.kept++;
	return 0;
}

void evict_page_cold(struct evict *e, const void *owner, unsigned long pgoff)
{
	struct evict_node *n = lookup(e, owner, pgoff);
	struct evict_list *l;

	if (!n || n->queue == EVICT_GHOST)
		return;
	l = queue_list(e, n->queue);
	list_del(l, n);
	n->referenced = 0;
	list_add_head(l, n);
}

void evict_forget_owner(struct evict *e, const void *owner)
{
	for (size_t i = 0; i < e->nbuckets; i++) {
		struct evict_node *n = e->buckets[i], *next;

		for (; n; n = next) {
			next = n->hash_next;
			if (n->owner == owner)
				node_forget(e, n);
		}
	}
}

bool evict_is_resident(struct evict *e, const void *owner,
		       unsigned long pgoff)
{
	struct evict_node *n = lookup(e, owner, pgoff);

	return n && n->queue != EVICT_GHOST;
}

/* Turns an evicted probation page into a ghost, dropping the oldest one. */
static void make_ghost(struct evict *e, struct evict_node *n)
{
	n->queue = EVICT_GHOST;
	n->referenced = 0;
	list_add_tail(&e->ghosts, n);
	while (e->ghosts.count > e->ghost_max)
		node_forget(e, list_oldest(&e->ghosts));
}

/* The next victim, or NULL when nothing is resident. */
static struct evict_node *pick_one(struct evict *e)
{
	size_t resident = evict_resident(e);
	struct evict_node *n;

	/* Probation first while over its quarter, or when Am is empty. */
	if (e->a1in.count && (e->a1in.count * 4 > resident || !e->am.count)) {
		n = list_oldest(&e->a1in);
		list_del(&e->a1in, n);
		make_ghost(e, n);
		return n;
	}
	/* CLOCK over Am: a referenced page gets one more pass. */
	while ((n = list_oldest(&e->am))) {
		list_del(&e->am, n);
		if (!n->referenced) {
			hash_del(e, n);
			return n;
		}
		n->referenced = 0;
		e->stats.second_chances++;
		list_add_tail(&e->am, n);
	}
	return NULL;
}

size_t evict_pick(struct evict *e, struct evict_victim *out, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		struct evict_node *v = pick_one(e);

		if (!v)
			break;
		out[i].owner = v->owner;
		out[i].pgoff = v->pgoff;
		e->stats.evicted++;
		/* Protected victims leave no ghost; their node goes now. */
		if (v->queue == EVICT_AM)
			node_free(e, v);
	}
	return i;
}

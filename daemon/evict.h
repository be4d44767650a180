/*
 * evict.h - which page-cache pages to drop when the daemon is over its
 * memory budget.
 *
 * Contract
 *
 * - The policy is 2Q. A page that becomes resident for the first time
 *   enters a FIFO probation queue (A1in). When probation pages are evicted
 *   the policy remembers them as ghosts (A1out, bounded). A page that
 *   faults in again while its ghost is remembered is a refault: it has
 *   proved it comes back, and enters the protected queue (Am), which is
 *   evicted in CLOCK order (a referenced page gets a second pass).
 * - A scan larger than the budget only cycles through probation, so the
 *   protected pages survive it. This needs no access bits: a fault is the
 *   only access the daemon sees, and a refault is the signal.
 * - Probation keeps about a quarter of the resident pages when Am is
 *   large (the classic 2Q split); victims come from probation while it is
 *   over that share, else from Am.
 * - Pages are named by (owner, pgoff); owner is an opaque pointer (the
 *   backing object). The module only decides: the caller writes dirty
 *   victims back and punches them out of the page cache.
 * - Single-threaded; O(1) per call, except evict_forget_owner().
 */
#ifndef UPAGED_EVICT_H
#define UPAGED_EVICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum evict_queue { EVICT_NONE, EVICT_A1IN, EVICT_AM, EVICT_GHOST };

struct evict_node {
	const void *owner;
	unsigned long pgoff;
	struct evict_node *prev, *next;   /* in its queue */
	struct evict_node *hash_next;
	uint8_t queue;                    /* enum evict_queue */
	uint8_t referenced;               /* second chance in Am */
};

struct evict_list {
	struct evict_node head;           /* circular, head.next is oldest */
	size_t count;
};

struct evict_stats {
	uint64_t added;       /* pages that became resident */
	uint64_t refaults;    /* of which came back while remembered */
	uint64_t evicted;     /* victims handed out */
	uint64_t promoted;    /* probation -> protected */
	uint64_t second_chances;
	uint64_t kept;        /* victims handed back by the caller */
};

struct evict {
	struct evict_list a1in, am, ghosts;
	struct evict_node **buckets;
	size_t nbuckets;
	size_t budget;        /* pages the cache may hold */
	size_t ghost_max;     /* ghosts remembered */
	struct evict_node *free_nodes;
	void *chunks;         /* node allocations, freed at exit */
	struct evict_stats stats;
};

struct evict_victim {
	const void *owner;
	unsigned long pgoff;
};

/* budget: resident pages allowed; 0 disables nothing but sizes tables. */
int evict_init(struct evict *e, size_t budget);
void evict_exit(struct evict *e);

static inline size_t evict_resident(const struct evict *e)
{
	return e->a1in.count + e->am.count;
}

/*
 * A page became resident. Returns 1 if it was a refault (its ghost was
 * remembered), 0 if not, -ENOMEM if it could not be tracked.
 */
int evict_page_added(struct evict *e, const void *owner, unsigned long pgoff);
/* The page was used again (a write fault, a WILLNEED hint). */
void evict_page_referenced(struct evict *e, const void *owner,
			   unsigned long pgoff);
/*
 * The page left the cache for another reason (truncate, a hole punched by
 * a client): no ghost. A page this policy evicted keeps its ghost.
 */
void evict_page_removed(struct evict *e, const void *owner,
			unsigned long pgoff);
/*
 * A victim that evict_pick() handed out stays resident after all (written
 * again, or it could not be made stable): tracked again, at the end of
 * probation, without counting as a refault. 0 or -ENOMEM.
 */
int evict_page_keep(struct evict *e, const void *owner, unsigned long pgoff);
/* The page should go first (MADV_COLD, MADV_PAGEOUT). */
void evict_page_cold(struct evict *e, const void *owner, unsigned long pgoff);
/* Forgets every page and ghost of owner (the object is going away). */
void evict_forget_owner(struct evict *e, const void *owner);

/*
 * Chooses up to n victims, oldest first, and stops tracking them as
 * resident (probation victims become ghosts). Returns how many.
 */
size_t evict_pick(struct evict *e, struct evict_victim *out, size_t n);

/* True if the page is resident as far as the policy knows. */
bool evict_is_resident(struct evict *e, const void *owner,
		       unsigned long pgoff);

#endif

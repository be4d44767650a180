/*
 * slab.c - fixed-size block allocator (see slab.h).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "slab.h"

/*
 * Chunks grow with the slab, from 4 KiB to 64 KiB, so that a small slab
 * holds little it does not use. A big one (a million VMAs is 100 MB) grows
 * by whole huge pages: random lookups then miss in the TLB far less.
 */
#define SLAB_MIN_CHUNK (4 * 1024)
#define SLAB_MAX_CHUNK (64 * 1024)
#define SLAB_HUGE_BYTES (2 * 1024 * 1024)
#define SLAB_HUGE_AFTER (16 * 1024 * 1024)

#if defined(__SANITIZE_ADDRESS__)
#define SLAB_DISABLED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_DISABLED 1
#endif
#endif

static void slab_push(struct slab *s, void *p)
{
	*(void **)p = s->free;
	s->free = p;
	s->nfree++;
}

#ifndef SLAB_DISABLED
/* A quarter of what the slab holds, within the bounds above. */
static size_t slab_chunk_bytes(const struct slab *s, size_t head)
{
	size_t bytes = SLAB_MIN_CHUNK;

	if (s->bytes >= SLAB_HUGE_AFTER)
		return SLAB_HUGE_BYTES;
	while (bytes < SLAB_MAX_CHUNK && bytes < s->bytes / 4)
		bytes *= 2;
	while (bytes < head + s->size)
		bytes *= 2;
	return bytes;
}
#endif

/* Adds one chunk's worth of blocks (one block under ASan). */
static int slab_grow(struct slab *s)
{
#ifdef SLAB_DISABLED
	void *p = aligned_alloc(s->align, s->size);

	if (!p)
		return -ENOMEM;
	s->bytes += s->size;
	slab_push(s, p);
#else
	/* The chunk header takes one alignment unit, blocks follow. */
	size_t head = s->align > sizeof(void *) ? s->align : sizeof(void *);
	size_t bytes = slab_chunk_bytes(s, head);
	bool huge = bytes == SLAB_HUGE_BYTES;
	char *c = aligned_alloc(huge ? SLAB_HUGE_BYTES : s->align, bytes);
	size_t i;

	if (!c)
		return -ENOMEM;
	/* Best effort: without transparent huge pages it is a plain chunk. */
	if (huge)
		madvise(c, bytes, MADV_HUGEPAGE);
	*(void **)c = s->chunks;
	s->chunks = c;
	s->bytes += bytes;
	/* Pushed from the top, so that blocks come out in address order. */
	for (i = (bytes - head) / s->size; i > 0; i--)
		slab_push(s, c + head + (i - 1) * s->size);
#endif
	return 0;
}

int slab_reserve(struct slab *s, size_t n)
{
	while (s->nfree < n)
		if (slab_grow(s))
			return -ENOMEM;
	return 0;
}

void *slab_alloc(struct slab *s)
{
	void *p;

	if (!s->nfree && slab_grow(s))
		return NULL;
	p = s->free;
	s->free = *(void **)p;
	s->nfree--;
	return p;
}

void slab_free(struct slab *s, void *p)
{
	if (!p)
		return;
#ifdef SLAB_DISABLED
	/* Straight back to malloc, so that a use after free is caught. */
	free(p);
	s->bytes -= s->size;
#else
	slab_push(s, p);
#endif
}

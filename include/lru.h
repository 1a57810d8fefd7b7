/*
 * lru.h - a least-recently-used list, newest first, threaded through
 * the elements it orders: each embeds a struct lru_link named "lru",
 * and LRU_OWNER() finds the element of a link.  No locking: the user
 * holds its own lock around every call.
 */
#ifndef MARKETFS_LRU_H
#define MARKETFS_LRU_H

#include <stddef.h>

struct lru_link {
	struct lru_link *prev, *next;
};

struct lru {
	struct lru_link *head, *tail;
};

#define LRU_OWNER(link, type) \
	((type *)(void *)((char *)(link) - offsetof(type, lru)))

static inline void lru_unlink(struct lru *l, struct lru_link *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		l->head = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		l->tail = n->prev;
	n->prev = n->next = NULL;
}

static inline void lru_push(struct lru *l, struct lru_link *n)
{
	n->prev = NULL;
	n->next = l->head;
	if (l->head)
		l->head->prev = n;
	l->head = n;
	if (!l->tail)
		l->tail = n;
}

/* Move n to the front: it was just used. */
static inline void lru_touch(struct lru *l, struct lru_link *n)
{
	lru_unlink(l, n);
	lru_push(l, n);
}

#endif

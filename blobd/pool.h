/*
 * A fixed set of worker threads with a bounded queue.
 *
 * Work that blocks (fsync, synchronous database writes, password hashing,
 * image rescaling) runs here while the HTTP polling thread goes on. When
 * every worker is busy and the queue is full, pool_submit() fails at once,
 * so a burst turns into 503 answers instead of unbounded memory or threads.
 */
#ifndef BLOBD_POOL_H
#define BLOBD_POOL_H

#include <stddef.h>

struct pool;

typedef void (*pool_fn)(void *arg);

/* Start `threads` workers; at most `queue_max` jobs wait beyond them. */
struct pool *pool_new(const char *name, size_t threads, size_t queue_max);
/* Queue a job. Returns 0, or -1 when the queue is full. */
int pool_submit(struct pool *p, pool_fn fn, void *arg);
/* Jobs waiting or running, for metrics. */
size_t pool_pending(struct pool *p);
/* Run the queued jobs, then stop and join the workers. */
void pool_free(struct pool *p);

#endif

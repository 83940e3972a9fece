/* The worker pool of pool.h: a mutex, a condition variable and a FIFO. */
#include "pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"

struct job {
    pool_fn fn;
    void *arg;
    struct job *next;
};

struct pool {
    char name[16];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, *tail;
    size_t queued, running, queue_max, nthreads;
    bool stopping;
    pthread_t *threads;
};

static void *worker(void *arg)
{
    struct pool *p = arg;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        struct job *job;

        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        if (!p->head)
            break;
        job = p->head;
        p->head = job->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
        p->running++;
        pthread_mutex_unlock(&p->mu);
        job->fn(job->arg);
        free(job);
        pthread_mutex_lock(&p->mu);
        p->running--;
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

struct pool *pool_new(const char *name, size_t threads, size_t queue_max)
{
    struct pool *p = calloc(1, sizeof(*p));

    if (!p)
        return NULL;
    snprintf(p->name, sizeof(p->name), "%s", name);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->queue_max = queue_max;
    p->threads = calloc(threads, sizeof(pthread_t));
    if (!p->threads) {
        free(p);
        return NULL;
    }
    for (size_t i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker, p) != 0) {
            log_error("pool", "thread_create_failed", "pool=%s", p->name);
            break;
        }
        p->nthreads++;
    }
    return p;
}

int pool_submit(struct pool *p, pool_fn fn, void *arg)
{
    struct job *job;

    pthread_mutex_lock(&p->mu);
    /* Jobs beyond the idle workers wait in the queue, up to queue_max. */
    if (p->stopping ||
        p->queued + p->running >= p->nthreads + p->queue_max) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    job = malloc(sizeof(*job));
    if (!job) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    job->fn = fn;
    job->arg = arg;
    job->next = NULL;
    if (p->tail)
        p->tail->next = job;
    else
        p->head = job;
    p->tail = job;
    p->queued++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

size_t pool_pending(struct pool *p)
{
    size_t n;

    pthread_mutex_lock(&p->mu);
    n = p->queued + p->running;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void pool_free(struct pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}

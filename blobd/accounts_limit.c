/*
 * The login rate limiter: failed logins per sliding window, counted per
 * (client address, contract, username) and per client address.
 *
 * Each entry keeps the times of its latest failures in a ring as long as
 * its limit, so the window slides exactly. A login is blocked while the
 * ring is full of failures younger than ACCOUNTS_LOGIN_WINDOW_MS.
 * Retry-After is the time until the oldest of them leaves the window.
 * A blocked attempt is not recorded.
 *
 * A login takes a pending slot in its entries at accounts_limiter_begin()
 * and gives it back at accounts_limiter_end(). Slots count against the
 * limit, so that guesses sent at once cannot all pass the check while the
 * password hashes of the first ones still run. The entries of a login
 * that did not fail are dropped at its end when they contain nothing
 * else.
 *
 * Entries sit in a binary tree (tsearch) by key, which stays O(log n)
 * whatever keys an attacker chooses, and in a list ordered by their last
 * failure. The number of entries of each kind is capped; at the cap the
 * entry whose last failure is oldest is dropped. State lives in memory
 * only: a restart forgets it.
 */
#include <pthread.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts_int.h"

/* "u" or "a", the address, the contract and the username, separated by
 * newlines, which none of them can contain. */
#define LIMIT_KEY_MAX (2 + 64 + 1 + STORE_CID_MAX + 1 + \
                       ACCOUNTS_USERNAME_MAX + 1)

enum limit_kind { LIMIT_USER, LIMIT_ADDR, LIMIT_KINDS };

struct limit_entry {
    char key[LIMIT_KEY_MAX];     /* first member: the tree compares keys */
    enum limit_kind kind;
    struct limit_entry *newer;   /* list by last failure, per kind */
    struct limit_entry *older;
    unsigned count;              /* failures held in the ring */
    unsigned pending;            /* logins between begin and end */
    unsigned oldest;             /* ring index of the oldest failure */
    int64_t times[];             /* ring of failure times, limit slots */
};

struct limit_list {
    struct limit_entry *newest;
    struct limit_entry *oldest;
    size_t size;
};

struct accounts_limiter {
    pthread_mutex_t lock;
    void *root;                  /* tsearch tree of struct limit_entry */
    struct limit_list lists[LIMIT_KINDS];
};

static const unsigned kind_limit[LIMIT_KINDS] = {
    [LIMIT_USER] = ACCOUNTS_LOGIN_USER_FAILURES,
    [LIMIT_ADDR] = ACCOUNTS_LOGIN_ADDR_FAILURES,
};

static const size_t kind_cap[LIMIT_KINDS] = {
    [LIMIT_USER] = ACCOUNTS_LIMIT_USER_ENTRIES,
    [LIMIT_ADDR] = ACCOUNTS_LIMIT_ADDR_ENTRIES,
};

static int entry_compare(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

int accounts_limiter_new(struct accounts_limiter **out,
                         struct blobd_error *err)
{
    struct accounts_limiter *lim = calloc(1, sizeof(*lim));

    *out = NULL;
    if (!lim)
        return blobd_fail(err, BLOBD_ENOMEM, "out of memory");
    pthread_mutex_init(&lim->lock, NULL);
    *out = lim;
    return BLOBD_OK;
}

void accounts_limiter_free(struct accounts_limiter *lim)
{
    if (!lim)
        return;
    tdestroy(lim->root, free);
    pthread_mutex_destroy(&lim->lock);
    free(lim);
}

/* Build the key of one kind; false when a user key lacks its names. */
static bool limit_key(char key[LIMIT_KEY_MAX], enum limit_kind kind,
                      const char *addr, const char *cid,
                      const char *username)
{
    if (kind == LIMIT_ADDR) {
        snprintf(key, LIMIT_KEY_MAX, "a\n%.64s", addr);
        return true;
    }
    if (!cid || !username)
        return false;

    char lower[ACCOUNTS_USERNAME_MAX + 1];
    size_t i;

    for (i = 0; username[i] && i < ACCOUNTS_USERNAME_MAX; i++) {
        char ch = username[i];

        lower[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
    }
    lower[i] = '\0';
    snprintf(key, LIMIT_KEY_MAX, "u\n%.64s\n%.64s\n%s", addr, cid, lower);
    return true;
}

static struct limit_entry *limit_find(struct accounts_limiter *lim,
                                      const char *key)
{
    void *node = tfind(key, &lim->root, entry_compare);

    return node ? *(struct limit_entry **)node : NULL;
}

/* Drop the failures that have left the window. */
static void limit_prune(struct limit_entry *e, int64_t now_ms)
{
    unsigned limit = kind_limit[e->kind];

    while (e->count > 0 &&
           e->times[e->oldest] <= now_ms - ACCOUNTS_LOGIN_WINDOW_MS) {
        e->oldest = (e->oldest + 1) % limit;
        e->count--;
    }
}

/* Seconds until `e` allows a login again; 0 when it allows one now.
 * With `with_pending`, logins in progress count as failures. */
static unsigned limit_wait(struct limit_entry *e, int64_t now_ms,
                           bool with_pending)
{
    limit_prune(e, now_ms);
    if (e->count + (with_pending ? e->pending : 0) < kind_limit[e->kind])
        return 0;
    if (e->count < kind_limit[e->kind])
        return 1;   /* full with logins in progress, which end soon */

    int64_t wait_ms = e->times[e->oldest] + ACCOUNTS_LOGIN_WINDOW_MS -
                      now_ms;

    /* Round up, so a client that waits for Retry-After gets through. */
    return wait_ms <= 0 ? 1 : (unsigned)((wait_ms + 999) / 1000);
}

unsigned accounts_limiter_check(struct accounts_limiter *lim,
                                const char *addr, const char *cid,
                                const char *username, int64_t now_ms)
{
    char key[LIMIT_KEY_MAX];
    unsigned wait = 0;

    pthread_mutex_lock(&lim->lock);
    for (int kind = 0; kind < LIMIT_KINDS; kind++) {
        if (!limit_key(key, (enum limit_kind)kind, addr, cid, username))
            continue;

        struct limit_entry *e = limit_find(lim, key);

        if (e) {
            unsigned w = limit_wait(e, now_ms, false);

            if (w > wait)
                wait = w;
        }
    }
    pthread_mutex_unlock(&lim->lock);
    return wait;
}

static void list_unlink(struct limit_list *list, struct limit_entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        list->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        list->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void list_push(struct limit_list *list, struct limit_entry *e)
{
    e->older = list->newest;
    e->newer = NULL;
    if (list->newest)
        list->newest->newer = e;
    else
        list->oldest = e;
    list->newest = e;
}

static void limit_drop(struct accounts_limiter *lim, struct limit_list *list,
                       struct limit_entry *e)
{
    list_unlink(list, e);
    tdelete(e->key, &lim->root, entry_compare);
    list->size--;
    free(e);
}

static void limit_evict_oldest(struct accounts_limiter *lim,
                               struct limit_list *list)
{
    limit_drop(lim, list, list->oldest);
}

/* Find or create the entry of `key`; NULL when out of memory. */
static struct limit_entry *limit_entry_get(struct accounts_limiter *lim,
                                           enum limit_kind kind,
                                           const char *key)
{
    struct limit_list *list = &lim->lists[kind];
    struct limit_entry *e = limit_find(lim, key);

    if (e)
        return e;
    if (list->size >= kind_cap[kind])
        limit_evict_oldest(lim, list);
    e = calloc(1, sizeof(*e) + kind_limit[kind] * sizeof(e->times[0]));
    if (!e)
        return NULL;
    snprintf(e->key, sizeof(e->key), "%s", key);
    e->kind = kind;
    if (!tsearch(e, &lim->root, entry_compare)) {
        free(e);
        return NULL;
    }
    list_push(list, e);
    list->size++;
    return e;
}

/* Record a failure in the entries of the login; lim->lock held. */
static void limit_fail_locked(struct accounts_limiter *lim, const char *addr,
                              const char *cid, const char *username,
                              int64_t now_ms)
{
    char key[LIMIT_KEY_MAX];

    for (int k = 0; k < LIMIT_KINDS; k++) {
        enum limit_kind kind = (enum limit_kind)k;

        if (!limit_key(key, kind, addr, cid, username))
            continue;

        struct limit_entry *e = limit_entry_get(lim, kind, key);
        unsigned limit = kind_limit[kind];

        /* Out of memory: this failure goes uncounted, which only makes
         * the limiter more lenient for a moment. */
        if (!e)
            continue;
        limit_prune(e, now_ms);
        if (e->count == limit) {
            e->times[e->oldest] = now_ms;
            e->oldest = (e->oldest + 1) % limit;
        } else {
            e->times[(e->oldest + e->count) % limit] = now_ms;
            e->count++;
        }
        list_unlink(&lim->lists[kind], e);
        list_push(&lim->lists[kind], e);
    }
}

void accounts_limiter_fail(struct accounts_limiter *lim, const char *addr,
                           const char *cid, const char *username,
                           int64_t now_ms)
{
    pthread_mutex_lock(&lim->lock);
    limit_fail_locked(lim, addr, cid, username, now_ms);
    pthread_mutex_unlock(&lim->lock);
}

unsigned accounts_limiter_begin(struct accounts_limiter *lim,
                                const char *addr, const char *cid,
                                const char *username, int64_t now_ms)
{
    char key[LIMIT_KEY_MAX];
    unsigned wait = 0;

    pthread_mutex_lock(&lim->lock);
    for (int k = 0; k < LIMIT_KINDS; k++) {
        struct limit_entry *e;

        if (!limit_key(key, (enum limit_kind)k, addr, cid, username))
            continue;
        e = limit_find(lim, key);
        if (e) {
            unsigned w = limit_wait(e, now_ms, true);

            if (w > wait)
                wait = w;
        }
    }
    for (int k = 0; k < LIMIT_KINDS && wait == 0; k++) {
        struct limit_entry *e;

        if (!limit_key(key, (enum limit_kind)k, addr, cid, username))
            continue;
        /* Out of memory: the login goes without a slot, which only makes
         * the limiter more lenient for a moment. */
        e = limit_entry_get(lim, (enum limit_kind)k, key);
        if (e)
            e->pending++;
    }
    pthread_mutex_unlock(&lim->lock);
    return wait;
}

void accounts_limiter_end(struct accounts_limiter *lim, const char *addr,
                          const char *cid, const char *username, bool failed,
                          int64_t now_ms)
{
    char key[LIMIT_KEY_MAX];

    pthread_mutex_lock(&lim->lock);
    /* An entry evicted meanwhile has taken its slot with it. */
    for (int k = 0; k < LIMIT_KINDS; k++) {
        struct limit_entry *e;

        if (!limit_key(key, (enum limit_kind)k, addr, cid, username))
            continue;
        e = limit_find(lim, key);
        if (e && e->pending > 0)
            e->pending--;
        if (e && !failed && e->pending == 0) {
            limit_prune(e, now_ms);
            if (e->count == 0)
                limit_drop(lim, &lim->lists[k], e);
        }
    }
    if (failed)
        limit_fail_locked(lim, addr, cid, username, now_ms);
    pthread_mutex_unlock(&lim->lock);
}

size_t accounts_limiter_size(struct accounts_limiter *lim)
{
    size_t n;

    pthread_mutex_lock(&lim->lock);
    n = lim->lists[LIMIT_USER].size + lim->lists[LIMIT_ADDR].size;
    pthread_mutex_unlock(&lim->lock);
    return n;
}

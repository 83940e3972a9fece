/*
 * Purge by date and the periodic sweep. Both work in batches of at most
 * CHAT_BATCH messages or blobs, each committed on its own with the lock
 * held only for that batch, so other requests of the contract go on in
 * between. Each batch leaves consistent data, and a purge cut short is
 * completed by running it again.
 *
 * A purge deletes messages (without deletion events: the purge record
 * tells devices to drop everything sent before its date), then the
 * deletion events of messages sent before the date, then the blobs
 * without references uploaded last before the date, and finally records
 * the purge under a new seq.
 */
#include <stdlib.h>
#include <string.h>

#include "chat_internal.h"

/* Delete up to CHAT_BATCH messages sent before `before_ms` with a seq of
 * at most `upto`; *done when no more remain. */
static int purge_batch(struct store_contract *c, int64_t before_ms,
                       uint64_t upto, uint64_t *deleted, bool *done,
                       struct blobd_error *err)
{
    struct chat_refdelta d;
    struct store_batch *b;
    struct store_iter *it;
    size_t n = 0;
    int rc = BLOBD_OK;

    *done = true;
    chat_refdelta_init(&d);
    b = store_batch_new(c);

    store_contract_lock(c);
    it = store_iter_new(c, "t", 1);
    for (store_iter_seek_first(it); store_iter_valid(it);
         store_iter_next(it)) {
        struct chat_message m;
        size_t klen;
        const char *k = store_iter_key(it, &klen);
        int64_t ms;
        uint64_t seq;

        if (klen != 17)
            continue;
        ms = (int64_t)store_be64_get((const unsigned char *)k + 1);
        seq = store_be64_get((const unsigned char *)k + 9);
        /* sent_at never decreases with seq, so the first entry past
         * either bound ends the purge. */
        if (ms >= before_ms || seq > upto)
            break;
        if (n == CHAT_BATCH) {
            *done = false;
            break;
        }
        rc = chat_message_load(c, seq, &m, err);
        if (rc == BLOBD_ENOTFOUND) {
            store_batch_delete(b, k, klen);     /* a stale index entry */
            rc = BLOBD_OK;
            continue;
        }
        if (rc != BLOBD_OK)
            break;
        chat_message_delete_in_batch(b, &m, false, &d);
        chat_message_clear(&m);
        n++;
    }
    store_iter_free(it);
    if (rc == BLOBD_OK)
        rc = chat_refdelta_apply(&d, c, b, err);
    if (rc == BLOBD_OK)
        rc = store_batch_commit(b, err);
    store_contract_unlock(c);

    store_batch_free(b);
    chat_refdelta_free(&d);
    if (rc == BLOBD_OK)
        *deleted += n;
    return rc;
}

/* Delete the deletion events of messages sent before `before_ms`,
 * looking at CHAT_BATCH events per batch from *cursor (a seq) on. */
static int prune_batch(struct store_contract *c, int64_t before_ms,
                       uint64_t *cursor, bool *done, struct blobd_error *err)
{
    char key[CHAT_KEY_MAX];
    struct store_batch *b = store_batch_new(c);
    struct store_iter *it;
    size_t n = 0;
    int rc;

    store_contract_lock(c);
    it = store_iter_new(c, "d", 1);
    store_iter_seek(it, key, chat_key_deletion(key, *cursor));
    for (; store_iter_valid(it) && n < CHAT_BATCH; store_iter_next(it), n++) {
        size_t klen, vlen;
        const char *k = store_iter_key(it, &klen);
        const char *v = store_iter_value(it, &vlen);

        if (klen != 9)
            continue;
        *cursor = store_be64_get((const unsigned char *)k + 1) + 1;
        if (vlen == CHAT_DELETION_LEN &&
            (int64_t)store_be64_get((const unsigned char *)v +
                                   2 * CHAT_ID_LEN) < before_ms)
            store_batch_delete(b, k, klen);
    }
    *done = !store_iter_valid(it);
    store_iter_free(it);
    rc = store_batch_commit(b, err);
    store_contract_unlock(c);
    store_batch_free(b);
    return rc;
}

/* Record the purge: the latest date (the larger of the old and the new
 * one, since nothing before either remains) under a new seq. */
static int purge_record(struct store_contract *c, int64_t before_ms,
                        struct blobd_error *err)
{
    struct store_batch *b = store_batch_new(c);
    unsigned char val[16];
    char *old = NULL;
    size_t olen = 0;
    int rc;

    store_contract_lock(c);
    if (store_get(c, CHAT_KEY_PURGE, 2, &old, &olen, NULL) == BLOBD_OK &&
        olen == 16 &&
        (int64_t)store_be64_get((const unsigned char *)old) > before_ms)
        before_ms = (int64_t)store_be64_get((const unsigned char *)old);
    store_be64_put(val, (uint64_t)before_ms);
    store_be64_put(val + 8, store_batch_next_seq(b));
    store_batch_put(b, CHAT_KEY_PURGE, 2, val, sizeof(val));
    rc = store_batch_commit(b, err);
    store_contract_unlock(c);
    store_batch_free(b);
    free(old);
    return rc;
}

/* Delete the unreferenced blobs uploaded last before `before_ms`. */
static int blobs_sweep(struct store_contract *c, int64_t before_ms,
                       uint64_t *blobs, uint64_t *bytes,
                       struct blobd_error *err)
{
    uint64_t prev;
    int rc;

    do {
        prev = *blobs;
        rc = store_blob_sweep(c, before_ms, CHAT_BATCH, false, blobs, bytes,
                              err);
    } while (rc == BLOBD_OK && *blobs - prev >= CHAT_BATCH);
    return rc;
}

/*
 * Count what a purge would delete. Blobs that reach zero references are
 * found from the references that the purged messages hold: a blob goes
 * when all its `refs` are among them and its latest upload is before the
 * date. Blobs already without references are counted by the store.
 */
static int purge_dry_run(struct store_contract *c, int64_t before_ms,
                         uint64_t upto, struct chat_purge_result *out,
                         struct blobd_error *err)
{
    struct chat_refdelta d;
    struct store_iter *it = store_iter_new(c, "t", 1);
    const unsigned char *digest;
    int64_t delta;
    size_t pos = 0;
    int rc = BLOBD_OK;

    chat_refdelta_init(&d);
    for (store_iter_seek_first(it); store_iter_valid(it);
         store_iter_next(it)) {
        struct chat_message m;
        size_t klen;
        const char *k = store_iter_key(it, &klen);

        if (klen != 17)
            continue;
        if ((int64_t)store_be64_get((const unsigned char *)k + 1) >=
                before_ms ||
            store_be64_get((const unsigned char *)k + 9) > upto)
            break;
        rc = chat_message_load(c, store_be64_get((const unsigned char *)k + 9),
                               &m, err);
        if (rc == BLOBD_ENOTFOUND) {
            rc = BLOBD_OK;
            continue;
        }
        if (rc != BLOBD_OK)
            break;
        chat_refdelta_message(&d, &m, -1);
        chat_message_clear(&m);
        out->messages_deleted++;
    }
    store_iter_free(it);

    while (rc == BLOBD_OK &&
           chat_keymap_next(d.blobs, &pos, &digest, &delta)) {
        struct store_blob blob;

        if (store_blob_get(c, digest, &blob, NULL) != BLOBD_OK)
            continue;
        if (blob.refs > 0 && blob.refs <= (uint64_t)-delta &&
            blob.last_upload_ms < before_ms) {
            out->blobs_deleted++;
            out->bytes_freed += blob.size;
        }
    }
    chat_refdelta_free(&d);
    if (rc == BLOBD_OK)
        rc = store_blob_sweep(c, before_ms, SIZE_MAX, true,
                              &out->blobs_deleted, &out->bytes_freed, err);
    return rc;
}

int chat_purge(struct store_contract *c, int64_t before_ms, bool dry_run,
               struct chat_purge_result *out, struct blobd_error *err)
{
    /* Messages posted while the purge runs are left alone, even when the
     * date lies in the future, so the purge always ends. */
    uint64_t upto = store_contract_seq(c), cursor = 0;
    int64_t started_ms = store_now_ms();
    bool done = false;
    int rc = BLOBD_OK;

    /* A date in the future means "everything so far": clamping it keeps
     * blobs uploaded during the purge and a purged_before that devices
     * would otherwise apply to messages they receive later. */
    if (before_ms > started_ms)
        before_ms = started_ms;
    memset(out, 0, sizeof(*out));
    if (dry_run)
        return purge_dry_run(c, before_ms, upto, out, err);

    while (rc == BLOBD_OK && !done) {
        rc = purge_batch(c, before_ms, upto, &out->messages_deleted, &done,
                         err);
        chat_yield_lock();
    }
    done = false;
    while (rc == BLOBD_OK && !done) {
        rc = prune_batch(c, before_ms, &cursor, &done, err);
        chat_yield_lock();
    }
    if (rc == BLOBD_OK)
        rc = blobs_sweep(c, before_ms, &out->blobs_deleted,
                         &out->bytes_freed, err);
    if (rc == BLOBD_OK)
        rc = purge_record(c, before_ms, err);
    return rc;
}

/* The gid of a group deletion still in progress; false when none. */
static bool pending_group(struct store_contract *c, char gid[CHAT_ID_LEN + 1])
{
    struct store_iter *it = store_iter_new(c, "Pg", 2);
    bool found = false;

    for (store_iter_seek_first(it); store_iter_valid(it) && !found;
         store_iter_next(it)) {
        size_t klen;
        const char *k = store_iter_key(it, &klen);

        if (klen != 2 + CHAT_ID_LEN)
            continue;
        memcpy(gid, k + 2, CHAT_ID_LEN);
        gid[CHAT_ID_LEN] = '\0';
        found = true;
    }
    store_iter_free(it);
    return found;
}

int chat_sweep(struct store_contract *c, int64_t now_ms, uint64_t grace_s,
               uint64_t *blobs, uint64_t *bytes, struct blobd_error *err)
{
    char gid[CHAT_ID_LEN + 1];
    int rc = BLOBD_OK;

    /* Each completed deletion removes its mark, so this loop ends. */
    while (rc == BLOBD_OK && pending_group(c, gid))
        rc = chat_group_finish_delete(c, gid, err);
    if (rc == BLOBD_OK)
        rc = blobs_sweep(c, now_ms - (int64_t)grace_s * 1000, blobs, bytes,
                         err);
    return rc;
}

/*
 * Groups (conversations): the 'g' records, the 'G' membership index and
 * group deletion, which ends access at once and then deletes the group's
 * messages in batches. A deleted group's record stays as a tombstone with
 * its last members, so sync can still send them its deletion events.
 */
#include <stdlib.h>
#include <string.h>

#include "chat_internal.h"

void chat_group_clear(struct chat_group *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->nmembers; i++)
        free(g->members[i]);
    free(g->members);
    free(g->name);
    memset(g, 0, sizeof(*g));
}

void chat_groups_free(struct chat_group *groups, size_t n)
{
    for (size_t i = 0; i < n; i++)
        chat_group_clear(&groups[i]);
    free(groups);
}

bool chat_is_member(struct store_contract *c, const char *uid,
                    const char *gid)
{
    char key[CHAT_KEY_MAX];

    if (!chat_uid_valid(uid) || !chat_id_valid(gid))
        return false;
    return store_exists(c, key, chat_key_member(key, uid, gid));
}

static int name_check(const char *name, struct blobd_error *err)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || n > CHAT_NAME_MAX)
        return blobd_fail(err, BLOBD_EINVAL,
                          "invalid name: must be 1 to %d bytes",
                          CHAT_NAME_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch < 0x20 || ch == 0x7f)
            return blobd_fail(err, BLOBD_EINVAL,
                              "invalid name: contains a control character");
    }
    return BLOBD_OK;
}

/*
 * Fill g->members with the distinct uids of `members`, in their order,
 * after checking that each is a user of the contract. Run with the lock
 * held, so that the check and the write see the same users.
 */
static int members_take(struct store_contract *c, const char *const *members,
                        size_t n, struct chat_group *g,
                        struct blobd_error *err)
{
    char key[CHAT_KEY_MAX];

    if (n > CHAT_MEMBERS_MAX)
        return blobd_fail(err, BLOBD_EINVAL,
                          "invalid members: more than %d", CHAT_MEMBERS_MAX);
    g->members = chat_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        bool dup = false;

        if (!chat_uid_valid(members[i]) ||
            !store_exists(c, key, chat_key_user(key, members[i])))
            return blobd_fail(err, BLOBD_EINVAL,
                              "invalid members: unknown user %.64s",
                              members[i] ? members[i] : "");
        for (size_t k = 0; k < g->nmembers && !dup; k++)
            dup = !strcmp(g->members[k], members[i]);
        if (!dup)
            g->members[g->nmembers++] = chat_xstrdup(members[i]);
    }
    return BLOBD_OK;
}

static bool has_member(const struct chat_group *g, const char *uid)
{
    for (size_t i = 0; i < g->nmembers; i++) {
        if (!strcmp(g->members[i], uid))
            return true;
    }
    return false;
}

/* Add the group record of `g` to the batch. */
static void group_put(struct store_batch *b, const struct chat_group *g,
                      bool deleted)
{
    char key[CHAT_KEY_MAX];
    size_t vlen;
    char *val = chat_group_encode(g, deleted, &vlen);

    store_batch_put(b, key, chat_key_group(key, g->id), val, vlen);
    free(val);
}

int chat_group_create(struct store_contract *c, const char *name,
                      const char *const *members, size_t nmembers,
                      struct chat_group *out, struct blobd_error *err)
{
    struct chat_group g = { .name = NULL };
    struct store_batch *b = NULL;
    char key[CHAT_KEY_MAX];
    int rc;

    rc = name_check(name, err);
    if (rc != BLOBD_OK)
        return rc;
    g.name = chat_xstrdup(name);

    store_contract_lock(c);
    rc = members_take(c, members, nmembers, &g, err);
    /* 64 random bits: a collision is unlikely, but tombstones must not be
     * reused either, so look before taking the id. */
    do {
        if (rc == BLOBD_OK)
            rc = chat_id_random(g.id, err);
    } while (rc == BLOBD_OK &&
             store_exists(c, key, chat_key_group(key, g.id)));
    if (rc == BLOBD_OK) {
        b = store_batch_new(c);
        group_put(b, &g, false);
        for (size_t i = 0; i < g.nmembers; i++)
            store_batch_put(b, key, chat_key_member(key, g.members[i], g.id),
                            "", 0);
        rc = store_batch_commit(b, err);
    }
    store_contract_unlock(c);

    store_batch_free(b);
    if (rc == BLOBD_OK && out)
        *out = g;
    else
        chat_group_clear(&g);
    return rc;
}

int chat_group_set_members(struct store_contract *c, const char *gid,
                           const char *const *members, size_t nmembers,
                           struct chat_group *out, struct blobd_error *err)
{
    struct chat_group_rec old;
    struct chat_group g = { .name = NULL };
    struct store_batch *b = NULL;
    char key[CHAT_KEY_MAX];
    int rc;

    store_contract_lock(c);
    rc = chat_group_load(c, gid, &old, err);
    if (rc == BLOBD_OK && old.deleted)
        rc = blobd_fail(err, BLOBD_ENOTFOUND, "conversation not found");
    if (rc == BLOBD_OK)
        rc = members_take(c, members, nmembers, &g, err);
    if (rc == BLOBD_OK) {
        memcpy(g.id, old.g.id, sizeof(g.id));
        g.name = chat_xstrdup(old.g.name);
        b = store_batch_new(c);
        group_put(b, &g, false);
        for (size_t i = 0; i < old.g.nmembers; i++) {
            if (!has_member(&g, old.g.members[i]))
                store_batch_delete(b, key, chat_key_member(
                                       key, old.g.members[i], g.id));
        }
        for (size_t i = 0; i < g.nmembers; i++)
            store_batch_put(b, key, chat_key_member(key, g.members[i], g.id),
                            "", 0);
        rc = store_batch_commit(b, err);
    }
    store_contract_unlock(c);

    store_batch_free(b);
    chat_group_clear(&old.g);
    if (rc == BLOBD_OK && out)
        *out = g;
    else
        chat_group_clear(&g);
    return rc;
}

int chat_group_get(struct store_contract *c, const char *gid,
                   struct chat_group *out, struct blobd_error *err)
{
    struct chat_group_rec rec;
    int rc = chat_group_load(c, gid, &rec, err);

    if (rc == BLOBD_OK && rec.deleted)
        rc = blobd_fail(err, BLOBD_ENOTFOUND, "conversation not found");
    if (rc == BLOBD_OK)
        *out = rec.g;
    else
        chat_group_clear(&rec.g);
    return rc;
}

int chat_group_delete(struct store_contract *c, const char *gid,
                      struct blobd_error *err)
{
    struct chat_group_rec rec;
    struct store_batch *b = NULL;
    char key[CHAT_KEY_MAX];
    int rc;

    /* First batch: tombstone the group and end every member's access. */
    store_contract_lock(c);
    rc = chat_group_load(c, gid, &rec, err);
    if (rc == BLOBD_OK && rec.deleted)
        rc = blobd_fail(err, BLOBD_ENOTFOUND, "conversation not found");
    if (rc == BLOBD_OK) {
        b = store_batch_new(c);
        group_put(b, &rec.g, true);
        for (size_t i = 0; i < rec.g.nmembers; i++)
            store_batch_delete(b, key, chat_key_member(
                                   key, rec.g.members[i], rec.g.id));
        store_batch_put(b, key, chat_key_pending(key, rec.g.id), "", 0);
        store_batch_mark_sweep(b);
        rc = store_batch_commit(b, err);
    }
    store_contract_unlock(c);
    store_batch_free(b);
    chat_group_clear(&rec.g);
    if (rc != BLOBD_OK)
        return rc;
    return chat_group_finish_delete(c, gid, err);
}

/* Delete up to CHAT_BATCH messages of the group in one batch; *done when
 * none remain (then the pending mark goes in the same batch). */
static int group_delete_batch(struct store_contract *c, const char *gid,
                              bool *done, struct blobd_error *err)
{
    char prefix[1 + CHAT_ID_LEN];
    char key[CHAT_KEY_MAX];
    struct chat_refdelta d;
    struct store_batch *b;
    struct store_iter *it;
    size_t n = 0;
    int rc = BLOBD_OK;

    prefix[0] = 'c';
    memcpy(prefix + 1, gid, CHAT_ID_LEN);
    chat_refdelta_init(&d);
    b = store_batch_new(c);

    store_contract_lock(c);
    it = store_iter_new(c, prefix, sizeof(prefix));
    for (store_iter_seek_first(it); store_iter_valid(it) && n < CHAT_BATCH;
         store_iter_next(it)) {
        struct chat_message m;
        size_t klen;
        const char *k = store_iter_key(it, &klen);
        uint64_t seq;

        if (klen != sizeof(prefix) + 8)
            continue;
        seq = store_be64_get((const unsigned char *)k + sizeof(prefix));
        rc = chat_message_load(c, seq, &m, err);
        if (rc == BLOBD_ENOTFOUND) {
            /* An index entry without its message: drop the entry. */
            store_batch_delete(b, k, klen);
            rc = BLOBD_OK;
            continue;
        }
        if (rc != BLOBD_OK)
            break;
        chat_message_delete_in_batch(b, &m, true, &d);
        chat_message_clear(&m);
        n++;
    }
    *done = rc == BLOBD_OK && !store_iter_valid(it);
    store_iter_free(it);
    if (*done)
        store_batch_delete(b, key, chat_key_pending(key, gid));
    if (rc == BLOBD_OK)
        rc = chat_refdelta_apply(&d, c, b, err);
    if (rc == BLOBD_OK)
        rc = store_batch_commit(b, err);
    store_contract_unlock(c);

    store_batch_free(b);
    chat_refdelta_free(&d);
    return rc;
}

int chat_group_finish_delete(struct store_contract *c, const char *gid,
                             struct blobd_error *err)
{
    bool done = false;
    int rc = BLOBD_OK;

    while (rc == BLOBD_OK && !done) {
        rc = group_delete_batch(c, gid, &done, err);
        chat_yield_lock();
    }
    return rc;
}

static void list_push(struct chat_group **v, size_t *n, size_t *cap,
                      struct chat_group *g)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 8;
        *v = chat_xrealloc(*v, *cap * sizeof(**v));
    }
    (*v)[(*n)++] = *g;
}

int chat_groups_list(struct store_contract *c, const char *uid,
                     struct chat_group **out, size_t *n,
                     struct blobd_error *err)
{
    char prefix[CHAT_KEY_MAX];
    size_t plen = 1, cap = 0;
    struct store_iter *it;
    int rc = BLOBD_OK;

    *out = NULL;
    *n = 0;
    prefix[0] = 'g';
    if (uid) {
        if (!chat_uid_valid(uid))
            return BLOBD_OK;
        plen = chat_key_member_prefix(prefix, uid);
    }
    it = store_iter_new(c, prefix, plen);
    for (store_iter_seek_first(it); store_iter_valid(it);
         store_iter_next(it)) {
        struct chat_group_rec rec;
        char gid[CHAT_ID_LEN + 1];
        size_t klen;
        const char *k = store_iter_key(it, &klen);

        if (klen != plen + CHAT_ID_LEN)
            continue;
        memcpy(gid, k + plen, CHAT_ID_LEN);
        gid[CHAT_ID_LEN] = '\0';
        rc = chat_group_load(c, gid, &rec, err);
        if (rc == BLOBD_ENOTFOUND) {
            rc = BLOBD_OK;
            continue;
        }
        if (rc != BLOBD_OK)
            break;
        if (rec.deleted)
            chat_group_clear(&rec.g);
        else
            list_push(out, n, &cap, &rec.g);
    }
    store_iter_free(it);
    if (rc != BLOBD_OK) {
        chat_groups_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

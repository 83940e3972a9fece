/*
 * Sync: the messages and deletion events of a user's conversations after
 * a seq, oldest first. The conversation index 'c' of each of the user's
 * groups and the deletion events 'd' are merged by seq, so the cost
 * follows what the user gets, not the contract's traffic (except for the
 * deletion events of other groups, which are skipped one by one).
 */
#include <stdlib.h>
#include <string.h>

#include "chat_internal.h"

/* One ordered input of the merge: an iterator and its current seq. */
struct source {
    struct store_iter *it;
    size_t plen;                /* key = prefix (plen bytes) + be64 seq */
    uint64_t seq;
    bool live;
};

/* What the merge knows of a gid seen in a deletion event. */
struct gid_seen {
    char gid[CHAT_ID_LEN];
    bool relevant;
};

struct sync_state {
    struct store_contract *c;
    const char *uid;
    uint64_t upto;              /* the contract seq the answer is made at */
    struct source *src;         /* [0] deletions, then one per group */
    size_t nsrc;
    struct gid_seen *seen;
    size_t nseen, capseen;
};

/* Move `s` to its next key of the right shape with a seq <= upto. */
static void source_settle(struct sync_state *st, struct source *s)
{
    s->live = false;
    for (; store_iter_valid(s->it); store_iter_next(s->it)) {
        size_t klen;
        const char *k = store_iter_key(s->it, &klen);

        if (klen != s->plen + 8)
            continue;
        s->seq = store_be64_get((const unsigned char *)k + s->plen);
        s->live = s->seq <= st->upto;
        return;
    }
}

static void source_open(struct sync_state *st, struct source *s,
                        const char *prefix, size_t plen, uint64_t since)
{
    char key[CHAT_KEY_MAX];

    s->it = store_iter_new(st->c, prefix, plen);
    s->plen = plen;
    memcpy(key, prefix, plen);
    store_be64_put((unsigned char *)key + plen,
                  since == UINT64_MAX ? UINT64_MAX : since + 1);
    store_iter_seek(s->it, key, plen + 8);
    source_settle(st, s);
}

static void sources_add(struct sync_state *st, const char *prefix,
                        size_t plen, uint64_t since)
{
    st->src = chat_xrealloc(st->src, (st->nsrc + 1) * sizeof(*st->src));
    source_open(st, &st->src[st->nsrc], prefix, plen, since);
    st->nsrc++;
}

/* One source for the deletion events, one per group of the user. */
static void sources_open(struct sync_state *st, uint64_t since)
{
    char prefix[CHAT_KEY_MAX], cprefix[1 + CHAT_ID_LEN];
    struct store_iter *it;
    size_t plen = chat_key_member_prefix(prefix, st->uid);

    sources_add(st, "d", 1, since);
    it = store_iter_new(st->c, prefix, plen);
    for (store_iter_seek_first(it); store_iter_valid(it);
         store_iter_next(it)) {
        size_t klen;
        const char *k = store_iter_key(it, &klen);

        if (klen != plen + CHAT_ID_LEN)
            continue;
        cprefix[0] = 'c';
        memcpy(cprefix + 1, k + plen, CHAT_ID_LEN);
        sources_add(st, cprefix, sizeof(cprefix), since);
    }
    store_iter_free(it);
}

/* A deletion event concerns the user when its group is one of theirs, or
 * a deleted group whose last members included them. */
static bool deletion_relevant(struct sync_state *st, const char *gid)
{
    struct chat_group_rec rec;
    bool relevant = false;
    char id[CHAT_ID_LEN + 1];

    for (size_t i = 0; i < st->nseen; i++) {
        if (!memcmp(st->seen[i].gid, gid, CHAT_ID_LEN))
            return st->seen[i].relevant;
    }
    memcpy(id, gid, CHAT_ID_LEN);
    id[CHAT_ID_LEN] = '\0';
    if (chat_is_member(st->c, st->uid, id)) {
        relevant = true;
    } else if (chat_group_load(st->c, id, &rec, NULL) == BLOBD_OK) {
        for (size_t i = 0; rec.deleted && i < rec.g.nmembers; i++)
            relevant = relevant || !strcmp(rec.g.members[i], st->uid);
        chat_group_clear(&rec.g);
    }
    if (st->nseen == st->capseen) {
        st->capseen = st->capseen ? 2 * st->capseen : 16;
        st->seen = chat_xrealloc(st->seen, st->capseen * sizeof(*st->seen));
    }
    memcpy(st->seen[st->nseen].gid, gid, CHAT_ID_LEN);
    st->seen[st->nseen++].relevant = relevant;
    return relevant;
}

/* Handle the current event of source `s`; *taken when it joined the
 * answer. */
static int event_take(struct sync_state *st, struct source *s,
                      struct chat_sync *out, bool *taken,
                      struct blobd_error *err)
{
    size_t vlen;
    const char *v;
    int rc;

    *taken = false;
    if (s == &st->src[0]) {
        v = store_iter_value(s->it, &vlen);
        if (vlen != CHAT_DELETION_LEN ||
            !deletion_relevant(st, v + CHAT_ID_LEN))
            return BLOBD_OK;
        memcpy(out->deleted[out->ndeleted], v, CHAT_ID_LEN);
        out->deleted[out->ndeleted++][CHAT_ID_LEN] = '\0';
        *taken = true;
        return BLOBD_OK;
    }
    rc = chat_message_load(st->c, s->seq,
                           &out->page.messages[out->page.nmessages], err);
    if (rc == BLOBD_ENOTFOUND)
        return BLOBD_OK;        /* deleted since; its event follows */
    if (rc != BLOBD_OK)
        return rc;
    out->page.nmessages++;
    *taken = true;
    return BLOBD_OK;
}

static void purge_read(struct store_contract *c, struct chat_sync *out,
                       uint64_t *purge_seq)
{
    char *val = NULL;
    size_t vlen = 0;

    *purge_seq = 0;
    if (store_get(c, CHAT_KEY_PURGE, 2, &val, &vlen, NULL) == BLOBD_OK &&
        vlen == 16) {
        out->purged = true;
        out->purged_before_ms =
            (int64_t)store_be64_get((const unsigned char *)val);
        *purge_seq = store_be64_get((const unsigned char *)val + 8);
    }
    free(val);
}

static int merge(struct sync_state *st, struct chat_sync *out, size_t limit,
                 uint64_t *last, bool *complete, struct blobd_error *err)
{
    size_t count = 0;
    int rc = BLOBD_OK;

    *complete = false;
    for (;;) {
        struct source *min = NULL;
        bool taken;

        for (size_t i = 0; i < st->nsrc; i++) {
            if (st->src[i].live && (!min || st->src[i].seq < min->seq))
                min = &st->src[i];
        }
        if (!min) {
            *complete = true;
            break;
        }
        if (count == limit)
            break;
        rc = event_take(st, min, out, &taken, err);
        if (rc != BLOBD_OK)
            break;
        if (taken) {
            count++;
            *last = min->seq;
        }
        store_iter_next(min->it);
        source_settle(st, min);
    }
    return rc;
}

int chat_sync(struct store_contract *c, const char *uid, uint64_t since,
              size_t limit, struct chat_sync *out, struct blobd_error *err)
{
    struct sync_state st = { .c = c, .uid = uid };
    uint64_t last = since, purge_seq;
    bool complete = false;
    int rc = BLOBD_OK;

    memset(out, 0, sizeof(*out));
    if (limit == 0)
        limit = 1;
    if (limit > CHAT_PAGE_MAX)
        limit = CHAT_PAGE_MAX;
    /* Read the seq first: every event up to it is committed, so iterators
     * made after this line see all of them. */
    st.upto = store_contract_seq(c);
    out->seen_seq = st.upto;
    purge_read(c, out, &purge_seq);
    out->page.messages = chat_xcalloc(limit, sizeof(*out->page.messages));
    out->deleted = chat_xcalloc(limit, sizeof(*out->deleted));
    if (chat_uid_valid(uid)) {
        sources_open(&st, since);
        rc = merge(&st, out, limit, &last, &complete, err);
    } else {
        complete = true;
    }
    for (size_t i = 0; i < st.nsrc; i++)
        store_iter_free(st.src[i].it);
    free(st.src);
    free(st.seen);
    if (rc != BLOBD_OK) {
        chat_sync_clear(out);
        return rc;
    }

    /* The highest seq the answer covers: its last message or deletion,
     * or the purge it reports, and `since` when it holds nothing. */
    out->next_since = last;
    if (complete && purge_seq > out->next_since && purge_seq <= st.upto)
        out->next_since = purge_seq;
    out->changed = out->page.nmessages > 0 || out->ndeleted > 0 ||
                   (purge_seq > since && purge_seq <= out->next_since);
    return BLOBD_OK;
}

void chat_sync_clear(struct chat_sync *s)
{
    if (!s)
        return;
    chat_page_clear(&s->page);
    free(s->deleted);
    memset(s, 0, sizeof(*s));
}

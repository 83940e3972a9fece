/*
 * Consistency check of the chat families of one contract, for `blobd
 * check`: every message has its index entries and every index entry its
 * message, the 'r' counters equal the messages that reference each blob
 * per group, the membership index matches the group records, and
 * message_count equals the messages. The references per blob are handed
 * back so that the caller can compare them with the blob records.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_internal.h"

struct chat_refs {
    struct chat_keymap *blobs;
};

struct verify {
    struct store_contract *c;
    chat_report_fn report;
    void *arg;
    unsigned problems;
};

__attribute__((format(printf, 2, 3)))
static void problem(struct verify *v, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    v->problems++;
    v->report(v->arg, line);
}

static bool message_exists(struct verify *v, uint64_t seq,
                           struct chat_message *m)
{
    return chat_message_load(v->c, seq, m, NULL) == BLOBD_OK;
}

/* Check one message's index entries and count its references. */
static void verify_message(struct verify *v, const struct chat_message *m,
                           struct chat_refdelta *d)
{
    char key[CHAT_KEY_MAX];
    uint64_t seq = 0;
    char hex[2 * STORE_DIGEST_LEN + 1];
    struct store_blob blob;

    if (chat_mid_seq(v->c, m->id, &seq, NULL) != BLOBD_OK || seq != m->seq)
        problem(v, "message %llu: id %s has no index entry pointing to it",
                (unsigned long long)m->seq, m->id);
    if (!store_exists(v->c, key, chat_key_time(key, m->sent_at_ms, m->seq)))
        problem(v, "message %llu: time index entry missing",
                (unsigned long long)m->seq);
    if (!store_exists(v->c, key, chat_key_conv(key, m->conversation, m->seq)))
        problem(v, "message %llu: conversation index entry missing",
                (unsigned long long)m->seq);
    if (!store_exists(v->c, key, chat_key_group(key, m->conversation)))
        problem(v, "message %llu: group %s does not exist",
                (unsigned long long)m->seq, m->conversation);
    for (size_t i = 0; i < m->nattachments; i++) {
        if (store_blob_get(v->c, m->attachments[i].blob, &blob, NULL) ==
            BLOBD_OK)
            continue;
        store_digest_hex(m->attachments[i].blob, hex);
        problem(v, "message %llu: attached blob %s has no record",
                (unsigned long long)m->seq, hex);
    }
    chat_refdelta_message(d, m, 1);
}

static uint64_t verify_messages(struct verify *v, struct chat_refdelta *d)
{
    struct store_iter *it = store_iter_new(v->c, "m", 1);
    uint64_t n = 0;

    for (store_iter_seek_first(it); store_iter_valid(it);
         store_iter_next(it)) {
        struct chat_message m;
        size_t klen, vlen;
        const char *k = store_iter_key(it, &klen);
        const char *val = store_iter_value(it, &vlen);
        uint64_t seq;

        if (klen != 9) {
            problem(v, "message key of %zu bytes", klen);
            continue;
        }
        seq = store_be64_get((const unsigned char *)k + 1);
        if (chat_message_decode(val, vlen, seq, &m, NULL) != BLOBD_OK) {
            problem(v, "message %llu: corrupt record",
                    (unsigned long long)seq);
            continue;
        }
        n++;
        verify_message(v, &m, d);
        chat_message_clear(&m);
    }
    store_iter_free(it);
    return n;
}

/* Every 'M', 't' and 'c' entry points to a message that matches it. */
static void verify_indexes(struct verify *v)
{
    static const struct {
        const char *family;
        size_t klen;          /* key length; seq is its last 8 bytes */
        const char *name;
    } idx[] = {
        { "t", 17, "time index" },
        { "c", 1 + CHAT_ID_LEN + 8, "conversation index" },
    };
    struct chat_message m;

    for (size_t i = 0; i < sizeof(idx) / sizeof(idx[0]); i++) {
        struct store_iter *it = store_iter_new(v->c, idx[i].family, 1);

        for (store_iter_seek_first(it); store_iter_valid(it);
             store_iter_next(it)) {
            size_t klen;
            const char *k = store_iter_key(it, &klen);
            uint64_t seq;

            if (klen != idx[i].klen) {
                problem(v, "%s key of %zu bytes", idx[i].name, klen);
                continue;
            }
            seq = store_be64_get((const unsigned char *)k + klen - 8);
            if (!message_exists(v, seq, &m)) {
                problem(v, "%s entry for missing message %llu", idx[i].name,
                        (unsigned long long)seq);
                continue;
            }
            chat_message_clear(&m);
        }
        store_iter_free(it);
    }

    struct store_iter *it = store_iter_new(v->c, "M", 1);
    for (store_iter_seek_first(it); store_iter_valid(it);
         store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = store_iter_key(it, &klen);
        const char *val = store_iter_value(it, &vlen);

        if (klen != 1 + CHAT_ID_LEN || vlen != 8 ||
            !message_exists(v, store_be64_get((const unsigned char *)val),
                            &m)) {
            problem(v, "message id entry %.*s points to no message",
                    (int)(klen > 1 ? klen - 1 : 0), k + 1);
            continue;
        }
        if (memcmp(m.id, k + 1, CHAT_ID_LEN) != 0)
            problem(v, "message id entry %.*s points to message %s",
                    CHAT_ID_LEN, k + 1, m.id);
        chat_message_clear(&m);
    }
    store_iter_free(it);
}

static void verify_rights(struct verify *v, struct chat_refdelta *d)
{
    struct store_iter *it = store_iter_new(v->c, "r", 1);
    char hex[2 * STORE_DIGEST_LEN + 1];
    const unsigned char *key;
    int64_t expected;
    size_t pos = 0;

    for (store_iter_seek_first(it); store_iter_valid(it);
         store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = store_iter_key(it, &klen);
        const char *val = store_iter_value(it, &vlen);
        uint64_t have;

        if (klen != 1 + STORE_DIGEST_LEN + CHAT_ID_LEN || vlen != 8) {
            problem(v, "rights counter with a key of %zu bytes", klen);
            continue;
        }
        have = store_be64_get((const unsigned char *)val);
        expected = chat_keymap_get(d->rights, k + 1);
        if ((int64_t)have != expected) {
            store_digest_hex((const unsigned char *)k + 1, hex);
            problem(v, "blob %s in group %.*s: rights counter %llu, "
                    "%lld messages reference it", hex, CHAT_ID_LEN,
                    k + 1 + STORE_DIGEST_LEN, (unsigned long long)have,
                    (long long)expected);
        }
    }
    store_iter_free(it);

    while (chat_keymap_next(d->rights, &pos, &key, &expected)) {
        char rkey[CHAT_KEY_MAX];

        if (expected <= 0 ||
            store_exists(v->c, rkey, chat_key_right(rkey, key, (const char *)
                                                    key + STORE_DIGEST_LEN)))
            continue;
        store_digest_hex(key, hex);
        problem(v, "blob %s in group %.*s: rights counter missing, %lld "
                "messages reference it", hex, CHAT_ID_LEN,
                key + STORE_DIGEST_LEN, (long long)expected);
    }
}

/* Group records against the membership index, both ways. */
static void verify_groups(struct verify *v)
{
    struct store_iter *it = store_iter_new(v->c, "g", 1);
    char key[CHAT_KEY_MAX], gid[CHAT_ID_LEN + 1];

    for (store_iter_seek_first(it); store_iter_valid(it);
         store_iter_next(it)) {
        struct chat_group_rec rec;
        size_t klen;
        const char *k = store_iter_key(it, &klen);

        if (klen != 1 + CHAT_ID_LEN) {
            problem(v, "group key of %zu bytes", klen);
            continue;
        }
        memcpy(gid, k + 1, CHAT_ID_LEN);
        gid[CHAT_ID_LEN] = '\0';
        if (chat_group_load(v->c, gid, &rec, NULL) != BLOBD_OK) {
            problem(v, "group %s: corrupt record", gid);
            continue;
        }
        for (size_t i = 0; !rec.deleted && i < rec.g.nmembers; i++) {
            if (!store_exists(v->c, key, chat_key_member(
                                  key, rec.g.members[i], gid)))
                problem(v, "group %s: member %s has no index entry", gid,
                        rec.g.members[i]);
        }
        chat_group_clear(&rec.g);
    }
    store_iter_free(it);

    it = store_iter_new(v->c, "G", 1);
    for (store_iter_seek_first(it); store_iter_valid(it);
         store_iter_next(it)) {
        size_t klen;
        const char *k = store_iter_key(it, &klen);
        const char *uid = k + 1;
        size_t ulen = strnlen(uid, klen - 1);

        if (klen != ulen + 2 + CHAT_ID_LEN) {
            problem(v, "membership key of %zu bytes", klen);
            continue;
        }
        memcpy(gid, k + ulen + 2, CHAT_ID_LEN);
        gid[CHAT_ID_LEN] = '\0';
        struct chat_group_rec rec;
        bool member = false;
        if (chat_group_load(v->c, gid, &rec, NULL) == BLOBD_OK) {
            for (size_t i = 0; !rec.deleted && i < rec.g.nmembers; i++)
                member = member ||
                         (strlen(rec.g.members[i]) == ulen &&
                          !memcmp(rec.g.members[i], uid, ulen));
            chat_group_clear(&rec.g);
        }
        if (!member)
            problem(v, "membership of %.*s in group %s has no live group "
                    "listing it", (int)ulen, uid, gid);
    }
    store_iter_free(it);
}

unsigned chat_check(struct store_contract *c, chat_report_fn report,
                    void *arg, struct chat_refs **refs)
{
    struct verify v = { .c = c, .report = report, .arg = arg };
    struct store_contract_info info;
    struct chat_refdelta d;
    uint64_t n;

    chat_refdelta_init(&d);
    n = verify_messages(&v, &d);
    verify_indexes(&v);
    verify_rights(&v, &d);
    verify_groups(&v);
    store_contract_info(c, &info);
    if (info.message_count != n)
        problem(&v, "message_count is %llu, but %llu messages are stored",
                (unsigned long long)info.message_count,
                (unsigned long long)n);

    *refs = chat_xcalloc(1, sizeof(**refs));
    (*refs)->blobs = d.blobs;
    d.blobs = NULL;
    chat_refdelta_free(&d);
    return v.problems;
}

uint64_t chat_refs_expected(const struct chat_refs *refs,
                            const unsigned char digest[STORE_DIGEST_LEN])
{
    int64_t n = chat_keymap_get(refs->blobs, digest);

    return n > 0 ? (uint64_t)n : 0;
}

void chat_refs_free(struct chat_refs *refs)
{
    if (!refs)
        return;
    chat_keymap_free(refs->blobs);
    free(refs);
}

/*
 * Messages: posting, deleting, history pages and the download rights
 * that messages give. A message owns its keys 'm', 'M', 't' and 'c'; its
 * references live in the blob records' `refs` and the 'r' counters, and
 * change in the same batch as the message.
 */
#include <stdlib.h>
#include <string.h>

#include "chat_internal.h"

bool chat_blob_readable(struct store_contract *c, const char *uid,
                        const unsigned char digest[STORE_DIGEST_LEN])
{
    char prefix[CHAT_KEY_MAX], key[CHAT_KEY_MAX];
    struct store_iter *it;
    size_t plen;
    bool found = false;

    if (!chat_uid_valid(uid))
        return false;
    plen = chat_key_member_prefix(prefix, uid);
    it = store_iter_new(c, prefix, plen);
    for (store_iter_seek_first(it); store_iter_valid(it) && !found;
         store_iter_next(it)) {
        size_t klen;
        const char *k = store_iter_key(it, &klen);

        if (klen != plen + CHAT_ID_LEN)
            continue;
        found = store_exists(c, key, chat_key_right(key, digest, k + plen));
    }
    store_iter_free(it);
    return found;
}

static int filename_check(const char *name, struct blobd_error *err)
{
    size_t n = strlen(name);

    if (n == 0 || n > CHAT_FILENAME_MAX || !chat_utf8_valid(name, n))
        return blobd_fail(err, BLOBD_EINVAL,
                          "invalid attachment filename: must be 1 to %d "
                          "bytes of UTF-8", CHAT_FILENAME_MAX);
    if (!strcmp(name, ".") || !strcmp(name, ".."))
        return blobd_fail(err, BLOBD_EINVAL,
                          "invalid attachment filename: %s", name);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch < 0x20 || ch == 0x7f || ch == '/' || ch == '\\')
            return blobd_fail(err, BLOBD_EINVAL,
                              "invalid attachment filename: contains a "
                              "control character, '/' or '\\'");
    }
    return BLOBD_OK;
}

static int post_check(const struct chat_post *p, struct blobd_error *err)
{
    int rc;

    if (!chat_uid_valid(p->sender) || !chat_id_valid(p->gid))
        return blobd_fail(err, BLOBD_ENOTFOUND, "conversation not found");
    if (p->text_len > p->max_text_bytes)
        return blobd_fail(err, BLOBD_ETOOLARGE,
                          "text of %zu bytes exceeds the maximum of %llu",
                          p->text_len,
                          (unsigned long long)p->max_text_bytes);
    if (!chat_utf8_valid(p->text, p->text_len))
        return blobd_fail(err, BLOBD_EINVAL,
                          "invalid text: not UTF-8 or contains NUL");
    if (p->text_len == 0 && p->nattachments == 0)
        return blobd_fail(err, BLOBD_EINVAL,
                          "invalid message: needs text or an attachment");
    if (p->nattachments > CHAT_ATTACHMENTS_MAX)
        return blobd_fail(err, BLOBD_EINVAL,
                          "invalid attachments: more than %d",
                          CHAT_ATTACHMENTS_MAX);
    for (size_t i = 0; i < p->nattachments; i++) {
        if (!p->attachments[i].filename)
            continue;
        rc = filename_check(p->attachments[i].filename, err);
        if (rc != BLOBD_OK)
            return rc;
    }
    return BLOBD_OK;
}

/* Fill size and media type of each attachment from its blob record, after
 * checking that the sender may download it. Needs the lock held, so that
 * the blob cannot be swept before the batch commits. */
static int attachments_resolve(struct store_contract *c, const char *uid,
                               struct chat_message *m,
                               struct blobd_error *err)
{
    char hex[2 * STORE_DIGEST_LEN + 1];

    for (size_t i = 0; i < m->nattachments; i++) {
        struct chat_attachment *a = &m->attachments[i];
        struct store_blob blob;
        int rc = store_blob_get(c, a->blob, &blob, err);

        if (rc != BLOBD_OK && rc != BLOBD_ENOTFOUND)
            return rc;
        if (rc == BLOBD_ENOTFOUND ||
            (!store_blob_uploaded_by(c, a->blob, uid) &&
             !chat_blob_readable(c, uid, a->blob))) {
            store_digest_hex(a->blob, hex);
            return blobd_fail(err, BLOBD_ENOTFOUND, "blob %s not found", hex);
        }
        a->size = blob.size;
        memcpy(a->media_type, blob.media_type, sizeof(a->media_type));
        a->media_type[sizeof(a->media_type) - 1] = '\0';
    }
    return BLOBD_OK;
}

/* The sent_at of the newest message: sent_at never goes backwards, even
 * when the clock does, so that the time index follows the seq order. */
static int64_t last_sent_ms(struct store_contract *c)
{
    struct store_iter *it = store_iter_new(c, "t", 1);
    int64_t ms = 0;
    size_t klen;
    const char *k;

    store_iter_seek_last(it);
    if (store_iter_valid(it)) {
        k = store_iter_key(it, &klen);
        if (klen == 17)
            ms = (int64_t)store_be64_get((const unsigned char *)k + 1);
    }
    store_iter_free(it);
    return ms;
}

/* Add message `m` (seq and sent_at set) to the batch. */
static void message_put(struct store_batch *b, const struct chat_message *m)
{
    char key[CHAT_KEY_MAX];
    unsigned char seqv[8];
    size_t vlen;
    char *val = chat_message_encode(m, &vlen);

    store_batch_put(b, key, chat_key_message(key, m->seq), val, vlen);
    free(val);
    store_be64_put(seqv, m->seq);
    store_batch_put(b, key, chat_key_mid(key, m->id), seqv, sizeof(seqv));
    store_batch_put(b, key, chat_key_time(key, m->sent_at_ms, m->seq), "", 0);
    store_batch_put(b, key, chat_key_conv(key, m->conversation, m->seq),
                    "", 0);
    store_batch_count_messages(b, 1);
}

static void message_build(const struct chat_post *p, struct chat_message *m)
{
    memset(m, 0, sizeof(*m));
    memcpy(m->conversation, p->gid, CHAT_ID_LEN);
    memcpy(m->sender, p->sender, strlen(p->sender) + 1);
    m->text = chat_xstrndup(p->text ? p->text : "", p->text_len);
    m->text_len = p->text_len;
    m->attachments = chat_xcalloc(p->nattachments + 1,
                                  sizeof(*m->attachments));
    m->nattachments = p->nattachments;
    for (size_t i = 0; i < p->nattachments; i++) {
        memcpy(m->attachments[i].blob, p->attachments[i].blob,
               STORE_DIGEST_LEN);
        if (p->attachments[i].filename)
            m->attachments[i].filename =
                chat_xstrdup(p->attachments[i].filename);
    }
}

int chat_message_post(struct store_contract *c, const struct chat_post *p,
                      struct chat_message *out, struct blobd_error *err)
{
    struct chat_message m;
    struct chat_refdelta d;
    struct store_batch *b = NULL;
    char key[CHAT_KEY_MAX];
    int64_t now = store_now_ms(), last;
    int rc;

    rc = post_check(p, err);
    if (rc != BLOBD_OK)
        return rc;
    message_build(p, &m);
    chat_refdelta_init(&d);

    store_contract_lock(c);
    if (!chat_is_member(c, p->sender, p->gid))
        rc = blobd_fail(err, BLOBD_ENOTFOUND, "conversation not found");
    if (rc == BLOBD_OK)
        rc = attachments_resolve(c, p->sender, &m, err);
    do {
        if (rc == BLOBD_OK)
            rc = chat_id_random(m.id, err);
    } while (rc == BLOBD_OK && store_exists(c, key, chat_key_mid(key, m.id)));
    if (rc == BLOBD_OK) {
        b = store_batch_new(c);
        chat_refdelta_message(&d, &m, 1);
        rc = chat_refdelta_apply(&d, c, b, err);
    }
    if (rc == BLOBD_OK) {
        last = last_sent_ms(c);
        m.sent_at_ms = now > last ? now : last;
        m.seq = store_batch_next_seq(b);
        message_put(b, &m);
        rc = store_batch_commit(b, err);
    }
    store_contract_unlock(c);

    store_batch_free(b);
    chat_refdelta_free(&d);
    if (rc == BLOBD_OK && out)
        *out = m;
    else
        chat_message_clear(&m);
    return rc;
}

void chat_message_delete_in_batch(struct store_batch *b,
                                  const struct chat_message *m, bool event,
                                  struct chat_refdelta *d)
{
    char key[CHAT_KEY_MAX];
    unsigned char val[CHAT_DELETION_LEN];

    store_batch_delete(b, key, chat_key_message(key, m->seq));
    store_batch_delete(b, key, chat_key_mid(key, m->id));
    store_batch_delete(b, key, chat_key_time(key, m->sent_at_ms, m->seq));
    store_batch_delete(b, key, chat_key_conv(key, m->conversation, m->seq));
    store_batch_count_messages(b, -1);
    chat_refdelta_message(d, m, -1);
    if (!event)
        return;
    memcpy(val, m->id, CHAT_ID_LEN);
    memcpy(val + CHAT_ID_LEN, m->conversation, CHAT_ID_LEN);
    store_be64_put(val + 2 * CHAT_ID_LEN, (uint64_t)m->sent_at_ms);
    store_batch_put(b, key, chat_key_deletion(key, store_batch_next_seq(b)),
                    val, sizeof(val));
}

int chat_message_delete(struct store_contract *c, const char *mid,
                        const char *uid, bool admin,
                        struct blobd_error *err)
{
    struct chat_message m = { .text = NULL };
    struct chat_refdelta d;
    struct store_batch *b = NULL;
    uint64_t seq = 0;
    int rc;

    chat_refdelta_init(&d);
    store_contract_lock(c);
    rc = chat_mid_seq(c, mid, &seq, err);
    if (rc == BLOBD_OK)
        rc = chat_message_load(c, seq, &m, err);
    /* An admin may delete any message of the contract; others see only
     * their groups (404 elsewhere) and delete only their own (403). */
    if (rc == BLOBD_OK && !admin) {
        if (!chat_is_member(c, uid, m.conversation))
            rc = blobd_fail(err, BLOBD_ENOTFOUND, "message not found");
        else if (strcmp(m.sender, uid) != 0)
            rc = blobd_fail(err, BLOBD_EFORBIDDEN,
                            "only the sender or a contract admin may "
                            "delete a message");
    }
    if (rc == BLOBD_OK) {
        b = store_batch_new(c);
        chat_message_delete_in_batch(b, &m, true, &d);
        rc = chat_refdelta_apply(&d, c, b, err);
    }
    if (rc == BLOBD_OK)
        rc = store_batch_commit(b, err);
    store_contract_unlock(c);

    store_batch_free(b);
    chat_refdelta_free(&d);
    chat_message_clear(&m);
    return rc;
}

void chat_page_clear(struct chat_page *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nmessages; i++)
        chat_message_clear(&p->messages[i]);
    free(p->messages);
    memset(p, 0, sizeof(*p));
}

int chat_history(struct store_contract *c, const char *gid, const char *uid,
                 uint64_t before, size_t limit, struct chat_page *out,
                 struct blobd_error *err)
{
    char prefix[CHAT_KEY_MAX], key[CHAT_KEY_MAX];
    struct store_iter *it;
    int rc = BLOBD_OK;

    memset(out, 0, sizeof(*out));
    if (!chat_is_member(c, uid, gid))
        return blobd_fail(err, BLOBD_ENOTFOUND, "conversation not found");
    if (limit == 0)
        limit = 1;
    if (limit > CHAT_PAGE_MAX)
        limit = CHAT_PAGE_MAX;
    out->messages = chat_xcalloc(limit, sizeof(*out->messages));

    it = store_iter_new(c, prefix, chat_key_conv(prefix, gid, 0) - 8);
    store_iter_seek_before(it, key, chat_key_conv(key, gid, before));
    for (; store_iter_valid(it) && out->nmessages < limit;
         store_iter_prev(it)) {
        size_t klen;
        const char *k = store_iter_key(it, &klen);

        if (klen != 1 + CHAT_ID_LEN + 8)
            continue;
        rc = chat_message_load(c, store_be64_get((const unsigned char *)k +
                                                1 + CHAT_ID_LEN),
                               &out->messages[out->nmessages], err);
        if (rc == BLOBD_ENOTFOUND) {
            rc = BLOBD_OK;      /* deleted since the iterator was made */
            continue;
        }
        if (rc != BLOBD_OK)
            break;
        out->nmessages++;
    }
    out->more = rc == BLOBD_OK && store_iter_valid(it);
    store_iter_free(it);
    if (rc != BLOBD_OK)
        chat_page_clear(out);
    return rc;
}

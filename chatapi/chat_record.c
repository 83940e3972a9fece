/*
 * Stored records of chatapi: group and message records as compact JSON,
 * and the reference deltas that posting, deleting and purging apply to
 * blob records and 'r' counters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "chat_internal.h"

static char *json_take(json_t *j, size_t *len)
{
    char *s = json_dumps(j, JSON_COMPACT);

    json_decref(j);
    if (!s) {
        /* json_dumps fails only when memory runs out. */
        fputs("chatapi: out of memory\n", stderr);
        abort();
    }
    *len = strlen(s);
    return s;
}

char *chat_group_encode(const struct chat_group *g, bool deleted,
                        size_t *len)
{
    json_t *j = json_object();
    json_t *members = json_array();

    for (size_t i = 0; i < g->nmembers; i++)
        json_array_append_new(members, json_string(g->members[i]));
    json_object_set_new(j, "name", json_string(g->name));
    json_object_set_new(j, "members", members);
    if (deleted)
        json_object_set_new(j, "deleted", json_true());
    return json_take(j, len);
}

static int group_decode(const char *val, size_t vlen, const char *gid,
                        struct chat_group_rec *out, struct blobd_error *err)
{
    json_t *j = json_loadb(val, vlen, 0, NULL);
    json_t *name = json_object_get(j, "name");
    json_t *members = json_object_get(j, "members");
    size_t i;
    json_t *m;

    memset(out, 0, sizeof(*out));
    if (!json_is_string(name) || !json_is_array(members)) {
        json_decref(j);
        return blobd_fail(err, BLOBD_EIO, "corrupt record of group %s", gid);
    }
    memcpy(out->g.id, gid, CHAT_ID_LEN);
    out->g.name = chat_xstrdup(json_string_value(name));
    out->g.members = chat_xcalloc(json_array_size(members) + 1,
                                  sizeof(char *));
    json_array_foreach(members, i, m) {
        if (json_is_string(m))
            out->g.members[out->g.nmembers++] =
                chat_xstrdup(json_string_value(m));
    }
    out->deleted = json_is_true(json_object_get(j, "deleted"));
    json_decref(j);
    return BLOBD_OK;
}

int chat_group_load(struct store_contract *c, const char *gid,
                    struct chat_group_rec *out, struct blobd_error *err)
{
    char key[CHAT_KEY_MAX];
    char *val = NULL;
    size_t vlen = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!chat_id_valid(gid))
        return blobd_fail(err, BLOBD_ENOTFOUND, "conversation not found");
    rc = store_get(c, key, chat_key_group(key, gid), &val, &vlen, err);
    if (rc == BLOBD_ENOTFOUND)
        return blobd_fail(err, BLOBD_ENOTFOUND, "conversation not found");
    if (rc != BLOBD_OK)
        return rc;
    rc = group_decode(val, vlen, gid, out, err);
    free(val);
    return rc;
}

char *chat_message_encode(const struct chat_message *m, size_t *len)
{
    json_t *j = json_object();
    json_t *atts = json_array();
    char hex[2 * STORE_DIGEST_LEN + 1];

    for (size_t i = 0; i < m->nattachments; i++) {
        const struct chat_attachment *a = &m->attachments[i];
        json_t *o = json_object();

        store_digest_hex(a->blob, hex);
        json_object_set_new(o, "blob", json_string(hex));
        json_object_set_new(o, "filename", a->filename ?
                            json_string(a->filename) : json_null());
        json_object_set_new(o, "size", json_integer((json_int_t)a->size));
        json_object_set_new(o, "media_type", json_string(a->media_type));
        json_array_append_new(atts, o);
    }
    json_object_set_new(j, "id", json_string(m->id));
    json_object_set_new(j, "conversation", json_string(m->conversation));
    json_object_set_new(j, "sender", json_string(m->sender));
    json_object_set_new(j, "sent_at_ms", json_integer(m->sent_at_ms));
    json_object_set_new(j, "text", json_stringn(m->text, m->text_len));
    json_object_set_new(j, "attachments", atts);
    return json_take(j, len);
}

/* Copy a JSON string into a fixed buffer; false when absent or too long. */
static bool copy_string(json_t *j, const char *name, char *dst, size_t size)
{
    json_t *s = json_object_get(j, name);

    if (!json_is_string(s) || json_string_length(s) >= size)
        return false;
    memcpy(dst, json_string_value(s), json_string_length(s) + 1);
    return true;
}

static bool attachment_decode(json_t *o, struct chat_attachment *a)
{
    json_t *blob = json_object_get(o, "blob");
    json_t *name = json_object_get(o, "filename");
    json_t *size = json_object_get(o, "size");

    if (!json_is_string(blob) || !json_is_integer(size) ||
        !store_digest_parse(json_string_value(blob), a->blob) ||
        !copy_string(o, "media_type", a->media_type,
                     sizeof(a->media_type)))
        return false;
    a->size = (uint64_t)json_integer_value(size);
    if (json_is_string(name))
        a->filename = chat_xstrdup(json_string_value(name));
    return true;
}

int chat_message_decode(const char *val, size_t vlen, uint64_t seq,
                        struct chat_message *out, struct blobd_error *err)
{
    json_t *j = json_loadb(val, vlen, 0, NULL);
    json_t *text = json_object_get(j, "text");
    json_t *sent = json_object_get(j, "sent_at_ms");
    json_t *atts = json_object_get(j, "attachments");
    bool ok;

    memset(out, 0, sizeof(*out));
    out->seq = seq;
    ok = copy_string(j, "id", out->id, sizeof(out->id)) &&
         copy_string(j, "conversation", out->conversation,
                     sizeof(out->conversation)) &&
         copy_string(j, "sender", out->sender, sizeof(out->sender)) &&
         json_is_string(text) && json_is_integer(sent) &&
         json_is_array(atts);
    if (ok) {
        out->sent_at_ms = json_integer_value(sent);
        out->text_len = json_string_length(text);
        out->text = chat_xstrndup(json_string_value(text), out->text_len);
        out->attachments = chat_xcalloc(json_array_size(atts) + 1,
                                        sizeof(*out->attachments));
        for (size_t i = 0; ok && i < json_array_size(atts); i++) {
            ok = attachment_decode(json_array_get(atts, i),
                                   &out->attachments[i]);
            out->nattachments = i + 1;
        }
    }
    json_decref(j);
    if (!ok) {
        chat_message_clear(out);
        return blobd_fail(err, BLOBD_EIO, "corrupt record of message %llu",
                          (unsigned long long)seq);
    }
    return BLOBD_OK;
}

int chat_message_load(struct store_contract *c, uint64_t seq,
                      struct chat_message *out, struct blobd_error *err)
{
    char key[CHAT_KEY_MAX];
    char *val = NULL;
    size_t vlen = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = store_get(c, key, chat_key_message(key, seq), &val, &vlen, err);
    if (rc == BLOBD_ENOTFOUND)
        return blobd_fail(err, BLOBD_ENOTFOUND, "message not found");
    if (rc != BLOBD_OK)
        return rc;
    rc = chat_message_decode(val, vlen, seq, out, err);
    free(val);
    return rc;
}

int chat_mid_seq(struct store_contract *c, const char *mid, uint64_t *seq,
                 struct blobd_error *err)
{
    char key[CHAT_KEY_MAX];
    char *val = NULL;
    size_t vlen = 0;
    int rc;

    if (!chat_id_valid(mid))
        return blobd_fail(err, BLOBD_ENOTFOUND, "message not found");
    rc = store_get(c, key, chat_key_mid(key, mid), &val, &vlen, err);
    if (rc == BLOBD_ENOTFOUND)
        return blobd_fail(err, BLOBD_ENOTFOUND, "message not found");
    if (rc == BLOBD_OK && vlen != 8)
        rc = blobd_fail(err, BLOBD_EIO, "corrupt index entry of message %s",
                        mid);
    if (rc == BLOBD_OK)
        *seq = store_be64_get((const unsigned char *)val);
    free(val);
    return rc;
}

void chat_message_clear(struct chat_message *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nattachments; i++)
        free(m->attachments[i].filename);
    free(m->attachments);
    free(m->text);
    memset(m, 0, sizeof(*m));
}

void chat_refdelta_init(struct chat_refdelta *d)
{
    d->blobs = chat_keymap_new(STORE_DIGEST_LEN);
    d->rights = chat_keymap_new(STORE_DIGEST_LEN + CHAT_ID_LEN);
}

void chat_refdelta_free(struct chat_refdelta *d)
{
    chat_keymap_free(d->blobs);
    chat_keymap_free(d->rights);
    d->blobs = NULL;
    d->rights = NULL;
}

void chat_refdelta_message(struct chat_refdelta *d,
                           const struct chat_message *m, int sign)
{
    unsigned char rkey[STORE_DIGEST_LEN + CHAT_ID_LEN];

    for (size_t i = 0; i < m->nattachments; i++) {
        const unsigned char *dg = m->attachments[i].blob;
        bool seen = false;

        /* A blob attached twice to one message is one reference. */
        for (size_t k = 0; k < i && !seen; k++)
            seen = !memcmp(m->attachments[k].blob, dg, STORE_DIGEST_LEN);
        if (seen)
            continue;
        memcpy(rkey, dg, STORE_DIGEST_LEN);
        memcpy(rkey + STORE_DIGEST_LEN, m->conversation, CHAT_ID_LEN);
        chat_keymap_add(d->blobs, dg, sign);
        chat_keymap_add(d->rights, rkey, sign);
    }
}

static int apply_blob(struct store_contract *c, struct store_batch *b,
                      const unsigned char *digest, int64_t delta,
                      struct blobd_error *err)
{
    struct store_blob old, blob;
    char hex[2 * STORE_DIGEST_LEN + 1];
    int rc;

    rc = store_blob_get(c, digest, &old, err);
    if (rc == BLOBD_ENOTFOUND && delta < 0)
        return BLOBD_OK;    /* dropping a reference to a lost blob */
    if (rc == BLOBD_ENOTFOUND) {
        store_digest_hex(digest, hex);
        return blobd_fail(err, BLOBD_ENOTFOUND, "blob %s not found", hex);
    }
    if (rc != BLOBD_OK)
        return rc;
    blob = old;
    if (delta < 0 && (uint64_t)-delta > blob.refs)
        blob.refs = 0;      /* never below zero, even on a broken count */
    else
        blob.refs = (uint64_t)((int64_t)blob.refs + delta);
    store_batch_blob_put(b, &old, &blob);
    return BLOBD_OK;
}

static void apply_right(struct store_contract *c, struct store_batch *b,
                        const unsigned char *rkey, int64_t delta)
{
    char key[CHAT_KEY_MAX];
    unsigned char val[8];
    uint64_t n;
    size_t klen = chat_key_right(key, rkey, (const char *)rkey +
                                 STORE_DIGEST_LEN);

    n = chat_counter_get(c, key, klen);
    if (delta < 0 && (uint64_t)-delta >= n) {
        store_batch_delete(b, key, klen);
        return;
    }
    n = (uint64_t)((int64_t)n + delta);
    store_be64_put(val, n);
    store_batch_put(b, key, klen, val, sizeof(val));
}

int chat_refdelta_apply(struct chat_refdelta *d, struct store_contract *c,
                        struct store_batch *b, struct blobd_error *err)
{
    const unsigned char *key;
    int64_t delta;
    size_t pos = 0;
    int rc;

    while (chat_keymap_next(d->blobs, &pos, &key, &delta)) {
        if (delta == 0)
            continue;
        rc = apply_blob(c, b, key, delta, err);
        if (rc != BLOBD_OK)
            return rc;
    }
    pos = 0;
    while (chat_keymap_next(d->rights, &pos, &key, &delta)) {
        if (delta != 0)
            apply_right(c, b, key, delta);
    }
    return BLOBD_OK;
}

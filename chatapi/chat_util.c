/*
 * Small helpers of chatapi: allocation, big-endian integers, random ids,
 * the key layout (documented in chat.h) and the digest-keyed counter map.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "chat_internal.h"

void *chat_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p) {
        fputs("chatapi: out of memory\n", stderr);
        abort();
    }
    return p;
}

void *chat_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (!p) {
        fputs("chatapi: out of memory\n", stderr);
        abort();
    }
    return p;
}

void *chat_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (!q) {
        fputs("chatapi: out of memory\n", stderr);
        abort();
    }
    return q;
}

char *chat_xstrdup(const char *s)
{
    return chat_xstrndup(s, strlen(s));
}

char *chat_xstrndup(const char *s, size_t n)
{
    char *p = chat_xmalloc(n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

bool chat_id_valid(const char *id)
{
    size_t i;

    if (!id)
        return false;
    for (i = 0; id[i]; i++) {
        bool hex = (id[i] >= '0' && id[i] <= '9') ||
                   (id[i] >= 'a' && id[i] <= 'f');
        if (!hex || i >= CHAT_ID_LEN)
            return false;
    }
    return i == CHAT_ID_LEN;
}

bool chat_uid_valid(const char *uid)
{
    return uid && uid[0] && strnlen(uid, CHAT_UID_MAX + 1) <= CHAT_UID_MAX;
}

bool chat_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        unsigned char c0 = p[i];
        size_t len;
        uint32_t cp;

        if (c0 == 0)
            return false;
        if (c0 < 0x80) {
            i++;
            continue;
        }
        if (c0 >= 0xc2 && c0 <= 0xdf) {
            len = 2;
            cp = c0 & 0x1f;
        } else if (c0 >= 0xe0 && c0 <= 0xef) {
            len = 3;
            cp = c0 & 0x0f;
        } else if (c0 >= 0xf0 && c0 <= 0xf4) {
            len = 4;
            cp = c0 & 0x07;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        /* Reject overlong forms, surrogates and code points past U+10FFFF. */
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return false;
        i += len;
    }
    return true;
}

int chat_id_random(char id[CHAT_ID_LEN + 1], struct blobd_error *err)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[CHAT_ID_LEN / 2];

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return blobd_fail(err, BLOBD_EIO, "random source failed");
    for (size_t i = 0; i < sizeof(raw); i++) {
        id[2 * i] = hex[raw[i] >> 4];
        id[2 * i + 1] = hex[raw[i] & 0xf];
    }
    id[CHAT_ID_LEN] = '\0';
    return BLOBD_OK;
}

/* Keys: see the layout in chat.h. Ids are copied with their fixed size. */

size_t chat_key_group(char *k, const char *gid)
{
    k[0] = 'g';
    memcpy(k + 1, gid, CHAT_ID_LEN);
    return 1 + CHAT_ID_LEN;
}

size_t chat_key_member_prefix(char *k, const char *uid)
{
    size_t n = strlen(uid);

    k[0] = 'G';
    memcpy(k + 1, uid, n);
    k[1 + n] = '\0';
    return n + 2;
}

size_t chat_key_member(char *k, const char *uid, const char *gid)
{
    size_t n = chat_key_member_prefix(k, uid);

    memcpy(k + n, gid, CHAT_ID_LEN);
    return n + CHAT_ID_LEN;
}

size_t chat_key_user(char *k, const char *uid)
{
    size_t n = strlen(uid);

    k[0] = 'u';
    memcpy(k + 1, uid, n);
    return n + 1;
}

size_t chat_key_conv(char *k, const char *gid, uint64_t seq)
{
    k[0] = 'c';
    memcpy(k + 1, gid, CHAT_ID_LEN);
    store_be64_put((unsigned char *)k + 1 + CHAT_ID_LEN, seq);
    return 1 + CHAT_ID_LEN + 8;
}

size_t chat_key_message(char *k, uint64_t seq)
{
    k[0] = 'm';
    store_be64_put((unsigned char *)k + 1, seq);
    return 9;
}

size_t chat_key_mid(char *k, const char *mid)
{
    k[0] = 'M';
    memcpy(k + 1, mid, CHAT_ID_LEN);
    return 1 + CHAT_ID_LEN;
}

size_t chat_key_time(char *k, int64_t ms, uint64_t seq)
{
    k[0] = 't';
    store_be64_put((unsigned char *)k + 1, (uint64_t)ms);
    store_be64_put((unsigned char *)k + 9, seq);
    return 17;
}

size_t chat_key_deletion(char *k, uint64_t seq)
{
    k[0] = 'd';
    store_be64_put((unsigned char *)k + 1, seq);
    return 9;
}

size_t chat_key_right(char *k, const unsigned char *digest, const char *gid)
{
    k[0] = 'r';
    memcpy(k + 1, digest, STORE_DIGEST_LEN);
    memcpy(k + 1 + STORE_DIGEST_LEN, gid, CHAT_ID_LEN);
    return 1 + STORE_DIGEST_LEN + CHAT_ID_LEN;
}

size_t chat_key_pending(char *k, const char *gid)
{
    k[0] = 'P';
    k[1] = 'g';
    memcpy(k + 2, gid, CHAT_ID_LEN);
    return 2 + CHAT_ID_LEN;
}

uint64_t chat_counter_get(struct store_contract *c, const void *key,
                          size_t klen)
{
    char *val = NULL;
    size_t vlen = 0;
    uint64_t v = 0;

    if (store_get(c, key, klen, &val, &vlen, NULL) == BLOBD_OK && vlen == 8)
        v = store_be64_get((const unsigned char *)val);
    free(val);
    return v;
}

/* Open addressing with linear probing; the table is kept under 3/4 full. */
struct chat_keymap {
    size_t key_len;
    size_t cap;             /* power of two */
    size_t used;
    unsigned char *keys;    /* cap * key_len */
    int64_t *counts;
    bool *full;
};

struct chat_keymap *chat_keymap_new(size_t key_len)
{
    struct chat_keymap *m = chat_xcalloc(1, sizeof(*m));

    m->key_len = key_len;
    m->cap = 16;
    m->keys = chat_xcalloc(m->cap, key_len);
    m->counts = chat_xcalloc(m->cap, sizeof(*m->counts));
    m->full = chat_xcalloc(m->cap, sizeof(*m->full));
    return m;
}

void chat_keymap_free(struct chat_keymap *m)
{
    if (!m)
        return;
    free(m->keys);
    free(m->counts);
    free(m->full);
    free(m);
}

/* FNV-1a over the whole key. */
static size_t keymap_hash(const struct chat_keymap *m, const void *key)
{
    uint64_t h = 1469598103934665603ULL;
    const unsigned char *p = key;

    for (size_t i = 0; i < m->key_len; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return (size_t)h & (m->cap - 1);
}

static size_t keymap_slot(const struct chat_keymap *m, const void *key)
{
    size_t i = keymap_hash(m, key);

    while (m->full[i] && memcmp(m->keys + i * m->key_len, key, m->key_len))
        i = (i + 1) & (m->cap - 1);
    return i;
}

static void keymap_grow(struct chat_keymap *m)
{
    struct chat_keymap old = *m;

    m->cap *= 2;
    m->keys = chat_xcalloc(m->cap, m->key_len);
    m->counts = chat_xcalloc(m->cap, sizeof(*m->counts));
    m->full = chat_xcalloc(m->cap, sizeof(*m->full));
    for (size_t i = 0; i < old.cap; i++) {
        if (!old.full[i])
            continue;
        size_t j = keymap_slot(m, old.keys + i * m->key_len);
        memcpy(m->keys + j * m->key_len, old.keys + i * m->key_len,
               m->key_len);
        m->counts[j] = old.counts[i];
        m->full[j] = true;
    }
    free(old.keys);
    free(old.counts);
    free(old.full);
}

void chat_keymap_add(struct chat_keymap *m, const void *key, int64_t delta)
{
    size_t i;

    if ((m->used + 1) * 4 > m->cap * 3)
        keymap_grow(m);
    i = keymap_slot(m, key);
    if (!m->full[i]) {
        memcpy(m->keys + i * m->key_len, key, m->key_len);
        m->full[i] = true;
        m->used++;
    }
    m->counts[i] += delta;
}

int64_t chat_keymap_get(const struct chat_keymap *m, const void *key)
{
    size_t i = keymap_slot(m, key);

    return m->full[i] ? m->counts[i] : 0;
}

size_t chat_keymap_count(const struct chat_keymap *m)
{
    return m->used;
}

bool chat_keymap_next(const struct chat_keymap *m, size_t *pos,
                      const unsigned char **key, int64_t *count)
{
    while (*pos < m->cap) {
        size_t i = (*pos)++;
        if (m->full[i]) {
            *key = m->keys + i * m->key_len;
            *count = m->counts[i];
            return true;
        }
    }
    return false;
}

void chat_yield_lock(void)
{
    /* 1 ms per batch of 1000 messages: about 1 s for a million. */
    struct timespec pause = {0, 1000000L};

    nanosleep(&pause, NULL);
}

/*
 * Private helpers shared by the files of chatapi: key builders, the
 * stored records, a digest-keyed counter map and the reference counting
 * that posting, deleting and purging share. Nothing here is public.
 */
#ifndef CHATAPI_CHAT_INTERNAL_H
#define CHATAPI_CHAT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat.h"

/* Maximum key length: 'G' uid 0x00 gid. */
#define CHAT_KEY_MAX (2 + CHAT_UID_MAX + CHAT_ID_LEN)

/* True for a user id chatapi can key: 1..CHAT_UID_MAX bytes. */
bool chat_uid_valid(const char *uid);

/* Pause briefly between the batches of a long job (purge, group
 * deletion): the contract mutex is not fair, so without a pause the job
 * takes it back at once and other writers of the contract stall. */
void chat_yield_lock(void);

/* Aborting allocators for small fixed or already bounded sizes. */
void *chat_xmalloc(size_t n);
void *chat_xcalloc(size_t n, size_t size);
void *chat_xrealloc(void *p, size_t n);
char *chat_xstrdup(const char *s);
char *chat_xstrndup(const char *s, size_t n);

/* True when s[0..n) is well-formed UTF-8 without NUL bytes. */
bool chat_utf8_valid(const char *s, size_t n);

/* Fill `id` with CHAT_ID_LEN hex characters of fresh randomness. */
int chat_id_random(char id[CHAT_ID_LEN + 1], struct blobd_error *err);

/* Key builders; each returns the key length. */
size_t chat_key_group(char *k, const char *gid);
size_t chat_key_member(char *k, const char *uid, const char *gid);
size_t chat_key_member_prefix(char *k, const char *uid);
size_t chat_key_user(char *k, const char *uid);
size_t chat_key_conv(char *k, const char *gid, uint64_t seq);
size_t chat_key_message(char *k, uint64_t seq);
size_t chat_key_mid(char *k, const char *mid);
size_t chat_key_time(char *k, int64_t ms, uint64_t seq);
size_t chat_key_deletion(char *k, uint64_t seq);
size_t chat_key_right(char *k, const unsigned char *digest, const char *gid);
size_t chat_key_pending(char *k, const char *gid);
#define CHAT_KEY_PURGE "Pp"

/* Length of a 'd' value: mid, gid, sent_at_ms. */
#define CHAT_DELETION_LEN (2 * CHAT_ID_LEN + 8)

/* A group record as stored. */
struct chat_group_rec {
    struct chat_group g;
    bool deleted;
};

/* Read a group record. BLOBD_ENOTFOUND when absent (deleted ones are
 * returned with `deleted` set). */
int chat_group_load(struct store_contract *c, const char *gid,
                    struct chat_group_rec *out, struct blobd_error *err);
/* Serialize a group record; the caller frees the result. */
char *chat_group_encode(const struct chat_group *g, bool deleted,
                        size_t *len);

/* Message records: encode from a view, decode into one (seq from key). */
char *chat_message_encode(const struct chat_message *m, size_t *len);
int chat_message_decode(const char *val, size_t vlen, uint64_t seq,
                        struct chat_message *out, struct blobd_error *err);
/* Read message `seq`; BLOBD_ENOTFOUND when absent. */
int chat_message_load(struct store_contract *c, uint64_t seq,
                      struct chat_message *out, struct blobd_error *err);
/* Read the seq of message `mid`; BLOBD_ENOTFOUND when absent. */
int chat_mid_seq(struct store_contract *c, const char *mid, uint64_t *seq,
                 struct blobd_error *err);

/* Read an 8-byte big-endian counter; 0 when absent. */
uint64_t chat_counter_get(struct store_contract *c, const void *key,
                          size_t klen);

/*
 * A hash map from a fixed-size key (digest, or digest + gid) to a signed
 * count. Grows as needed; entries are visited in slot order.
 */
struct chat_keymap;
struct chat_keymap *chat_keymap_new(size_t key_len);
void chat_keymap_free(struct chat_keymap *m);
/* Add `delta` to the count of `key` (created at 0). */
void chat_keymap_add(struct chat_keymap *m, const void *key, int64_t delta);
/* The count of `key`, 0 when absent. */
int64_t chat_keymap_get(const struct chat_keymap *m, const void *key);
size_t chat_keymap_count(const struct chat_keymap *m);
/* Iterate: start with *pos = 0; false when done. */
bool chat_keymap_next(const struct chat_keymap *m, size_t *pos,
                      const unsigned char **key, int64_t *count);

/*
 * Reference changes of one batch: per blob (digest) the change of `refs`,
 * and per (digest, gid) the change of the 'r' counter. A message counts
 * each distinct digest once.
 */
struct chat_refdelta {
    struct chat_keymap *blobs;     /* key: digest */
    struct chat_keymap *rights;    /* key: digest + gid */
};
void chat_refdelta_init(struct chat_refdelta *d);
void chat_refdelta_free(struct chat_refdelta *d);
/* Add the references of message `m` with sign `sign` (+1 or -1). */
void chat_refdelta_message(struct chat_refdelta *d,
                           const struct chat_message *m, int sign);
/* Read the blobs and counters (with the lock held) and add the changed
 * records to the batch. BLOBD_ENOTFOUND when a blob record is missing. */
int chat_refdelta_apply(struct chat_refdelta *d, struct store_contract *c,
                        struct store_batch *b, struct blobd_error *err);

/*
 * Add the deletion of message `m` to batch `b`: its keys, a deletion
 * event under a new seq (when `event`), and its references into `d`.
 * Needs the contract lock held.
 */
void chat_message_delete_in_batch(struct store_batch *b,
                                  const struct chat_message *m, bool event,
                                  struct chat_refdelta *d);

/* Finish the deletion of tombstoned group `gid`, in batches. */
int chat_group_finish_delete(struct store_contract *c, const char *gid,
                             struct blobd_error *err);

#endif

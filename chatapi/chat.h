/*
 * chatapi: conversations (groups), messages that reference blobs, sync,
 * download rights derived from messages, purge and the sweep of
 * unreferenced blobs. It uses only the store's public header and has no
 * HTTP code.
 *
 * Keys in the contract database (one family byte first; seq and times are
 * 8-byte big-endian, gid and mid 16 lowercase hex characters):
 *
 *   'g' gid                 group record: JSON {"name", "members",
 *                           "deleted"}; a deleted group stays as a
 *                           tombstone that keeps its last members, so
 *                           their devices still get its deletion events
 *   'G' uid 0x00 gid        membership index, empty value
 *   'c' gid seq             messages of one conversation, empty value
 *   'm' seq                 message record: JSON {"id", "conversation",
 *                           "sender", "sent_at_ms", "text", "attachments"}
 *   'M' mid                 seq of the message
 *   't' sent_at_ms seq      time index for purge, empty value
 *   'd' seq                 deletion event: mid, gid, sent_at_ms
 *   'r' digest gid          number of messages of group gid that
 *                           reference the blob (download rights)
 *   'P' 'p'                 latest purge: before_ms, seq
 *   'P' 'g' gid             group deletion still in progress
 *
 * Every change is one store batch, committed with the contract lock held
 * after the facts it depends on were read again under that lock. Posting
 * and deleting a message change the message keys, the blobs' `refs` and
 * the 'r' counters in the same batch. A blob whose `refs` drops to 0 is
 * not deleted at once: chat_sweep() deletes it once its latest upload is
 * older than the grace period, chat_purge() once it is older than the
 * purge date. The 'r' counters drop at once, so download rights end with
 * the last message of the user's groups that referenced the blob.
 *
 * Limits: the CHAT_*_MAX constants below. Purge and group deletion commit
 * in batches of CHAT_BATCH messages and unlock between batches; each batch
 * is consistent and running the operation again completes it.
 */
#ifndef CHATAPI_CHAT_H
#define CHATAPI_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "store.h"

#define CHAT_ID_LEN 16              /* gid and mid: 16 lowercase hex */
#define CHAT_UID_MAX 47             /* bytes of a user id */
#define CHAT_NAME_MAX 256           /* bytes of a group name */
#define CHAT_MEMBERS_MAX 10000      /* members of one group */
#define CHAT_FILENAME_MAX 255       /* bytes of an attachment file name */
#define CHAT_ATTACHMENTS_MAX 64     /* attachments of one message */
#define CHAT_PAGE_MAX 1000          /* messages of one history or sync page */
#define CHAT_BATCH 1000             /* messages per purge or delete batch */

struct chat_group {
    char id[CHAT_ID_LEN + 1];
    char *name;                 /* malloc'd */
    char **members;             /* malloc'd array of malloc'd uids */
    size_t nmembers;
};

struct chat_attachment {
    unsigned char blob[STORE_DIGEST_LEN];
    char *filename;             /* malloc'd; NULL when none was given */
    uint64_t size;
    char media_type[STORE_MEDIA_TYPE_MAX];
};

struct chat_message {
    char id[CHAT_ID_LEN + 1];
    uint64_t seq;
    char conversation[CHAT_ID_LEN + 1];
    char sender[CHAT_UID_MAX + 1];
    int64_t sent_at_ms;
    char *text;                 /* malloc'd, NUL-terminated */
    size_t text_len;
    struct chat_attachment *attachments;
    size_t nattachments;
};

/* An attachment as a poster names it. */
struct chat_attachment_ref {
    unsigned char blob[STORE_DIGEST_LEN];
    const char *filename;       /* NULL for none */
};

struct chat_post {
    const char *gid;
    const char *sender;         /* user id */
    const char *text;           /* UTF-8, may be empty */
    size_t text_len;
    const struct chat_attachment_ref *attachments;
    size_t nattachments;
    uint64_t max_text_bytes;
};

/* One page of messages; the caller frees it with chat_page_clear(). */
struct chat_page {
    struct chat_message *messages;
    size_t nmessages;
    bool more;                  /* history: older messages exist */
};

struct chat_sync {
    struct chat_page page;              /* oldest first */
    char (*deleted)[CHAT_ID_LEN + 1];   /* malloc'd mids */
    size_t ndeleted;
    bool purged;                        /* purged_before_ms is set */
    int64_t purged_before_ms;
    bool changed;       /* messages, deletions or a purge after `since` */
    uint64_t next_since;
    uint64_t seen_seq;  /* contract seq the answer was computed at */
};

struct chat_purge_result {
    uint64_t messages_deleted;
    uint64_t blobs_deleted;
    uint64_t bytes_freed;
};

/* True for a well-formed gid or mid: CHAT_ID_LEN lowercase hex. */
bool chat_id_valid(const char *id);

/*
 * Groups. Member lists are deduplicated; every member must be a user of
 * the contract (BLOBD_EINVAL naming the first unknown one). The name is 1
 * to CHAT_NAME_MAX bytes without control characters. BLOBD_ENOTFOUND for
 * an unknown or deleted gid. `out` (may be NULL) is filled on success and
 * freed with chat_group_clear().
 */
int chat_group_create(struct store_contract *c, const char *name,
                      const char *const *members, size_t nmembers,
                      struct chat_group *out, struct blobd_error *err);
int chat_group_set_members(struct store_contract *c, const char *gid,
                           const char *const *members, size_t nmembers,
                           struct chat_group *out, struct blobd_error *err);
int chat_group_get(struct store_contract *c, const char *gid,
                   struct chat_group *out, struct blobd_error *err);
/*
 * Delete a group: its members lose it and its attachments at once (first
 * batch), then its messages are deleted in batches as chat_message_delete
 * does, each with a deletion event. A crash in between leaves a pending
 * deletion that chat_sweep() completes.
 */
int chat_group_delete(struct store_contract *c, const char *gid,
                      struct blobd_error *err);
/* The groups of user `uid`, or every live group of the contract when uid
 * is NULL, sorted by id. Free with chat_groups_free(). */
int chat_groups_list(struct store_contract *c, const char *uid,
                     struct chat_group **out, size_t *n,
                     struct blobd_error *err);
void chat_group_clear(struct chat_group *g);
void chat_groups_free(struct chat_group *groups, size_t n);

/* True when `uid` is a member of live group `gid`. */
bool chat_is_member(struct store_contract *c, const char *uid,
                    const char *gid);

/*
 * Post a message. BLOBD_ENOTFOUND when the sender is not a member of the
 * group or an attachment names a blob that the sender may not download;
 * BLOBD_ETOOLARGE for text above max_text_bytes; BLOBD_EINVAL for an
 * empty message, a bad file name or too many attachments. sent_at is the
 * server time, never earlier than the previous message's.
 */
int chat_message_post(struct store_contract *c, const struct chat_post *p,
                      struct chat_message *out, struct blobd_error *err);
/*
 * Delete message `mid` as user `uid`. A contract admin may delete any
 * message; another user only their own in a group they belong to.
 * BLOBD_ENOTFOUND when the message does not exist or is in a group the
 * (non-admin) caller is not in; BLOBD_EFORBIDDEN for someone else's.
 */
int chat_message_delete(struct store_contract *c, const char *mid,
                        const char *uid, bool admin,
                        struct blobd_error *err);
void chat_message_clear(struct chat_message *m);

/* Messages of group `gid` with seq < before, newest first, at most
 * `limit` (1..CHAT_PAGE_MAX). BLOBD_ENOTFOUND for a non-member. */
int chat_history(struct store_contract *c, const char *gid, const char *uid,
                 uint64_t before, size_t limit, struct chat_page *out,
                 struct blobd_error *err);
void chat_page_clear(struct chat_page *p);

/*
 * Messages and deletion events of the caller's conversations after
 * `since`, oldest first. Messages and deletions together count against
 * `limit`; next_since is the highest seq the answer covers: its last
 * message or deletion, or the purge it reports, and `since` when none.
 * Deletions are those of the caller's groups, including deleted groups
 * the caller was a member of when they were deleted.
 */
int chat_sync(struct store_contract *c, const char *uid, uint64_t since,
              size_t limit, struct chat_sync *out, struct blobd_error *err);
void chat_sync_clear(struct chat_sync *s);

/* True when a message in one of uid's groups references the blob. */
bool chat_blob_readable(struct store_contract *c, const char *uid,
                        const unsigned char digest[STORE_DIGEST_LEN]);

/*
 * Delete every message sent before `before_ms`, then every blob without
 * references whose latest upload is before `before_ms`, and record the
 * purge (it takes a seq). With `dry_run` nothing changes and the same
 * figures are returned.
 */
int chat_purge(struct store_contract *c, int64_t before_ms, bool dry_run,
               struct chat_purge_result *out, struct blobd_error *err);

/*
 * Periodic work of one contract: complete interrupted group deletions,
 * then delete blobs without references whose latest upload is older than
 * now_ms - grace_s. Adds to *blobs and *bytes.
 */
int chat_sweep(struct store_contract *c, int64_t now_ms, uint64_t grace_s,
               uint64_t *blobs, uint64_t *bytes, struct blobd_error *err);

/*
 * Consistency check of the chat families, for `blobd check`. Calls
 * `report` once per problem with a one-line description and returns the
 * number of problems. Counts how many messages reference each blob into
 * *refs (free with chat_refs_free()); chat_refs_expected() then returns
 * the count for a digest, 0 when none.
 */
struct chat_refs;
typedef void (*chat_report_fn)(void *arg, const char *problem);
unsigned chat_check(struct store_contract *c, chat_report_fn report,
                    void *arg, struct chat_refs **refs);
uint64_t chat_refs_expected(const struct chat_refs *refs,
                            const unsigned char digest[STORE_DIGEST_LEN]);
void chat_refs_free(struct chat_refs *refs);

#endif

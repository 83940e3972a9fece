/*
 * The store: the contract registry, one RocksDB database and one blob
 * directory per contract, and the durable commit of uploaded blobs.
 *
 * Layout under the data directory:
 *
 *   system/                       registry RocksDB: contracts and a copy
 *                                 of their usage figures
 *   contracts/<cid>/db/           the contract's RocksDB, source of truth
 *   contracts/<cid>/blobs/ab/cd/<sha256-hex>   stored bytes, immutable
 *   contracts/<cid>/tmp/          uploads in progress
 *
 * Invariants, after any crash and the start-up recovery that follows it:
 *
 *   1. every blob record has its file, with the recorded size and digest;
 *   2. every file under blobs/ has a record;
 *   3. used_bytes is the sum of the sizes of the contract's blob records,
 *      blob_count their number;
 *   4. a blob's `refs` is the number of messages that reference it.
 *
 * A record is written only after its file is durable (fsync of the file,
 * rename, fsync of the directory), in one synchronous write batch with the
 * new counters. A file is unlinked only after the batch that removed its
 * record has committed. Start-up removes temporary files and files that
 * have no record.
 *
 * Keys of a contract database start with one byte that names the family.
 * The store owns 'b' (blob records), 'a' and 'A' (uploader index, both
 * directions), 'z' (unreferenced blobs by last upload) and 'Z' (counters).
 * Accounts own 'u', 'n' and 's'; chatapi owns 'g', 'G', 'm', 'M', 't',
 * 'd', 'r', 'c' (messages by conversation) and 'P' (purge marker and
 * group deletions in progress). No other module writes into a family it
 * does not own.
 *
 * Concurrency: each open contract has one mutex. Every write batch is
 * committed with that mutex held, so counters and quota decisions never
 * race. Reads (store_get, iterators) need no lock.
 *
 * Limits: a contract id is at most STORE_CID_MAX bytes of [a-z0-9_-]; at
 * most `max_open_contracts` databases are open at once, idle ones are
 * closed first.
 */
#ifndef BLOBD_STORE_H
#define BLOBD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

#define STORE_CID_MAX 64
#define STORE_NAME_MAX 256
#define STORE_PLAN_MAX 64
#define STORE_MEDIA_TYPE_MAX 96
#define STORE_DIGEST_LEN 32
#define STORE_LICENCES_MAX 1000000

struct quota_plans;
struct store;
struct store_contract;
struct store_batch;
struct store_iter;

struct store_options {
    const char *data_dir;
    /* Borrowed, outlives the store. NULL only for offline checks: plans
     * are then not verified and quotas read as 0. */
    const struct quota_plans *plans;
    size_t max_open_contracts;         /* 0 gives 256 */
    size_t block_cache_bytes;          /* shared by all databases; 0 gives 64 MiB */
    size_t write_buffer_bytes;         /* per contract database; 0 gives 4 MiB */
    bool skip_recovery;                /* offline checks: change nothing */
    /* Free space kept on the data directory's file system for RocksDB's
     * own files (WAL, MANIFEST, flushes, compactions), because Debian's
     * RocksDB 7.8 aborts on an assertion when it writes again to its LOG
     * file after a write failed on a full disk. An upload, or a batch that
     * adds blobs or messages, that would go below it fails with
     * BLOBD_ENOSPC; other batches (deletions, purges, accounts) may use
     * the reserve. 0 turns the check off. */
    uint64_t min_free_bytes;
};

struct store_contract_info {
    char id[STORE_CID_MAX + 1];
    char name[STORE_NAME_MAX + 1];
    char plan[STORE_PLAN_MAX + 1];
    uint32_t licences;
    uint64_t quota_bytes;
    uint64_t used_bytes;
    uint64_t blob_count;
    uint64_t message_count;
};

struct store_blob {
    unsigned char digest[STORE_DIGEST_LEN];
    uint64_t size;
    char media_type[STORE_MEDIA_TYPE_MAX];
    uint32_t width;                 /* 0 unless an image */
    uint32_t height;
    uint64_t refs;                  /* messages that reference the blob */
    int64_t last_upload_ms;         /* Unix time of the latest upload */
    int64_t created_ms;
};

/*
 * Open the data directory (created when missing), run start-up recovery on
 * every contract and rebuild the registry's usage copy. Fails with
 * BLOBD_EINVAL when a contract names a plan that `plans` lacks.
 */
int store_open(struct store **out, const struct store_options *opts,
               struct blobd_error *err);
/* Close every database. No handle may be acquired any more. */
void store_close(struct store *st);

const char *store_data_dir(const struct store *st);

/* True when `id` is a valid contract id: 1..64 bytes of [a-z0-9_-]. */
bool store_cid_valid(const char *id);

/* Registry. BLOBD_ECONFLICT when the id exists, BLOBD_EINVAL on a bad
 * field, BLOBD_ENOTFOUND for an unknown contract. */
int store_contract_create(struct store *st, const char *id, const char *name,
                          const char *plan, uint32_t licences,
                          struct store_contract_info *out,
                          struct blobd_error *err);
int store_contract_get(struct store *st, const char *id,
                       struct store_contract_info *out,
                       struct blobd_error *err);
/* Change plan (NULL keeps it) and licences (0 keeps it). Fails with
 * BLOBD_EBELOWUSAGE, used and quota figures set, when the new quota would
 * be below used_bytes. */
int store_contract_update(struct store *st, const char *id, const char *plan,
                          uint32_t licences, struct store_contract_info *out,
                          struct blobd_error *err);
/* Call `fn` for every contract, sorted by id; a non-zero return stops. */
typedef int (*store_contract_fn)(const struct store_contract_info *info,
                                 void *arg);
int store_contract_foreach(struct store *st, store_contract_fn fn, void *arg,
                           struct blobd_error *err);

/*
 * Open (or find in the cache) the database of contract `id` and return a
 * counted reference. BLOBD_ENOTFOUND for an unknown or invalid id. Each
 * acquire needs one release.
 */
int store_contract_acquire(struct store *st, const char *id,
                           struct store_contract **out,
                           struct blobd_error *err);
void store_contract_release(struct store_contract *c);
/* Call `fn` with every contract acquired in turn. */
typedef void (*store_each_fn)(struct store_contract *c, void *arg);
void store_contract_each(struct store *st, store_each_fn fn, void *arg);

/*
 * Contracts marked for the periodic sweep. Every contract is marked at
 * start-up; a committed batch marks its contract when it leaves a blob
 * without references or calls store_batch_mark_sweep(). So a sweep pass
 * visits the contracts with work instead of opening every database.
 * Each marked contract is unmarked, acquired and passed to `fn`; a true
 * return marks it again.
 */
typedef bool (*store_sweep_fn)(struct store_contract *c, void *arg);
void store_contract_each_marked(struct store *st, store_sweep_fn fn,
                                void *arg);
/* Mark the batch's contract for the sweep when the batch commits. */
void store_batch_mark_sweep(struct store_batch *b);
/* True when the contract has blobs that no message references. */
bool store_blob_unreferenced_exist(struct store_contract *c);

const char *store_contract_id(const struct store_contract *c);
/* Current figures of an acquired contract (plan, quota, counters). */
void store_contract_info(struct store_contract *c,
                         struct store_contract_info *out);
/* The contract's write mutex; store_batch_commit() needs it held. */
void store_contract_lock(struct store_contract *c);
void store_contract_unlock(struct store_contract *c);

/* Read one key. BLOBD_ENOTFOUND when absent; *val is malloc'd (free()). */
int store_get(struct store_contract *c, const void *key, size_t klen,
              char **val, size_t *vlen, struct blobd_error *err);
/* Return whether the key exists, reading it as store_get does. */
bool store_exists(struct store_contract *c, const void *key, size_t klen);

/* Write batches: collected without the lock, committed with it. */
struct store_batch *store_batch_new(struct store_contract *c);
void store_batch_put(struct store_batch *b, const void *key, size_t klen,
                     const void *val, size_t vlen);
void store_batch_delete(struct store_batch *b, const void *key, size_t klen);
/* Take the next sequence number of the contract; it is persisted with the
 * batch. Needs the contract lock held from here until the commit. */
uint64_t store_batch_next_seq(struct store_batch *b);
/* Change message_count by `delta` when the batch commits. */
void store_batch_count_messages(struct store_batch *b, int64_t delta);
/* Write a blob record changed by chatapi (refs) or by an upload. `old` is
 * the record as read, NULL for a new blob; the unreferenced index follows. */
void store_batch_blob_put(struct store_batch *b, const struct store_blob *old,
                          const struct store_blob *blob);
/* Remove a blob record, its uploader entries and its index entry; its
 * bytes leave used_bytes and its file is unlinked after the commit. */
int store_batch_blob_delete(struct store_batch *b,
                            const struct store_blob *blob,
                            struct blobd_error *err);
/* Commit synchronously; the caller holds the contract lock. On failure
 * nothing of the batch is applied. */
int store_batch_commit(struct store_batch *b, struct blobd_error *err);
void store_batch_free(struct store_batch *b);

/* The last committed sequence number of the contract. */
uint64_t store_contract_seq(struct store_contract *c);

/* Iterators over the keys that start with `prefix`. */
struct store_iter *store_iter_new(struct store_contract *c,
                                  const void *prefix, size_t plen);
void store_iter_seek(struct store_iter *it, const void *key, size_t klen);
void store_iter_seek_first(struct store_iter *it);
void store_iter_seek_last(struct store_iter *it);
/* Position at the last key < `key` (for newest-first paging). */
void store_iter_seek_before(struct store_iter *it, const void *key,
                            size_t klen);
bool store_iter_valid(struct store_iter *it);
void store_iter_next(struct store_iter *it);
void store_iter_prev(struct store_iter *it);
const char *store_iter_key(struct store_iter *it, size_t *klen);
const char *store_iter_value(struct store_iter *it, size_t *vlen);
void store_iter_free(struct store_iter *it);

/* Blobs. */
int store_blob_get(struct store_contract *c,
                   const unsigned char digest[STORE_DIGEST_LEN],
                   struct store_blob *out, struct blobd_error *err);
/* Open the stored bytes read-only; the caller closes *fd. */
int store_blob_open(struct store_contract *c,
                    const unsigned char digest[STORE_DIGEST_LEN], int *fd,
                    struct blobd_error *err);
/* True when user `uid` uploaded the blob. */
bool store_blob_uploaded_by(struct store_contract *c,
                            const unsigned char digest[STORE_DIGEST_LEN],
                            const char *uid);
/* Delete up to `limit` blobs with no references whose latest upload is
 * before `before_ms`, in one batch; adds to the counts. With `dry_run`
 * nothing changes and all such blobs are counted. */
int store_blob_sweep(struct store_contract *c, int64_t before_ms,
                     size_t limit, bool dry_run, uint64_t *blobs,
                     uint64_t *bytes, struct blobd_error *err);

/* Create an empty temporary file in the contract's tmp/ directory. */
int store_tmp_create(struct store_contract *c, int *fd, char *path,
                     size_t path_size, struct blobd_error *err);
/* Allocate `size` bytes for the temporary file `fd`, so that writing it
 * cannot fill the disk. BLOBD_ENOSPC when the disk cannot hold them and
 * keep min_free_bytes free. */
int store_tmp_reserve(struct store_contract *c, int fd, uint64_t size,
                      struct blobd_error *err);

struct store_upload {
    const char *tmp_path;         /* file to store; consumed on success */
    int tmp_fd;                   /* open descriptor of tmp_path, for fsync */
    unsigned char digest[STORE_DIGEST_LEN];
    uint64_t size;
    const char *media_type;
    uint32_t width;
    uint32_t height;
    const char *uploader;         /* user id */
    int64_t now_ms;
};

/*
 * Make an uploaded file a blob of the contract. The file is fsynced, then
 * the contract lock is taken. When the digest exists, the file is dropped
 * without charge, last_upload_ms is refreshed and the uploader recorded.
 * Otherwise the quota is checked with the true size, the file is renamed
 * into place, the directory fsynced, and the record and counters are
 * committed in one synchronous batch. `*created` is true in that case.
 * Errors: BLOBD_EQUOTA with used, quota and needed figures, BLOBD_ENOSPC
 * on a full disk. The temporary file is removed on every path.
 */
int store_blob_commit(struct store_contract *c, const struct store_upload *up,
                      struct store_blob *out, bool *created,
                      struct blobd_error *err);

/* Hex helpers for digests. */
void store_digest_hex(const unsigned char digest[STORE_DIGEST_LEN],
                      char hex[2 * STORE_DIGEST_LEN + 1]);
bool store_digest_parse(const char *hex,
                        unsigned char digest[STORE_DIGEST_LEN]);

/* Big-endian 64-bit numbers, the key encoding that keeps RocksDB's byte
 * order equal to numeric order (sequence numbers, times). */
void store_be64_put(unsigned char *p, uint64_t v);
uint64_t store_be64_get(const unsigned char *p);

/* Milliseconds since the Unix epoch, from CLOCK_REALTIME. */
int64_t store_now_ms(void);

#endif

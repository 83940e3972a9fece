/*
 * Private to the store's files (store.c, store_blob.c, store_recover.c):
 * the structs behind the opaque handles of store.h.
 */
#ifndef BLOBD_STORE_INT_H
#define BLOBD_STORE_INT_H

#include <limits.h>
#include <pthread.h>

#include <rocksdb/c.h>

#include "store.h"

/* Longest data directory path; keeps every derived path within PATH_MAX. */
#define STORE_DATA_DIR_MAX 1024

struct store_contract {
    struct store *st;
    char id[STORE_CID_MAX + 1];
    char name[STORE_NAME_MAX + 1];
    char plan[STORE_PLAN_MAX + 1];
    uint32_t licences;
    char dir[STORE_DATA_DIR_MAX + 80];  /* <data>/contracts/<cid> */
    rocksdb_t *db;
    pthread_mutex_t lock;            /* the write lock of store.h */
    /* Counters as committed; changed only with `lock` held. */
    uint64_t used_bytes;
    uint64_t blob_count;
    uint64_t message_count;
    uint64_t seq;
    bool sweep_marked;               /* listed in st->marked; under st->mu */
    /* Cache bookkeeping, under st->mu. */
    int refs;
    struct store_contract *prev, *next;
};

struct store {
    char data_dir[STORE_DATA_DIR_MAX];
    const struct quota_plans *plans;
    rocksdb_t *sysdb;
    rocksdb_cache_t *cache;
    rocksdb_block_based_table_options_t *bbo;
    rocksdb_options_t *copts;
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wopts_sync;
    rocksdb_writeoptions_t *wopts_nosync;
    pthread_mutex_t mu;              /* the handle cache */
    pthread_mutex_t create_mu;       /* serialises contract creation */
    struct store_contract *lru_head, *lru_tail;
    size_t open_count, max_open;
    /* Contracts marked for the sweep, under mu. */
    char (*marked)[STORE_CID_MAX + 1];
    size_t marked_count, marked_cap;
    uint64_t min_free;               /* store_options.min_free_bytes */
    char bad_contract[STORE_CID_MAX + 1];
    char bad_plan[STORE_PLAN_MAX + 1];
};

struct store_batch {
    struct store_contract *c;
    rocksdb_writebatch_t *wb;
    int64_t used_delta;
    int64_t blobs_delta;
    int64_t msgs_delta;
    uint64_t seq;                    /* highest seq taken, 0 when none */
    bool mark_sweep;                 /* mark the contract at commit */
    unsigned char (*unlink)[STORE_DIGEST_LEN];
    size_t unlink_count, unlink_cap;
};

int store_rocks_fail(struct blobd_error *err, char *rerr, const char *what);
int store_errno_fail(struct blobd_error *err, int e, const char *op,
                     const char *path);
int store_fsync_dir(const char *path);
/* BLOBD_ENOSPC unless the data directory's file system has `extra` bytes
 * free, beyond st->min_free when `keep_reserve` is set. Always BLOBD_OK
 * when st->min_free is 0. */
int store_space_check(const struct store *st, uint64_t extra,
                      bool keep_reserve, struct blobd_error *err);
void store_contract_reopen(struct store_contract *c);
uint64_t store_contract_quota_locked(struct store_contract *c);
void store_registry_refresh(struct store_contract *c);
void store_contract_mark(struct store_contract *c);

/* Path of a blob's file: <dir>/blobs/ab/cd/<hex>. */
void store_blob_path(const struct store_contract *c,
                     const unsigned char digest[STORE_DIGEST_LEN],
                     char *path, size_t size);
void store_blob_unlink(struct store_contract *c,
                       const unsigned char digest[STORE_DIGEST_LEN]);
bool store_blob_decode(const char *val, size_t vlen, struct store_blob *out);

int store_recover_all(struct store *st, struct blobd_error *err);

#endif

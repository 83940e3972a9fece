/*
 * The store: registry, contract handle cache, write batches with counters,
 * iterators and blob records. Blob files and the upload commit are in
 * store_blob.c; start-up recovery in store_recover.c. See store.h for the
 * layout and the invariants.
 *
 * Counters of a contract live under 'Z' keys of its database and in the
 * open handle. A batch carries deltas; store_batch_commit(), with the
 * contract lock held, adds the new counter values to the same RocksDB
 * batch, writes it synchronously and only then updates the handle and the
 * registry's copy (written without sync: start-up rebuilds it).
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "quota.h"

#define KEY_USED "Zused"
#define KEY_BLOBS "Zblobs"
#define KEY_MSGS "Zmsgs"
#define KEY_SEQ "Zseq"
#define SPACE_SLACK (64 * 1024)   /* bytes beyond a batch's own size */

int64_t store_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool store_cid_valid(const char *id)
{
    size_t len;

    if (!id)
        return false;
    len = strlen(id);
    if (len == 0 || len > STORE_CID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

const char *store_data_dir(const struct store *st)
{
    return st->data_dir;
}

/* Turn a RocksDB error string into `err` and free it. */
int store_rocks_fail(struct blobd_error *err, char *rerr, const char *what)
{
    enum blobd_code code = BLOBD_EIO;

    if (rerr && (strstr(rerr, "No space left") || strstr(rerr, "ENOSPC")))
        code = BLOBD_ENOSPC;
    blobd_fail(err, code, "%s failed: %s", what, rerr ? rerr : "unknown");
    if (err && code == BLOBD_ENOSPC)
        err->sys_errno = ENOSPC;
    log_error("store", "rocksdb_failed", "op=%s error=\"%s\"", what,
              rerr ? rerr : "unknown");
    free(rerr);
    return code;
}

int store_errno_fail(struct blobd_error *err, int e, const char *op,
                     const char *path)
{
    enum blobd_code code;

    code = (e == ENOSPC || e == EDQUOT) ? BLOBD_ENOSPC : BLOBD_EIO;
    blobd_fail(err, code, "%s of %s failed: %s", op, path, strerror(e));
    if (err)
        err->sys_errno = e;
    if (code == BLOBD_ENOSPC)
        log_warn("store", "disk_full", "op=%s path=%s errno=%d", op, path, e);
    else
        log_error("store", "io_failed", "op=%s path=%s error=\"%s\"", op,
                  path, strerror(e));
    return code;
}

int store_space_check(const struct store *st, uint64_t extra,
                      bool keep_reserve, struct blobd_error *err)
{
    uint64_t reserve = keep_reserve ? st->min_free : 0;
    struct statvfs fs;
    uint64_t avail;

    if (st->min_free == 0)
        return BLOBD_OK;   /* the check is off */
    if (statvfs(st->data_dir, &fs) < 0)
        return store_errno_fail(err, errno, "statvfs", st->data_dir);
    avail = (uint64_t)fs.f_bavail * fs.f_frsize;
    if (avail >= reserve && avail - reserve >= extra)
        return BLOBD_OK;
    log_warn("store", "disk_reserve_reached",
             "path=%s free_bytes=%llu needed_bytes=%llu min_free_bytes=%llu",
             st->data_dir, (unsigned long long)avail,
             (unsigned long long)extra, (unsigned long long)st->min_free);
    blobd_fail(err, BLOBD_ENOSPC, "the server's disk is full");
    if (err)
        err->sys_errno = ENOSPC;
    return BLOBD_ENOSPC;
}

/* ---- big-endian helpers ---- */

void store_be64_put(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

uint64_t store_be64_get(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* ---- registry records ---- */

static void registry_key(const char *id, char *key, size_t *klen)
{
    size_t len = strlen(id);

    key[0] = 'c';
    memcpy(key + 1, id, len);
    *klen = len + 1;
}

static char *registry_encode(const struct store_contract_info *info)
{
    json_t *obj = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}",
                            "name", info->name, "plan", info->plan,
                            "licences", (json_int_t)info->licences,
                            "used_bytes", (json_int_t)info->used_bytes,
                            "blob_count", (json_int_t)info->blob_count,
                            "message_count",
                            (json_int_t)info->message_count);
    char *text;

    if (!obj)
        return NULL;
    text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    return text;
}

static bool registry_decode(const char *id, const char *val, size_t vlen,
                            struct store_contract_info *info)
{
    json_error_t jerr;
    json_t *obj = json_loadb(val, vlen, 0, &jerr);
    const char *name = NULL, *plan = NULL;
    json_int_t licences = 0, used = 0, blobs = 0, msgs = 0;
    bool ok;

    if (!obj)
        return false;
    ok = json_unpack(obj, "{s:s, s:s, s:I, s:I, s:I, s:I}", "name", &name,
                     "plan", &plan, "licences", &licences, "used_bytes",
                     &used, "blob_count", &blobs, "message_count",
                     &msgs) == 0;
    if (ok) {
        memset(info, 0, sizeof(*info));
        snprintf(info->id, sizeof(info->id), "%s", id);
        snprintf(info->name, sizeof(info->name), "%s", name);
        snprintf(info->plan, sizeof(info->plan), "%s", plan);
        info->licences = (uint32_t)licences;
        info->used_bytes = (uint64_t)used;
        info->blob_count = (uint64_t)blobs;
        info->message_count = (uint64_t)msgs;
    }
    json_decref(obj);
    return ok;
}

static void info_set_quota(const struct store *st,
                           struct store_contract_info *info)
{
    uint64_t quota = 0;

    if (!st->plans ||
        quota_for(st->plans, info->plan, info->licences, &quota) != QUOTA_OK)
        quota = 0;
    info->quota_bytes = quota;
}

static int registry_read(struct store *st, const char *id,
                         struct store_contract_info *info,
                         struct blobd_error *err)
{
    char key[STORE_CID_MAX + 2];
    size_t klen, vlen;
    char *rerr = NULL;
    char *val;
    bool ok;

    registry_key(id, key, &klen);
    val = rocksdb_get(st->sysdb, st->ropts, key, klen, &vlen, &rerr);
    if (rerr)
        return store_rocks_fail(err, rerr, "registry read");
    if (!val)
        return blobd_fail(err, BLOBD_ENOTFOUND, "contract not found");
    ok = registry_decode(id, val, vlen, info);
    rocksdb_free(val);
    if (!ok)
        return blobd_fail(err, BLOBD_EIO, "registry record of %s is corrupt",
                          id);
    info_set_quota(st, info);
    return BLOBD_OK;
}

static int registry_write(struct store *st,
                          const struct store_contract_info *info, bool sync,
                          struct blobd_error *err)
{
    char key[STORE_CID_MAX + 2];
    size_t klen;
    char *rerr = NULL;
    char *val = registry_encode(info);

    if (!val)
        return blobd_fail(err, BLOBD_ENOMEM, "out of memory");
    /* The usage copies (not synchronous) may use the reserve, so that
     * they follow purges on a full disk. */
    if (store_space_check(st, strlen(val) + SPACE_SLACK, sync, err) !=
        BLOBD_OK) {
        free(val);
        return BLOBD_ENOSPC;
    }
    registry_key(info->id, key, &klen);
    rocksdb_put(st->sysdb, sync ? st->wopts_sync : st->wopts_nosync, key,
                klen, val, strlen(val), &rerr);
    free(val);
    if (rerr)
        return store_rocks_fail(err, rerr, "registry write");
    return BLOBD_OK;
}

static void info_fill_locked(struct store_contract *c,
                             struct store_contract_info *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->id, sizeof(out->id), "%s", c->id);
    snprintf(out->name, sizeof(out->name), "%s", c->name);
    snprintf(out->plan, sizeof(out->plan), "%s", c->plan);
    out->licences = c->licences;
    out->used_bytes = c->used_bytes;
    out->blob_count = c->blob_count;
    out->message_count = c->message_count;
    info_set_quota(c->st, out);
}

/* Refresh the registry's copy of the handle's figures; the caller holds
 * the contract lock. Not synchronous: start-up rebuilds the copy from the
 * contract databases. */
static void registry_sync_copy(struct store_contract *c)
{
    struct store_contract_info info;
    struct blobd_error err;

    info_fill_locked(c, &info);
    if (registry_write(c->st, &info, false, &err) != BLOBD_OK)
        log_warn("store", "registry_copy_failed", "contract=%s error=\"%s\"",
                 c->id, err.message);
}

/* ---- opening databases ---- */

static int mkdir_p(const char *path)
{
    char tmp[PATH_MAX];
    size_t len = strlen(path);

    if (len >= sizeof(tmp))
        return -1;
    memcpy(tmp, path, len + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

int store_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc, saved;

    if (fd < 0)
        return -1;
    rc = fsync(fd);
    saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

static uint64_t counter_read(rocksdb_t *db, const rocksdb_readoptions_t *ro,
                             const char *key)
{
    size_t vlen = 0;
    char *rerr = NULL;
    char *val = rocksdb_get(db, ro, key, strlen(key), &vlen, &rerr);
    uint64_t v = 0;

    if (rerr)
        free(rerr);
    if (val && vlen == 8)
        v = store_be64_get((const unsigned char *)val);
    rocksdb_free(val);
    return v;
}

static int contract_open_db(struct store *st, struct store_contract *c,
                            struct blobd_error *err)
{
    char path[PATH_MAX];
    char *rerr = NULL;

    snprintf(path, sizeof(path), "%s/db", c->dir);
    c->db = rocksdb_open(st->copts, path, &rerr);
    if (rerr)
        return store_rocks_fail(err, rerr, "contract database open");
    c->used_bytes = counter_read(c->db, st->ropts, KEY_USED);
    c->blob_count = counter_read(c->db, st->ropts, KEY_BLOBS);
    c->message_count = counter_read(c->db, st->ropts, KEY_MSGS);
    c->seq = counter_read(c->db, st->ropts, KEY_SEQ);
    return BLOBD_OK;
}

/*
 * RocksDB 7.8's C API has no resume after a background error such as
 * ENOSPC, so a failed write closes and reopens the database.
 */
void store_contract_reopen(struct store_contract *c)
{
    struct blobd_error err;

    log_warn("store", "database_reopen", "contract=%s", c->id);
    rocksdb_close(c->db);
    c->db = NULL;
    if (contract_open_db(c->st, c, &err) != BLOBD_OK)
        log_error("store", "database_reopen_failed",
                  "contract=%s error=\"%s\"", c->id, err.message);
}

static void contract_free(struct store_contract *c)
{
    if (c->db)
        rocksdb_close(c->db);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static void lru_unlink(struct store *st, struct store_contract *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        st->lru_head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        st->lru_tail = c->prev;
    c->prev = c->next = NULL;
}

static void lru_push_front(struct store *st, struct store_contract *c)
{
    c->prev = NULL;
    c->next = st->lru_head;
    if (st->lru_head)
        st->lru_head->prev = c;
    st->lru_head = c;
    if (!st->lru_tail)
        st->lru_tail = c;
}

/* Close idle databases while more than the maximum are open; st->mu held. */
static void cache_trim(struct store *st)
{
    struct store_contract *c = st->lru_tail;

    while (c && st->open_count > st->max_open) {
        struct store_contract *prev = c->prev;
        if (c->refs == 0) {
            lru_unlink(st, c);
            st->open_count--;
            contract_free(c);
        }
        c = prev;
    }
}

static int contract_load(struct store *st, const char *id,
                         struct store_contract **out, struct blobd_error *err)
{
    struct store_contract_info info;
    struct store_contract *c;
    int rc;

    rc = registry_read(st, id, &info, err);
    if (rc != BLOBD_OK)
        return rc;
    c = calloc(1, sizeof(*c));
    if (!c)
        return blobd_fail(err, BLOBD_ENOMEM, "out of memory");
    c->st = st;
    snprintf(c->id, sizeof(c->id), "%s", id);
    snprintf(c->name, sizeof(c->name), "%s", info.name);
    snprintf(c->plan, sizeof(c->plan), "%s", info.plan);
    c->licences = info.licences;
    snprintf(c->dir, sizeof(c->dir), "%s/contracts/%s", st->data_dir, id);
    pthread_mutex_init(&c->lock, NULL);
    rc = contract_open_db(st, c, err);
    if (rc != BLOBD_OK) {
        contract_free(c);
        return rc;
    }
    *out = c;
    return BLOBD_OK;
}

int store_contract_acquire(struct store *st, const char *id,
                           struct store_contract **out,
                           struct blobd_error *err)
{
    struct store_contract *c;
    int rc;

    if (!store_cid_valid(id))
        return blobd_fail(err, BLOBD_ENOTFOUND, "contract not found");
    pthread_mutex_lock(&st->mu);
    for (c = st->lru_head; c; c = c->next) {
        if (strcmp(c->id, id) == 0)
            break;
    }
    if (c) {
        lru_unlink(st, c);
    } else {
        rc = contract_load(st, id, &c, err);
        if (rc != BLOBD_OK) {
            pthread_mutex_unlock(&st->mu);
            return rc;
        }
        st->open_count++;
    }
    lru_push_front(st, c);
    c->refs++;
    cache_trim(st);
    pthread_mutex_unlock(&st->mu);
    *out = c;
    return BLOBD_OK;
}

void store_contract_release(struct store_contract *c)
{
    struct store *st;

    if (!c)
        return;
    st = c->st;
    pthread_mutex_lock(&st->mu);
    c->refs--;
    cache_trim(st);
    pthread_mutex_unlock(&st->mu);
}

const char *store_contract_id(const struct store_contract *c)
{
    return c->id;
}

void store_contract_lock(struct store_contract *c)
{
    pthread_mutex_lock(&c->lock);
}

void store_contract_unlock(struct store_contract *c)
{
    pthread_mutex_unlock(&c->lock);
}

/*
 * The handle's plan and figures change only under its lock; readers take
 * the lock briefly so that a report never mixes two states.
 */
void store_contract_info(struct store_contract *c,
                         struct store_contract_info *out)
{
    pthread_mutex_lock(&c->lock);
    info_fill_locked(c, out);
    pthread_mutex_unlock(&c->lock);
}

/* Quota of a contract whose lock the caller holds. */
uint64_t store_contract_quota_locked(struct store_contract *c)
{
    uint64_t quota = 0;

    if (!c->st->plans ||
        quota_for(c->st->plans, c->plan, c->licences, &quota) != QUOTA_OK)
        return 0;
    return quota;
}

uint64_t store_contract_seq(struct store_contract *c)
{
    uint64_t seq;

    pthread_mutex_lock(&c->lock);
    seq = c->seq;
    pthread_mutex_unlock(&c->lock);
    return seq;
}

/* ---- registry operations ---- */

int store_contract_create(struct store *st, const char *id, const char *name,
                          const char *plan, uint32_t licences,
                          struct store_contract_info *out,
                          struct blobd_error *err)
{
    struct store_contract_info info;
    char path[PATH_MAX];
    int rc;

    if (!store_cid_valid(id))
        return blobd_fail(err, BLOBD_EINVAL,
                          "invalid id: 1 to 64 characters of a-z 0-9 - _");
    if (!name || strlen(name) == 0 || strlen(name) > STORE_NAME_MAX)
        return blobd_fail(err, BLOBD_EINVAL,
                          "invalid name: 1 to 256 bytes expected");
    if (!plan || !quota_plan_lookup(st->plans, plan, NULL))
        return blobd_fail(err, BLOBD_EINVAL, "invalid plan: unknown plan");
    if (licences < 1 || licences > STORE_LICENCES_MAX)
        return blobd_fail(err, BLOBD_EINVAL,
                          "invalid licences: 1 to 1000000 expected");

    pthread_mutex_lock(&st->create_mu);
    rc = registry_read(st, id, &info, NULL);
    if (rc == BLOBD_OK) {
        rc = blobd_fail(err, BLOBD_ECONFLICT, "contract %s already exists",
                        id);
        goto out;
    }
    for (const char *sub = "db\0blobs\0tmp\0"; *sub; sub += strlen(sub) + 1) {
        snprintf(path, sizeof(path), "%s/contracts/%s/%s", st->data_dir, id,
                 sub);
        if (mkdir_p(path) < 0) {
            rc = store_errno_fail(err, errno, "mkdir", path);
            goto out;
        }
    }
    snprintf(path, sizeof(path), "%s/contracts", st->data_dir);
    store_fsync_dir(path);

    memset(&info, 0, sizeof(info));
    snprintf(info.id, sizeof(info.id), "%s", id);
    snprintf(info.name, sizeof(info.name), "%s", name);
    snprintf(info.plan, sizeof(info.plan), "%s", plan);
    info.licences = licences;
    rc = registry_write(st, &info, true, err);
    if (rc != BLOBD_OK)
        goto out;
    info_set_quota(st, &info);
    if (out)
        *out = info;
    log_info("store", "contract_created", "contract=%s plan=%s licences=%u",
             id, plan, licences);
out:
    pthread_mutex_unlock(&st->create_mu);
    return rc;
}

int store_contract_get(struct store *st, const char *id,
                       struct store_contract_info *out,
                       struct blobd_error *err)
{
    struct store_contract *c;
    int rc;

    rc = store_contract_acquire(st, id, &c, err);
    if (rc != BLOBD_OK)
        return rc;
    store_contract_info(c, out);
    store_contract_release(c);
    return BLOBD_OK;
}

int store_contract_update(struct store *st, const char *id, const char *plan,
                          uint32_t licences, struct store_contract_info *out,
                          struct blobd_error *err)
{
    struct store_contract_info info;
    struct store_contract *c;
    uint64_t quota;
    int rc;

    if (plan && !quota_plan_lookup(st->plans, plan, NULL))
        return blobd_fail(err, BLOBD_EINVAL, "invalid plan: unknown plan");
    if (licences > STORE_LICENCES_MAX)
        return blobd_fail(err, BLOBD_EINVAL,
                          "invalid licences: 1 to 1000000 expected");
    rc = store_contract_acquire(st, id, &c, err);
    if (rc != BLOBD_OK)
        return rc;

    store_contract_lock(c);
    memset(&info, 0, sizeof(info));
    snprintf(info.id, sizeof(info.id), "%s", c->id);
    snprintf(info.name, sizeof(info.name), "%s", c->name);
    snprintf(info.plan, sizeof(info.plan), "%s", plan ? plan : c->plan);
    info.licences = licences ? licences : c->licences;
    info.used_bytes = c->used_bytes;
    info.blob_count = c->blob_count;
    info.message_count = c->message_count;
    if (quota_for(st->plans, info.plan, info.licences, &quota) != QUOTA_OK) {
        rc = blobd_fail(err, BLOBD_EINVAL, "invalid licences: quota overflows");
        goto out;
    }
    if (quota < c->used_bytes) {
        rc = blobd_fail(err, BLOBD_EBELOWUSAGE,
                        "new quota of %llu bytes is below the %llu bytes used",
                        (unsigned long long)quota,
                        (unsigned long long)c->used_bytes);
        err->used_bytes = c->used_bytes;
        err->quota_bytes = quota;
        goto out;
    }
    rc = registry_write(st, &info, true, err);
    if (rc != BLOBD_OK)
        goto out;
    snprintf(c->plan, sizeof(c->plan), "%s", info.plan);
    c->licences = info.licences;
    log_info("store", "contract_updated", "contract=%s plan=%s licences=%u",
             c->id, c->plan, c->licences);
out:
    store_contract_unlock(c);
    if (rc == BLOBD_OK && out)
        store_contract_info(c, out);
    store_contract_release(c);
    return rc;
}

int store_contract_foreach(struct store *st, store_contract_fn fn, void *arg,
                           struct blobd_error *err)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->sysdb, st->ropts);
    int rc = BLOBD_OK;

    for (rocksdb_iter_seek(it, "c", 1); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        struct store_contract_info info;
        char id[STORE_CID_MAX + 1];
        size_t klen, vlen;
        const char *key = rocksdb_iter_key(it, &klen);
        const char *val = rocksdb_iter_value(it, &vlen);

        if (klen < 2 || key[0] != 'c' || klen - 1 > STORE_CID_MAX)
            break;
        memcpy(id, key + 1, klen - 1);
        id[klen - 1] = '\0';
        if (!registry_decode(id, val, vlen, &info)) {
            rc = blobd_fail(err, BLOBD_EIO, "registry record of %s is corrupt",
                            id);
            break;
        }
        info_set_quota(st, &info);
        if (fn(&info, arg) != 0)
            break;
    }
    rocksdb_iter_destroy(it);
    return rc;
}

struct ids {
    char (*id)[STORE_CID_MAX + 1];
    size_t count, cap;
};

static int collect_id(const struct store_contract_info *info, void *arg)
{
    struct ids *ids = arg;

    if (ids->count == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        void *grown = realloc(ids->id, cap * sizeof(*ids->id));
        if (!grown)
            return -1;
        ids->id = grown;
        ids->cap = cap;
    }
    memcpy(ids->id[ids->count++], info->id, sizeof(info->id));
    return 0;
}

void store_contract_each(struct store *st, store_each_fn fn, void *arg)
{
    struct ids ids = {0};

    store_contract_foreach(st, collect_id, &ids, NULL);
    for (size_t i = 0; i < ids.count; i++) {
        struct store_contract *c;
        if (store_contract_acquire(st, ids.id[i], &c, NULL) != BLOBD_OK)
            continue;
        fn(c, arg);
        store_contract_release(c);
    }
    free(ids.id);
}

/* ---- sweep marks ---- */

/* Add `id` to the marked list unless it is there; st->mu held. */
static void marked_add_locked(struct store *st, const char *id)
{
    for (size_t i = 0; i < st->marked_count; i++) {
        if (strcmp(st->marked[i], id) == 0)
            return;
    }
    if (st->marked_count == st->marked_cap) {
        size_t cap = st->marked_cap ? st->marked_cap * 2 : 64;
        void *grown = realloc(st->marked, cap * sizeof(*st->marked));
        if (!grown)
            abort();
        st->marked = grown;
        st->marked_cap = cap;
    }
    snprintf(st->marked[st->marked_count++], STORE_CID_MAX + 1, "%s", id);
}

void store_contract_mark(struct store_contract *c)
{
    struct store *st = c->st;

    pthread_mutex_lock(&st->mu);
    if (!c->sweep_marked) {
        marked_add_locked(st, c->id);
        c->sweep_marked = true;
    }
    pthread_mutex_unlock(&st->mu);
}

void store_batch_mark_sweep(struct store_batch *b)
{
    b->mark_sweep = true;
}

void store_contract_each_marked(struct store *st, store_sweep_fn fn,
                                void *arg)
{
    char (*ids)[STORE_CID_MAX + 1];
    size_t count;

    /* Take the whole list; contracts marked while it runs start a new
     * one, so no mark is lost. */
    pthread_mutex_lock(&st->mu);
    ids = st->marked;
    count = st->marked_count;
    st->marked = NULL;
    st->marked_count = st->marked_cap = 0;
    for (struct store_contract *c = st->lru_head; c; c = c->next)
        c->sweep_marked = false;
    pthread_mutex_unlock(&st->mu);

    for (size_t i = 0; i < count; i++) {
        struct store_contract *c;

        if (store_contract_acquire(st, ids[i], &c, NULL) != BLOBD_OK)
            continue;
        if (fn(c, arg))
            store_contract_mark(c);
        store_contract_release(c);
    }
    free(ids);
}

/* ---- key/value ---- */

int store_get(struct store_contract *c, const void *key, size_t klen,
              char **val, size_t *vlen, struct blobd_error *err)
{
    char *rerr = NULL;
    size_t len = 0;
    char *raw = rocksdb_get(c->db, c->st->ropts, key, klen, &len, &rerr);

    if (rerr)
        return store_rocks_fail(err, rerr, "read");
    if (!raw)
        return blobd_fail(err, BLOBD_ENOTFOUND, "not found");
    /* Copy so that callers free with free(), whatever allocator RocksDB
     * uses; a trailing NUL makes text values usable as strings. */
    *val = malloc(len + 1);
    if (!*val) {
        rocksdb_free(raw);
        return blobd_fail(err, BLOBD_ENOMEM, "out of memory");
    }
    memcpy(*val, raw, len);
    (*val)[len] = '\0';
    rocksdb_free(raw);
    if (vlen)
        *vlen = len;
    return BLOBD_OK;
}

bool store_exists(struct store_contract *c, const void *key, size_t klen)
{
    char *val = NULL;

    if (store_get(c, key, klen, &val, NULL, NULL) != BLOBD_OK)
        return false;
    free(val);
    return true;
}

/* ---- batches ---- */

struct store_batch *store_batch_new(struct store_contract *c)
{
    struct store_batch *b = calloc(1, sizeof(*b));

    if (!b)
        abort();
    b->c = c;
    b->wb = rocksdb_writebatch_create();
    return b;
}

void store_batch_put(struct store_batch *b, const void *key, size_t klen,
                     const void *val, size_t vlen)
{
    rocksdb_writebatch_put(b->wb, key, klen, val, vlen);
}

void store_batch_delete(struct store_batch *b, const void *key, size_t klen)
{
    rocksdb_writebatch_delete(b->wb, key, klen);
}

uint64_t store_batch_next_seq(struct store_batch *b)
{
    if (b->seq == 0)
        b->seq = b->c->seq;
    return ++b->seq;
}

void store_batch_count_messages(struct store_batch *b, int64_t delta)
{
    b->msgs_delta += delta;
}

static void counter_put(struct store_batch *b, const char *key, uint64_t v)
{
    unsigned char buf[8];

    store_be64_put(buf, v);
    rocksdb_writebatch_put(b->wb, key, strlen(key), (const char *)buf, 8);
}

int store_batch_commit(struct store_batch *b, struct blobd_error *err)
{
    struct store_contract *c = b->c;
    uint64_t used = c->used_bytes + (uint64_t)b->used_delta;
    uint64_t blobs = c->blob_count + (uint64_t)b->blobs_delta;
    uint64_t msgs = c->message_count + (uint64_t)b->msgs_delta;
    char *rerr = NULL;
    size_t size = 0;
    int rc;

    /* Only batches that add blobs or messages keep the reserve, so that
     * purges, deletions and account changes still work once uploads and
     * messages are rejected. The slack covers the counters that are added
     * below and the WAL's next page. */
    rocksdb_writebatch_data(b->wb, &size);
    rc = store_space_check(c->st, (uint64_t)size + SPACE_SLACK,
                           b->used_delta > 0 || b->blobs_delta > 0 ||
                               b->msgs_delta > 0,
                           err);
    if (rc != BLOBD_OK)
        return rc;
    if (b->used_delta)
        counter_put(b, KEY_USED, used);
    if (b->blobs_delta)
        counter_put(b, KEY_BLOBS, blobs);
    if (b->msgs_delta)
        counter_put(b, KEY_MSGS, msgs);
    if (b->seq > c->seq)
        counter_put(b, KEY_SEQ, b->seq);

    rocksdb_write(c->db, c->st->wopts_sync, b->wb, &rerr);
    if (rerr) {
        rc = store_rocks_fail(err, rerr, "commit");
        store_contract_reopen(c);
        return rc;
    }
    c->used_bytes = used;
    c->blob_count = blobs;
    c->message_count = msgs;
    if (b->seq > c->seq)
        c->seq = b->seq;

    for (size_t i = 0; i < b->unlink_count; i++)
        store_blob_unlink(c, b->unlink[i]);
    if (b->mark_sweep)
        store_contract_mark(c);
    if (b->used_delta || b->blobs_delta || b->msgs_delta)
        registry_sync_copy(c);
    return BLOBD_OK;
}

void store_batch_free(struct store_batch *b)
{
    if (!b)
        return;
    rocksdb_writebatch_destroy(b->wb);
    free(b->unlink);
    free(b);
}

/* ---- iterators ---- */

struct store_iter {
    rocksdb_iterator_t *it;
    rocksdb_readoptions_t *ro;
    unsigned char *lower;
    size_t lower_len;
    unsigned char *upper;       /* NULL when the prefix has no successor */
    size_t upper_len;
};

struct store_iter *store_iter_new(struct store_contract *c,
                                  const void *prefix, size_t plen)
{
    struct store_iter *it = calloc(1, sizeof(*it));

    if (!it)
        abort();
    it->lower = malloc(plen + 1);
    it->upper = malloc(plen + 1);
    if (!it->lower || !it->upper)
        abort();
    memcpy(it->lower, prefix, plen);
    it->lower_len = plen;
    memcpy(it->upper, prefix, plen);
    it->upper_len = plen;
    while (it->upper_len > 0 && it->upper[it->upper_len - 1] == 0xff)
        it->upper_len--;
    if (it->upper_len == 0) {
        free(it->upper);
        it->upper = NULL;
    } else {
        it->upper[it->upper_len - 1]++;
    }
    it->ro = rocksdb_readoptions_create();
    if (plen > 0)
        rocksdb_readoptions_set_iterate_lower_bound(it->ro,
                                                    (const char *)it->lower,
                                                    plen);
    if (it->upper)
        rocksdb_readoptions_set_iterate_upper_bound(it->ro,
                                                    (const char *)it->upper,
                                                    it->upper_len);
    it->it = rocksdb_create_iterator(c->db, it->ro);
    return it;
}

void store_iter_seek(struct store_iter *it, const void *key, size_t klen)
{
    rocksdb_iter_seek(it->it, key, klen);
}

void store_iter_seek_first(struct store_iter *it)
{
    rocksdb_iter_seek(it->it, (const char *)it->lower, it->lower_len);
}

void store_iter_seek_last(struct store_iter *it)
{
    if (it->upper)
        store_iter_seek_before(it, it->upper, it->upper_len);
    else
        rocksdb_iter_seek_to_last(it->it);
}

void store_iter_seek_before(struct store_iter *it, const void *key,
                            size_t klen)
{
    rocksdb_iter_seek_for_prev(it->it, key, klen);
    if (rocksdb_iter_valid(it->it)) {
        size_t len;
        const char *cur = rocksdb_iter_key(it->it, &len);
        if (len == klen && memcmp(cur, key, klen) == 0)
            rocksdb_iter_prev(it->it);
    }
}

bool store_iter_valid(struct store_iter *it)
{
    size_t len;
    const char *key;

    if (!rocksdb_iter_valid(it->it))
        return false;
    key = rocksdb_iter_key(it->it, &len);
    return len >= it->lower_len && memcmp(key, it->lower, it->lower_len) == 0;
}

void store_iter_next(struct store_iter *it)
{
    rocksdb_iter_next(it->it);
}

void store_iter_prev(struct store_iter *it)
{
    rocksdb_iter_prev(it->it);
}

const char *store_iter_key(struct store_iter *it, size_t *klen)
{
    return rocksdb_iter_key(it->it, klen);
}

const char *store_iter_value(struct store_iter *it, size_t *vlen)
{
    return rocksdb_iter_value(it->it, vlen);
}

void store_iter_free(struct store_iter *it)
{
    if (!it)
        return;
    rocksdb_iter_destroy(it->it);
    rocksdb_readoptions_destroy(it->ro);
    free(it->lower);
    free(it->upper);
    free(it);
}

/* ---- open and close ---- */

static void options_init(struct store *st, const struct store_options *opts)
{
    size_t cache = opts->block_cache_bytes ? opts->block_cache_bytes
                                           : 64u << 20;
    size_t wbuf = opts->write_buffer_bytes ? opts->write_buffer_bytes
                                           : 4u << 20;

    st->cache = rocksdb_cache_create_lru(cache);
    st->bbo = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(st->bbo, st->cache);

    st->copts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(st->copts, 1);
    rocksdb_options_set_block_based_table_factory(st->copts, st->bbo);
    rocksdb_options_set_write_buffer_size(st->copts, wbuf);
    rocksdb_options_set_max_write_buffer_number(st->copts, 2);
    rocksdb_options_set_max_open_files(st->copts, 64);
    rocksdb_options_set_keep_log_file_num(st->copts, 2);
    rocksdb_options_set_max_log_file_size(st->copts, 1 << 20);
    rocksdb_options_set_info_log_level(st->copts, 2);   /* warnings */

    st->ropts = rocksdb_readoptions_create();
    st->wopts_sync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(st->wopts_sync, 1);
    st->wopts_nosync = rocksdb_writeoptions_create();
}

static int check_plan(const struct store_contract_info *info, void *arg)
{
    struct store *st = arg;

    if (!quota_plan_lookup(st->plans, info->plan, NULL)) {
        snprintf(st->bad_contract, sizeof(st->bad_contract), "%s", info->id);
        snprintf(st->bad_plan, sizeof(st->bad_plan), "%s", info->plan);
        return 1;
    }
    return 0;
}

int store_open(struct store **out, const struct store_options *opts,
               struct blobd_error *err)
{
    struct store *st;
    char path[PATH_MAX];
    char *rerr = NULL;
    int rc;

    if (strlen(opts->data_dir) >= STORE_DATA_DIR_MAX)
        return blobd_fail(err, BLOBD_EINVAL,
                          "data directory path longer than %d bytes",
                          STORE_DATA_DIR_MAX - 1);
    st = calloc(1, sizeof(*st));
    if (!st)
        return blobd_fail(err, BLOBD_ENOMEM, "out of memory");
    snprintf(st->data_dir, sizeof(st->data_dir), "%s", opts->data_dir);
    st->plans = opts->plans;
    st->max_open = opts->max_open_contracts ? opts->max_open_contracts : 256;
    st->min_free = opts->min_free_bytes;
    pthread_mutex_init(&st->mu, NULL);
    pthread_mutex_init(&st->create_mu, NULL);
    options_init(st, opts);

    snprintf(path, sizeof(path), "%s/contracts", st->data_dir);
    if (mkdir_p(path) < 0) {
        rc = store_errno_fail(err, errno, "mkdir", path);
        goto fail;
    }
    snprintf(path, sizeof(path), "%s/system", st->data_dir);
    st->sysdb = rocksdb_open(st->copts, path, &rerr);
    if (rerr) {
        rc = store_rocks_fail(err, rerr, "registry open");
        goto fail;
    }

    /* Without a plans table (`blobd check` without --config) the plans
     * are not verified and every quota reads as 0. */
    rc = st->plans ? store_contract_foreach(st, check_plan, st, err)
                   : BLOBD_OK;
    if (rc != BLOBD_OK)
        goto fail;
    if (st->bad_contract[0]) {
        rc = blobd_fail(err, BLOBD_EINVAL,
                        "contract %s names plan %s, which the configuration "
                        "does not define", st->bad_contract, st->bad_plan);
        goto fail;
    }
    if (!opts->skip_recovery) {
        rc = store_recover_all(st, err);
        if (rc != BLOBD_OK)
            goto fail;
    }
    *out = st;
    return BLOBD_OK;
fail:
    store_close(st);
    return rc;
}

void store_close(struct store *st)
{
    struct store_contract *c;

    if (!st)
        return;
    pthread_mutex_lock(&st->mu);
    while ((c = st->lru_head) != NULL) {
        if (c->refs != 0)
            log_warn("store", "close_in_use", "contract=%s refs=%d", c->id,
                     c->refs);
        lru_unlink(st, c);
        contract_free(c);
    }
    pthread_mutex_unlock(&st->mu);
    free(st->marked);
    if (st->sysdb)
        rocksdb_close(st->sysdb);
    rocksdb_options_destroy(st->copts);
    rocksdb_block_based_options_destroy(st->bbo);
    rocksdb_cache_destroy(st->cache);
    rocksdb_readoptions_destroy(st->ropts);
    rocksdb_writeoptions_destroy(st->wopts_sync);
    rocksdb_writeoptions_destroy(st->wopts_nosync);
    pthread_mutex_destroy(&st->mu);
    pthread_mutex_destroy(&st->create_mu);
    free(st);
}

/* Used by recovery: rewrite the registry copy from the open handle. */
void store_registry_refresh(struct store_contract *c)
{
    pthread_mutex_lock(&c->lock);
    registry_sync_copy(c);
    pthread_mutex_unlock(&c->lock);
}

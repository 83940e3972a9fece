/*
 * Unit tests of the store: registry, durable blob commits, quota
 * decisions, start-up recovery, the handle cache, sweeps and iterators,
 * against a real RocksDB in a temporary directory.
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "quota.h"
#include "store.h"

struct fixture {
    char dir[64];
    struct quota_plans *plans;
    struct store *st;
};

static struct store *open_store(struct fixture *fx, size_t max_open)
{
    struct store_options opts = {
        .data_dir = fx->dir,
        .plans = fx->plans,
        .max_open_contracts = max_open,
    };
    struct blobd_error err;
    struct store *st = NULL;

    assert_int_equal(store_open(&st, &opts, &err), BLOBD_OK);
    return st;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    snprintf(fx->dir, sizeof(fx->dir), "/tmp/blobd-store-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    fx->plans = quota_plans_new_default();
    /* 100 bytes per licence: small quotas for boundary tests. */
    quota_plans_set(fx->plans, "tiny", 100);
    fx->st = open_store(fx, 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    char cmd[128];

    store_close(fx->st);
    quota_plans_free(fx->plans);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

static void make_contract(struct fixture *fx, const char *id,
                          uint32_t licences)
{
    struct blobd_error err;

    assert_int_equal(store_contract_create(fx->st, id, "Test", "tiny",
                                           licences, NULL, &err),
                     BLOBD_OK);
}

/* Write `len` bytes of `fill` to a temporary file of the contract and
 * commit it as user "u1". */
static int upload(struct store_contract *c, char fill, size_t len,
                  struct store_blob *blob, bool *created,
                  struct blobd_error *err)
{
    struct store_upload up = {0};
    char path[4096];
    char *buf = malloc(len + 1);
    int fd, rc;

    memset(buf, fill, len);
    assert_int_equal(store_tmp_create(c, &fd, path, sizeof(path), err),
                     BLOBD_OK);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    SHA256((unsigned char *)buf, len, up.digest);
    up.tmp_path = path;
    up.tmp_fd = fd;
    up.size = len;
    up.media_type = "application/octet-stream";
    up.uploader = "u1";
    up.now_ms = store_now_ms();
    rc = store_blob_commit(c, &up, blob, created, err);
    close(fd);
    free(buf);
    return rc;
}

static size_t count_files(const char *dir)
{
    struct dirent *ent;
    size_t n = 0;
    DIR *d = opendir(dir);

    if (!d)
        return 0;
    while ((ent = readdir(d)) != NULL) {
        if (ent->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n;
}

static void test_contract_registry(void **state)
{
    struct fixture *fx = *state;
    struct store_contract_info info;
    struct blobd_error err;

    make_contract(fx, "acme", 3);
    assert_int_equal(store_contract_get(fx->st, "acme", &info, &err),
                     BLOBD_OK);
    assert_string_equal(info.plan, "tiny");
    assert_int_equal(info.quota_bytes, 300);
    assert_int_equal(store_contract_create(fx->st, "acme", "Again", "tiny", 1,
                                           NULL, &err),
                     BLOBD_ECONFLICT);
    assert_int_equal(store_contract_create(fx->st, "Bad Id", "X", "tiny", 1,
                                           NULL, &err),
                     BLOBD_EINVAL);
    assert_int_equal(store_contract_create(fx->st, "x", "X", "gold", 1, NULL,
                                           &err),
                     BLOBD_EINVAL);
    assert_int_equal(store_contract_create(fx->st, "y", "X", "tiny", 0, NULL,
                                           &err),
                     BLOBD_EINVAL);
    assert_int_equal(store_contract_get(fx->st, "nope", &info, &err),
                     BLOBD_ENOTFOUND);
}

static void test_blob_dedup(void **state)
{
    struct fixture *fx = *state;
    struct store_contract_info info;
    struct store_contract *c;
    struct store_blob a, b;
    struct blobd_error err;
    bool created;
    char dir[4200];

    make_contract(fx, "acme", 3);
    assert_int_equal(store_contract_acquire(fx->st, "acme", &c, &err),
                     BLOBD_OK);
    assert_int_equal(upload(c, 'x', 40, &a, &created, &err), BLOBD_OK);
    assert_true(created);
    assert_int_equal(upload(c, 'x', 40, &b, &created, &err), BLOBD_OK);
    assert_false(created);
    assert_memory_equal(a.digest, b.digest, STORE_DIGEST_LEN);
    store_contract_info(c, &info);
    assert_int_equal(info.used_bytes, 40);
    assert_int_equal(info.blob_count, 1);
    assert_true(store_blob_uploaded_by(c, a.digest, "u1"));
    assert_false(store_blob_uploaded_by(c, a.digest, "u2"));
    snprintf(dir, sizeof(dir), "%s/contracts/acme/tmp", fx->dir);
    assert_int_equal(count_files(dir), 0);
    store_contract_release(c);
}

static void test_quota_boundary(void **state)
{
    struct fixture *fx = *state;
    struct store_contract *c;
    struct store_blob blob;
    struct blobd_error err;
    bool created;

    make_contract(fx, "acme", 1);   /* quota: 100 bytes */
    assert_int_equal(store_contract_acquire(fx->st, "acme", &c, &err),
                     BLOBD_OK);
    assert_int_equal(upload(c, 'a', 60, &blob, &created, &err), BLOBD_OK);
    assert_int_equal(upload(c, 'b', 41, &blob, &created, &err),
                     BLOBD_EQUOTA);
    assert_int_equal(err.used_bytes, 60);
    assert_int_equal(err.quota_bytes, 100);
    assert_int_equal(err.needed_bytes, 41);
    assert_int_equal(upload(c, 'b', 40, &blob, &created, &err), BLOBD_OK);
    /* Full: a duplicate still succeeds. */
    assert_int_equal(upload(c, 'a', 60, &blob, &created, &err), BLOBD_OK);
    assert_false(created);
    store_contract_release(c);
}

static void test_update_below_usage(void **state)
{
    struct fixture *fx = *state;
    struct store_contract_info info;
    struct store_contract *c;
    struct store_blob blob;
    struct blobd_error err;
    bool created;

    make_contract(fx, "acme", 2);
    assert_int_equal(store_contract_acquire(fx->st, "acme", &c, &err),
                     BLOBD_OK);
    assert_int_equal(upload(c, 'a', 150, &blob, &created, &err), BLOBD_OK);
    store_contract_release(c);
    assert_int_equal(store_contract_update(fx->st, "acme", NULL, 1, &info,
                                           &err),
                     BLOBD_EBELOWUSAGE);
    assert_int_equal(err.used_bytes, 150);
    assert_int_equal(err.quota_bytes, 100);
    assert_int_equal(store_contract_update(fx->st, "acme", "basic", 0, &info,
                                           &err),
                     BLOBD_OK);
    assert_int_equal(info.quota_bytes, 10000000000ULL);
}

static void test_reopen_and_recovery(void **state)
{
    struct fixture *fx = *state;
    struct store_contract_info info;
    struct store_contract *c;
    struct store_blob blob;
    struct blobd_error err;
    bool created;
    char path[4300];
    int fd;

    make_contract(fx, "acme", 3);
    assert_int_equal(store_contract_acquire(fx->st, "acme", &c, &err),
                     BLOBD_OK);
    assert_int_equal(upload(c, 'k', 10, &blob, &created, &err), BLOBD_OK);
    store_contract_release(c);
    store_close(fx->st);

    /* Leftovers of a crash: a temporary file and a file with no record. */
    snprintf(path, sizeof(path), "%s/contracts/acme/tmp/leftover", fx->dir);
    fd = open(path, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    snprintf(path, sizeof(path), "%s/contracts/acme/blobs/aa", fx->dir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/contracts/acme/blobs/aa/bb", fx->dir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/contracts/acme/blobs/aa/bb/aabb%060d",
             fx->dir, 0);
    fd = open(path, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);

    fx->st = open_store(fx, 0);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof(path), "%s/contracts/acme/tmp", fx->dir);
    assert_int_equal(count_files(path), 0);
    assert_int_equal(store_contract_get(fx->st, "acme", &info, &err),
                     BLOBD_OK);
    assert_int_equal(info.used_bytes, 10);
    assert_int_equal(info.blob_count, 1);
    assert_int_equal(store_contract_acquire(fx->st, "acme", &c, &err),
                     BLOBD_OK);
    assert_int_equal(store_blob_get(c, blob.digest, &blob, &err), BLOBD_OK);
    assert_int_equal(blob.size, 10);
    store_contract_release(c);
}

static void test_missing_plan_refused(void **state)
{
    struct fixture *fx = *state;
    struct store_options opts = {.data_dir = fx->dir};
    struct quota_plans *without = quota_plans_new_default();
    struct blobd_error err;
    struct store *st = NULL;

    make_contract(fx, "acme", 1);
    store_close(fx->st);
    opts.plans = without;
    assert_int_equal(store_open(&st, &opts, &err), BLOBD_EINVAL);
    assert_non_null(strstr(err.message, "acme"));
    quota_plans_free(without);
    fx->st = open_store(fx, 0);
}

static void test_cache_closes_idle(void **state)
{
    struct fixture *fx = *state;
    struct store_contract *a, *b, *again;
    struct store_blob blob;
    struct blobd_error err;
    bool created;

    store_close(fx->st);
    fx->st = open_store(fx, 1);
    make_contract(fx, "one", 3);
    make_contract(fx, "two", 3);
    assert_int_equal(store_contract_acquire(fx->st, "one", &a, &err),
                     BLOBD_OK);
    assert_int_equal(upload(a, 'q', 5, &blob, &created, &err), BLOBD_OK);
    store_contract_release(a);
    /* With room for one open database, opening "two" closes "one". */
    assert_int_equal(store_contract_acquire(fx->st, "two", &b, &err),
                     BLOBD_OK);
    store_contract_release(b);
    assert_int_equal(store_contract_acquire(fx->st, "one", &again, &err),
                     BLOBD_OK);
    assert_int_equal(store_blob_get(again, blob.digest, &blob, &err),
                     BLOBD_OK);
    store_contract_release(again);
}

static void test_sweep_unreferenced(void **state)
{
    struct fixture *fx = *state;
    struct store_contract_info info;
    struct store_contract *c;
    struct store_blob blob;
    struct blobd_error err;
    uint64_t blobs = 0, bytes = 0;
    bool created;

    make_contract(fx, "acme", 3);
    assert_int_equal(store_contract_acquire(fx->st, "acme", &c, &err),
                     BLOBD_OK);
    assert_int_equal(upload(c, 's', 30, &blob, &created, &err), BLOBD_OK);
    /* Not older than the cut-off yet: kept. */
    assert_int_equal(store_blob_sweep(c, blob.last_upload_ms, 100, false,
                                      &blobs, &bytes, &err),
                     BLOBD_OK);
    assert_int_equal(blobs, 0);
    assert_int_equal(store_blob_sweep(c, blob.last_upload_ms + 1, 100, true,
                                      &blobs, &bytes, &err),
                     BLOBD_OK);
    assert_int_equal(blobs, 1);
    store_contract_info(c, &info);
    assert_int_equal(info.used_bytes, 30);
    blobs = bytes = 0;
    assert_int_equal(store_blob_sweep(c, blob.last_upload_ms + 1, 100, false,
                                      &blobs, &bytes, &err),
                     BLOBD_OK);
    assert_int_equal(blobs, 1);
    assert_int_equal(bytes, 30);
    store_contract_info(c, &info);
    assert_int_equal(info.used_bytes, 0);
    assert_int_equal(info.blob_count, 0);
    assert_int_equal(store_blob_get(c, blob.digest, &blob, &err),
                     BLOBD_ENOTFOUND);
    assert_false(store_blob_uploaded_by(c, blob.digest, "u1"));
    store_contract_release(c);
}

static bool count_visit(struct store_contract *c, void *arg)
{
    int *visits = arg;

    (void)c;
    (*visits)++;
    return false;
}

static void test_sweep_marks(void **state)
{
    struct fixture *fx = *state;
    struct store_contract *c;
    struct store_blob blob;
    struct blobd_error err;
    bool created;
    int visits = 0;

    make_contract(fx, "idle", 3);
    make_contract(fx, "busy", 3);
    /* Reopen: start-up marks every contract once. */
    store_close(fx->st);
    fx->st = open_store(fx, 0);
    store_contract_each_marked(fx->st, count_visit, &visits);
    assert_int_equal(visits, 2);
    visits = 0;
    store_contract_each_marked(fx->st, count_visit, &visits);
    assert_int_equal(visits, 0);

    /* A new blob has no references yet: its contract is marked. */
    assert_int_equal(store_contract_acquire(fx->st, "busy", &c, &err),
                     BLOBD_OK);
    assert_int_equal(upload(c, 'm', 8, &blob, &created, &err), BLOBD_OK);
    assert_true(store_blob_unreferenced_exist(c));
    store_contract_release(c);
    store_contract_each_marked(fx->st, count_visit, &visits);
    assert_int_equal(visits, 1);
}

static void test_iterators_and_seq(void **state)
{
    struct fixture *fx = *state;
    struct store_contract *c;
    struct store_batch *b;
    struct store_iter *it;
    struct blobd_error err;
    const char *key;
    size_t klen;
    uint64_t s1, s2;

    make_contract(fx, "acme", 3);
    assert_int_equal(store_contract_acquire(fx->st, "acme", &c, &err),
                     BLOBD_OK);
    b = store_batch_new(c);
    store_contract_lock(c);
    s1 = store_batch_next_seq(b);
    s2 = store_batch_next_seq(b);
    store_batch_put(b, "qa", 2, "1", 1);
    store_batch_put(b, "qb", 2, "2", 1);
    store_batch_put(b, "qc", 2, "3", 1);
    store_batch_put(b, "r", 1, "x", 1);
    assert_int_equal(store_batch_commit(b, &err), BLOBD_OK);
    store_contract_unlock(c);
    store_batch_free(b);
    assert_int_equal(s2, s1 + 1);
    assert_int_equal(store_contract_seq(c), s2);

    it = store_iter_new(c, "q", 1);
    store_iter_seek_last(it);
    assert_true(store_iter_valid(it));
    key = store_iter_key(it, &klen);
    assert_memory_equal(key, "qc", 2);
    store_iter_seek_before(it, "qc", 2);
    key = store_iter_key(it, &klen);
    assert_memory_equal(key, "qb", 2);
    store_iter_seek_first(it);
    key = store_iter_key(it, &klen);
    assert_memory_equal(key, "qa", 2);
    store_iter_next(it);
    store_iter_next(it);
    store_iter_next(it);
    assert_false(store_iter_valid(it));   /* "r" is outside the prefix */
    store_iter_free(it);
    store_contract_release(c);
}

static void test_digest_hex(void **state)
{
    unsigned char digest[STORE_DIGEST_LEN], back[STORE_DIGEST_LEN];
    char hex[2 * STORE_DIGEST_LEN + 1];

    (void)state;
    for (int i = 0; i < STORE_DIGEST_LEN; i++)
        digest[i] = (unsigned char)(i * 7 + 3);
    store_digest_hex(digest, hex);
    assert_true(store_digest_parse(hex, back));
    assert_memory_equal(digest, back, STORE_DIGEST_LEN);
    assert_false(store_digest_parse("abc", back));
    hex[5] = 'G';
    assert_false(store_digest_parse(hex, back));
    assert_false(store_cid_valid(""));
    assert_false(store_cid_valid("../x"));
    assert_true(store_cid_valid("acme_1-x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_contract_registry, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_blob_dedup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quota_boundary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_below_usage, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reopen_and_recovery, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_missing_plan_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cache_closes_idle, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sweep_unreferenced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sweep_marks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterators_and_seq, setup,
                                        teardown),
        cmocka_unit_test(test_digest_hex),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

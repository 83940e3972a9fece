/*
 * Tests of chatapi against a real store in a temporary directory: blob
 * reference counting, download rights, history and sync order, group
 * deletion, purge (dry run against the real one, and in batches) and the
 * `blobd check` consistency checker with injected faults.
 */
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "chat.h"
#include "chat_internal.h"
#include "check.h"
#include "quota.h"
#include "store.h"

#define MAX_TEXT 65536
#define UID_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define UID_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define UID_C "cccccccccccccccccccccccccccccccc"

struct fixture {
    char dir[64];
    struct quota_plans *plans;
    struct store *st;
    struct store_contract *c;
};

static int remove_entry(const char *path, const struct stat *sb, int flag,
                        struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void fixture_open(struct fixture *f)
{
    struct store_options opts = { .data_dir = f->dir, .plans = f->plans };
    struct blobd_error err;

    assert_int_equal(store_open(&f->st, &opts, &err), BLOBD_OK);
    assert_int_equal(store_contract_acquire(f->st, "acme", &f->c, &err),
                     BLOBD_OK);
}

static void fixture_close(struct fixture *f)
{
    store_contract_release(f->c);
    store_close(f->st);
    f->c = NULL;
    f->st = NULL;
}

static void add_user(struct fixture *f, const char *uid)
{
    struct store_batch *b = store_batch_new(f->c);
    char key[64];
    struct blobd_error err;

    key[0] = 'u';
    memcpy(key + 1, uid, strlen(uid));
    store_batch_put(b, key, 1 + strlen(uid), "{}", 2);
    store_contract_lock(f->c);
    assert_int_equal(store_batch_commit(b, &err), BLOBD_OK);
    store_contract_unlock(f->c);
    store_batch_free(b);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct store_options opts;
    struct blobd_error err;

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_chat.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->plans = quota_plans_new_default();
    assert_non_null(f->plans);
    memset(&opts, 0, sizeof(opts));
    opts.data_dir = f->dir;
    opts.plans = f->plans;
    assert_int_equal(store_open(&f->st, &opts, &err), BLOBD_OK);
    assert_int_equal(store_contract_create(f->st, "acme", "ACME GmbH",
                                           "basic", 10, NULL, &err),
                     BLOBD_OK);
    assert_int_equal(store_contract_acquire(f->st, "acme", &f->c, &err),
                     BLOBD_OK);
    add_user(f, UID_A);
    add_user(f, UID_B);
    add_user(f, UID_C);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    if (f->st)
        fixture_close(f);
    quota_plans_free(f->plans);
    nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Store `text` as a blob uploaded by `uid` at `now_ms`. */
static void upload(struct fixture *f, const char *uid, const char *text,
                   int64_t now_ms, unsigned char digest[STORE_DIGEST_LEN])
{
    char path[512];
    struct store_upload up;
    struct store_blob blob;
    struct blobd_error err;
    bool created;
    int fd;
    size_t len = strlen(text);

    assert_int_equal(EVP_Digest(text, len, digest, NULL, EVP_sha256(), NULL),
                     1);
    assert_int_equal(store_tmp_create(f->c, &fd, path, sizeof(path), &err),
                     BLOBD_OK);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    memset(&up, 0, sizeof(up));
    up.tmp_path = path;
    up.tmp_fd = fd;
    memcpy(up.digest, digest, STORE_DIGEST_LEN);
    up.size = len;
    up.media_type = "text/plain";
    up.uploader = uid;
    up.now_ms = now_ms;
    assert_int_equal(store_blob_commit(f->c, &up, &blob, &created, &err),
                     BLOBD_OK);
    close(fd);
}

static uint64_t blob_refs(struct fixture *f, const unsigned char *digest)
{
    struct store_blob blob;
    struct blobd_error err;

    assert_int_equal(store_blob_get(f->c, digest, &blob, &err), BLOBD_OK);
    return blob.refs;
}

static bool blob_exists(struct fixture *f, const unsigned char *digest)
{
    struct store_blob blob;

    return store_blob_get(f->c, digest, &blob, NULL) == BLOBD_OK;
}

static void make_group(struct fixture *f, const char *name,
                       const char *const *members, size_t n,
                       char gid[CHAT_ID_LEN + 1])
{
    struct chat_group g;
    struct blobd_error err;

    assert_int_equal(chat_group_create(f->c, name, members, n, &g, &err),
                     BLOBD_OK);
    memcpy(gid, g.id, CHAT_ID_LEN + 1);
    chat_group_clear(&g);
}

/* Post a message; returns the error code, fills `out` when not NULL. */
static int post(struct fixture *f, const char *gid, const char *sender,
                const char *text, const unsigned char (*blobs)[32],
                size_t nblobs, struct chat_message *out)
{
    struct chat_attachment_ref refs[8];
    struct chat_post p = {
        .gid = gid, .sender = sender, .text = text,
        .text_len = strlen(text), .attachments = refs,
        .nattachments = nblobs, .max_text_bytes = MAX_TEXT,
    };
    struct chat_message m;
    struct blobd_error err;
    int rc;

    for (size_t i = 0; i < nblobs; i++) {
        memcpy(refs[i].blob, blobs[i], STORE_DIGEST_LEN);
        refs[i].filename = "file.txt";
    }
    rc = chat_message_post(f->c, &p, &m, &err);
    if (rc == BLOBD_OK && out)
        *out = m;
    else if (rc == BLOBD_OK)
        chat_message_clear(&m);
    return rc;
}

static uint64_t message_count(struct fixture *f)
{
    struct store_contract_info info;

    store_contract_info(f->c, &info);
    return info.message_count;
}

/* Run check_run with the store closed; returns problems, fills `out`. */
static int run_check(struct fixture *f, char *out, size_t size)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *report = open_memstream(&buf, &len);
    int problems;

    assert_non_null(report);
    fixture_close(f);
    problems = check_run(f->dir, f->plans, report);
    fclose(report);
    if (problems && buf)
        print_message("check report:\n%s", buf);
    snprintf(out, size, "%s", buf ? buf : "");
    free(buf);
    fixture_open(f);
    return problems;
}

static void test_refs_duplicate_attachment(void **state)
{
    struct fixture *f = *state;
    const char *members[] = { UID_A, UID_B };
    unsigned char d[2][32];
    struct chat_message m;
    struct blobd_error err;
    char gid[CHAT_ID_LEN + 1];

    upload(f, UID_A, "report body", store_now_ms(), d[0]);
    memcpy(d[1], d[0], 32);
    make_group(f, "team", members, 2, gid);
    assert_false(chat_blob_readable(f->c, UID_B, d[0]));

    assert_int_equal(post(f, gid, UID_A, "twice", d, 2, &m), BLOBD_OK);
    assert_int_equal(m.nattachments, 2);
    assert_int_equal(m.attachments[0].size, strlen("report body"));
    assert_string_equal(m.attachments[0].media_type, "text/plain");
    assert_int_equal(blob_refs(f, d[0]), 1);
    assert_true(chat_blob_readable(f->c, UID_B, d[0]));
    assert_false(chat_blob_readable(f->c, UID_C, d[0]));

    assert_int_equal(chat_message_delete(f->c, m.id, UID_A, false, &err),
                     BLOBD_OK);
    assert_int_equal(blob_refs(f, d[0]), 0);
    assert_false(chat_blob_readable(f->c, UID_B, d[0]));
    assert_int_equal(message_count(f), 0);
    chat_message_clear(&m);
}

static void test_delete_keeps_shared_blob(void **state)
{
    struct fixture *f = *state;
    const char *members[] = { UID_A, UID_B };
    unsigned char d[1][32];
    struct chat_message m1, m2;
    struct blobd_error err;
    char gid[CHAT_ID_LEN + 1];
    uint64_t blobs = 0, bytes = 0;
    int64_t now = store_now_ms();

    upload(f, UID_A, "shared", now, d[0]);
    make_group(f, "team", members, 2, gid);
    assert_int_equal(post(f, gid, UID_A, "first", d, 1, &m1), BLOBD_OK);
    /* B may forward what the group shows, without having uploaded it. */
    assert_int_equal(post(f, gid, UID_B, "again", d, 1, &m2), BLOBD_OK);
    assert_int_equal(blob_refs(f, d[0]), 2);

    /* Someone else's message: 403 for a member, allowed for an admin. */
    assert_int_equal(chat_message_delete(f->c, m1.id, UID_B, false, &err),
                     BLOBD_EFORBIDDEN);
    assert_int_equal(chat_message_delete(f->c, m1.id, UID_C, false, &err),
                     BLOBD_ENOTFOUND);
    assert_int_equal(chat_message_delete(f->c, m1.id, UID_C, true, &err),
                     BLOBD_OK);
    assert_int_equal(blob_refs(f, d[0]), 1);
    assert_true(chat_blob_readable(f->c, UID_B, d[0]));
    assert_int_equal(chat_sweep(f->c, now + 1000000, 0, &blobs, &bytes,
                                &err), BLOBD_OK);
    assert_int_equal(blobs, 0);
    assert_true(blob_exists(f, d[0]));

    assert_int_equal(chat_message_delete(f->c, m2.id, UID_B, false, &err),
                     BLOBD_OK);
    assert_false(chat_blob_readable(f->c, UID_B, d[0]));
    /* Unreferenced but inside the grace period: kept. */
    assert_int_equal(chat_sweep(f->c, now, 60, &blobs, &bytes, &err),
                     BLOBD_OK);
    assert_int_equal(blobs, 0);
    assert_true(blob_exists(f, d[0]));
    assert_int_equal(chat_sweep(f->c, now + 61000, 60, &blobs, &bytes,
                                &err), BLOBD_OK);
    assert_int_equal(blobs, 1);
    assert_int_equal(bytes, strlen("shared"));
    assert_false(blob_exists(f, d[0]));
    chat_message_clear(&m1);
    chat_message_clear(&m2);
}

static void test_post_rejects(void **state)
{
    struct fixture *f = *state;
    const char *members[] = { UID_A, UID_B };
    unsigned char d[1][32];
    char gid[CHAT_ID_LEN + 1];
    char *big = malloc(MAX_TEXT + 2);

    assert_non_null(big);
    memset(big, 'x', MAX_TEXT + 1);
    big[MAX_TEXT + 1] = '\0';
    make_group(f, "team", members, 2, gid);
    upload(f, UID_C, "private to C", store_now_ms(), d[0]);

    assert_int_equal(post(f, gid, UID_C, "not a member", NULL, 0, NULL),
                     BLOBD_ENOTFOUND);
    assert_int_equal(post(f, gid, UID_A, "not my blob", d, 1, NULL),
                     BLOBD_ENOTFOUND);
    assert_int_equal(post(f, gid, UID_A, big, NULL, 0, NULL),
                     BLOBD_ETOOLARGE);
    assert_int_equal(post(f, gid, UID_A, "", NULL, 0, NULL), BLOBD_EINVAL);
    big[MAX_TEXT] = '\0';
    assert_int_equal(post(f, gid, UID_A, big, NULL, 0, NULL), BLOBD_OK);
    assert_int_equal(message_count(f), 1);
    free(big);
}

static void test_group_unknown_member(void **state)
{
    struct fixture *f = *state;
    const char *members[] = { UID_A, "dddddddddddddddddddddddddddddddd" };
    struct chat_group g;
    struct blobd_error err;

    assert_int_equal(chat_group_create(f->c, "team", members, 2, &g, &err),
                     BLOBD_EINVAL);
    assert_non_null(strstr(err.message, "dddddddd"));
    assert_int_equal(chat_group_create(f->c, "", members, 1, &g, &err),
                     BLOBD_EINVAL);
}

static void test_rights_after_membership_change(void **state)
{
    struct fixture *f = *state;
    const char *both[] = { UID_A, UID_B };
    const char *only_a[] = { UID_A };
    unsigned char d[1][32];
    struct chat_page page;
    struct chat_group *groups;
    struct blobd_error err;
    char gid[CHAT_ID_LEN + 1];
    size_t n;

    upload(f, UID_A, "plan", store_now_ms(), d[0]);
    make_group(f, "team", both, 2, gid);
    assert_int_equal(post(f, gid, UID_A, "see plan", d, 1, NULL), BLOBD_OK);
    assert_true(chat_blob_readable(f->c, UID_B, d[0]));

    assert_int_equal(chat_group_set_members(f->c, gid, only_a, 1, NULL,
                                            &err), BLOBD_OK);
    assert_false(chat_blob_readable(f->c, UID_B, d[0]));
    assert_true(chat_blob_readable(f->c, UID_A, d[0]));
    assert_int_equal(chat_history(f->c, gid, UID_B, UINT64_MAX, 50, &page,
                                  &err), BLOBD_ENOTFOUND);
    assert_int_equal(post(f, gid, UID_B, "still here?", NULL, 0, NULL),
                     BLOBD_ENOTFOUND);
    assert_int_equal(chat_groups_list(f->c, UID_B, &groups, &n, &err),
                     BLOBD_OK);
    assert_int_equal(n, 0);
    chat_groups_free(groups, n);

    assert_int_equal(chat_group_set_members(f->c, gid, both, 2, NULL, &err),
                     BLOBD_OK);
    assert_true(chat_blob_readable(f->c, UID_B, d[0]));
    assert_int_equal(chat_history(f->c, gid, UID_B, UINT64_MAX, 50, &page,
                                  &err), BLOBD_OK);
    assert_int_equal(page.nmessages, 1);
    chat_page_clear(&page);
}

static void test_history_pages(void **state)
{
    struct fixture *f = *state;
    const char *members[] = { UID_A };
    struct chat_message m[5];
    struct chat_page page;
    struct blobd_error err;
    char gid[CHAT_ID_LEN + 1];

    make_group(f, "solo", members, 1, gid);
    for (int i = 0; i < 5; i++)
        assert_int_equal(post(f, gid, UID_A, "x", NULL, 0, &m[i]), BLOBD_OK);
    for (int i = 1; i < 5; i++) {
        assert_true(m[i].seq > m[i - 1].seq);
        assert_true(m[i].sent_at_ms >= m[i - 1].sent_at_ms);
    }
    assert_int_equal(chat_history(f->c, gid, UID_A, UINT64_MAX, 2, &page,
                                  &err), BLOBD_OK);
    assert_int_equal(page.nmessages, 2);
    assert_int_equal(page.messages[0].seq, m[4].seq);
    assert_int_equal(page.messages[1].seq, m[3].seq);
    assert_true(page.more);
    chat_page_clear(&page);
    assert_int_equal(chat_history(f->c, gid, UID_A, m[1].seq, 2, &page,
                                  &err), BLOBD_OK);
    assert_int_equal(page.nmessages, 1);
    assert_int_equal(page.messages[0].seq, m[0].seq);
    assert_false(page.more);
    chat_page_clear(&page);
    for (int i = 0; i < 5; i++)
        chat_message_clear(&m[i]);
}

static void test_sync_order(void **state)
{
    struct fixture *f = *state;
    const char *ab[] = { UID_A, UID_B };
    const char *ac[] = { UID_A, UID_C };
    struct chat_message m[4];
    struct chat_sync s;
    struct blobd_error err;
    char g1[CHAT_ID_LEN + 1], g2[CHAT_ID_LEN + 1];
    struct chat_purge_result pr;

    make_group(f, "ab", ab, 2, g1);
    make_group(f, "ac", ac, 2, g2);
    assert_int_equal(post(f, g1, UID_A, "1", NULL, 0, &m[0]), BLOBD_OK);
    assert_int_equal(post(f, g2, UID_A, "2", NULL, 0, &m[1]), BLOBD_OK);
    assert_int_equal(post(f, g1, UID_B, "3", NULL, 0, &m[2]), BLOBD_OK);
    assert_int_equal(post(f, g2, UID_C, "4", NULL, 0, &m[3]), BLOBD_OK);

    /* A gets both groups, oldest first, in pages of 3. */
    assert_int_equal(chat_sync(f->c, UID_A, 0, 3, &s, &err), BLOBD_OK);
    assert_int_equal(s.page.nmessages, 3);
    assert_int_equal(s.page.messages[0].seq, m[0].seq);
    assert_int_equal(s.page.messages[1].seq, m[1].seq);
    assert_int_equal(s.page.messages[2].seq, m[2].seq);
    assert_int_equal(s.next_since, m[2].seq);
    assert_true(s.changed);
    assert_false(s.purged);
    chat_sync_clear(&s);
    assert_int_equal(chat_sync(f->c, UID_A, m[2].seq, 3, &s, &err),
                     BLOBD_OK);
    assert_int_equal(s.page.nmessages, 1);
    assert_int_equal(s.page.messages[0].seq, m[3].seq);
    assert_int_equal(s.next_since, m[3].seq);
    chat_sync_clear(&s);

    /* B gets only g1, and nothing is new after the last seq. */
    assert_int_equal(chat_sync(f->c, UID_B, 0, 100, &s, &err), BLOBD_OK);
    assert_int_equal(s.page.nmessages, 2);
    assert_string_equal(s.page.messages[1].text, "3");
    /* Events of groups B is not in do not move next_since. */
    assert_int_equal(s.next_since, m[2].seq);
    chat_sync_clear(&s);
    assert_int_equal(chat_sync(f->c, UID_B, m[3].seq, 100, &s, &err),
                     BLOBD_OK);
    assert_false(s.changed);
    assert_int_equal(s.next_since, m[3].seq);
    assert_int_equal(s.seen_seq, m[3].seq);
    chat_sync_clear(&s);

    /* A deletion in g2 reaches A and C, not B. */
    assert_int_equal(chat_message_delete(f->c, m[1].id, UID_A, false, &err),
                     BLOBD_OK);
    assert_int_equal(chat_sync(f->c, UID_B, m[3].seq, 100, &s, &err),
                     BLOBD_OK);
    assert_int_equal(s.ndeleted, 0);
    assert_false(s.changed);
    chat_sync_clear(&s);
    assert_int_equal(chat_sync(f->c, UID_C, m[3].seq, 100, &s, &err),
                     BLOBD_OK);
    assert_int_equal(s.ndeleted, 1);
    assert_string_equal(s.deleted[0], m[1].id);
    assert_int_equal(s.next_since, m[3].seq + 1);
    chat_sync_clear(&s);

    /* A purge takes a seq and sets purged_before for everyone. */
    assert_int_equal(chat_purge(f->c, 1000, false, &pr, &err), BLOBD_OK);
    assert_int_equal(pr.messages_deleted, 0);
    assert_int_equal(chat_sync(f->c, UID_B, m[3].seq + 1, 100, &s, &err),
                     BLOBD_OK);
    assert_true(s.changed);
    assert_true(s.purged);
    assert_int_equal(s.purged_before_ms, 1000);
    assert_int_equal(s.next_since, m[3].seq + 2);
    chat_sync_clear(&s);
    for (int i = 0; i < 4; i++)
        chat_message_clear(&m[i]);
}

static void test_group_delete(void **state)
{
    struct fixture *f = *state;
    const char *ab[] = { UID_A, UID_B };
    unsigned char d[1][32];
    struct chat_message m[3];
    struct chat_sync s;
    struct chat_group g;
    struct blobd_error err;
    char gid[CHAT_ID_LEN + 1];
    char report[4096];

    upload(f, UID_A, "doc", store_now_ms(), d[0]);
    make_group(f, "ab", ab, 2, gid);
    for (int i = 0; i < 3; i++)
        assert_int_equal(post(f, gid, UID_A, "m", d, 1, &m[i]), BLOBD_OK);
    assert_int_equal(blob_refs(f, d[0]), 3);

    assert_int_equal(chat_group_delete(f->c, gid, &err), BLOBD_OK);
    assert_int_equal(chat_group_get(f->c, gid, &g, &err), BLOBD_ENOTFOUND);
    assert_int_equal(chat_group_delete(f->c, gid, &err), BLOBD_ENOTFOUND);
    assert_int_equal(blob_refs(f, d[0]), 0);
    assert_false(chat_blob_readable(f->c, UID_B, d[0]));
    assert_int_equal(message_count(f), 0);

    /* Former members still learn of the deletions; others do not. */
    assert_int_equal(chat_sync(f->c, UID_B, m[2].seq, 100, &s, &err),
                     BLOBD_OK);
    assert_int_equal(s.ndeleted, 3);
    chat_sync_clear(&s);
    assert_int_equal(chat_sync(f->c, UID_C, m[2].seq, 100, &s, &err),
                     BLOBD_OK);
    assert_int_equal(s.ndeleted, 0);
    chat_sync_clear(&s);
    assert_int_equal(run_check(f, report, sizeof(report)), 0);
    for (int i = 0; i < 3; i++)
        chat_message_clear(&m[i]);
}

/* Wait until the clock has passed `ms`, so later posts are sent after it. */
static void wait_past(int64_t ms)
{
    while (store_now_ms() <= ms)
        usleep(1000);
}

static void test_purge_dry_run_equals_real(void **state)
{
    struct fixture *f = *state;
    const char *ab[] = { UID_A, UID_B };
    unsigned char old_only[1][32], shared[1][32], idle[32], fresh[1][32];
    struct chat_purge_result dry, real, again;
    struct store_contract_info before_info, after_info;
    struct blobd_error err;
    char gid[CHAT_ID_LEN + 1];
    char report[4096];
    int64_t t0 = store_now_ms(), cut;

    make_group(f, "ab", ab, 2, gid);
    upload(f, UID_A, "old only", t0, old_only[0]);
    upload(f, UID_A, "shared old and new", t0, shared[0]);
    upload(f, UID_A, "never attached", t0, idle);
    assert_int_equal(post(f, gid, UID_A, "old 1", old_only, 1, NULL),
                     BLOBD_OK);
    assert_int_equal(post(f, gid, UID_A, "old 2", old_only, 1, NULL),
                     BLOBD_OK);
    assert_int_equal(post(f, gid, UID_A, "old 3", shared, 1, NULL), BLOBD_OK);
    cut = store_now_ms() + 1;
    wait_past(cut);
    upload(f, UID_B, "uploaded after the date", store_now_ms(), fresh[0]);
    assert_int_equal(post(f, gid, UID_B, "new 1", shared, 1, NULL), BLOBD_OK);
    assert_int_equal(post(f, gid, UID_B, "new 2", fresh, 1, NULL), BLOBD_OK);

    store_contract_info(f->c, &before_info);
    assert_int_equal(chat_purge(f->c, cut, true, &dry, &err), BLOBD_OK);
    assert_int_equal(dry.messages_deleted, 3);
    assert_int_equal(dry.blobs_deleted, 2);      /* old only, never attached */
    assert_int_equal(dry.bytes_freed,
                     strlen("old only") + strlen("never attached"));
    store_contract_info(f->c, &after_info);
    assert_int_equal(after_info.message_count, before_info.message_count);
    assert_int_equal(after_info.used_bytes, before_info.used_bytes);

    assert_int_equal(chat_purge(f->c, cut, false, &real, &err), BLOBD_OK);
    assert_int_equal(real.messages_deleted, dry.messages_deleted);
    assert_int_equal(real.blobs_deleted, dry.blobs_deleted);
    assert_int_equal(real.bytes_freed, dry.bytes_freed);
    store_contract_info(f->c, &after_info);
    assert_int_equal(after_info.message_count, 2);
    assert_int_equal(after_info.used_bytes,
                     before_info.used_bytes - real.bytes_freed);
    assert_false(blob_exists(f, old_only[0]));
    assert_false(blob_exists(f, idle));
    assert_int_equal(blob_refs(f, shared[0]), 1);
    assert_int_equal(blob_refs(f, fresh[0]), 1);

    assert_int_equal(chat_purge(f->c, cut, true, &again, &err), BLOBD_OK);
    assert_int_equal(again.messages_deleted, 0);
    assert_int_equal(again.blobs_deleted, 0);
    assert_int_equal(run_check(f, report, sizeof(report)), 0);
}

static void test_purge_in_batches(void **state)
{
    struct fixture *f = *state;
    const char *ab[] = { UID_A, UID_B };
    unsigned char d[3][32];
    struct chat_purge_result dry, real;
    struct chat_page page;
    struct blobd_error err;
    char gid[CHAT_ID_LEN + 1];
    char report[4096];
    const int n = 2 * CHAT_BATCH + 150;
    int64_t cut;

    make_group(f, "ab", ab, 2, gid);
    upload(f, UID_A, "blob zero", store_now_ms(), d[0]);
    upload(f, UID_A, "blob one", store_now_ms(), d[1]);
    upload(f, UID_A, "blob two", store_now_ms(), d[2]);
    for (int i = 0; i < n; i++)
        assert_int_equal(post(f, gid, UID_A, "bulk", &d[i % 3], 1, NULL),
                         BLOBD_OK);
    cut = store_now_ms() + 1;
    wait_past(cut);
    assert_int_equal(post(f, gid, UID_A, "kept", &d[0], 1, NULL), BLOBD_OK);
    assert_int_equal(message_count(f), (uint64_t)n + 1);

    assert_int_equal(chat_purge(f->c, cut, true, &dry, &err), BLOBD_OK);
    assert_int_equal(dry.messages_deleted, n);
    assert_int_equal(dry.blobs_deleted, 2);
    assert_int_equal(chat_purge(f->c, cut, false, &real, &err), BLOBD_OK);
    assert_int_equal(real.messages_deleted, n);
    assert_int_equal(real.blobs_deleted, 2);
    assert_int_equal(real.bytes_freed, dry.bytes_freed);
    assert_int_equal(message_count(f), 1);
    assert_int_equal(blob_refs(f, d[0]), 1);
    assert_int_equal(chat_history(f->c, gid, UID_B, UINT64_MAX, 10, &page,
                                  &err), BLOBD_OK);
    assert_int_equal(page.nmessages, 1);
    assert_string_equal(page.messages[0].text, "kept");
    chat_page_clear(&page);
    assert_int_equal(run_check(f, report, sizeof(report)), 0);
}

static void test_check_finds_faults(void **state)
{
    struct fixture *f = *state;
    const char *ab[] = { UID_A, UID_B };
    unsigned char d[2][32];
    char gid[CHAT_ID_LEN + 1], hex[65], path[512], key[64];
    char report[4096];
    unsigned char val[8];
    struct store_batch *b;
    struct blobd_error err;

    make_group(f, "ab", ab, 2, gid);
    upload(f, UID_A, "first file", store_now_ms(), d[0]);
    upload(f, UID_A, "second file", store_now_ms(), d[1]);
    assert_int_equal(post(f, gid, UID_A, "both", d, 2, NULL), BLOBD_OK);
    assert_int_equal(run_check(f, report, sizeof(report)), 0);
    assert_string_equal(report, "");

    /* A rights counter off by one. */
    key[0] = 'r';
    memcpy(key + 1, d[0], 32);
    memcpy(key + 33, gid, CHAT_ID_LEN);
    memset(val, 0, sizeof(val));
    val[7] = 2;
    b = store_batch_new(f->c);
    store_batch_put(b, key, 1 + 32 + CHAT_ID_LEN, val, sizeof(val));
    store_contract_lock(f->c);
    assert_int_equal(store_batch_commit(b, &err), BLOBD_OK);
    store_contract_unlock(f->c);
    store_batch_free(b);
    assert_int_equal(run_check(f, report, sizeof(report)), 1);
    assert_non_null(strstr(report, "rights counter 2"));

    /* A blob file removed. */
    store_digest_hex(d[1], hex);
    snprintf(path, sizeof(path), "%s/contracts/acme/blobs/%.2s/%.2s/%s",
             f->dir, hex, hex + 2, hex);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(run_check(f, report, sizeof(report)), 2);
    assert_non_null(strstr(report, "file missing"));
}

/* A group deletion cut short after its first batch: the sweep ends it. */
static void test_sweep_resumes_group_delete(void **state)
{
    struct fixture *f = *state;
    const char *ab[] = { UID_A, UID_B };
    unsigned char d[1][32];
    struct chat_group_rec rec;
    struct store_batch *b;
    struct blobd_error err;
    char gid[CHAT_ID_LEN + 1], key[CHAT_KEY_MAX], report[4096];
    uint64_t blobs = 0, bytes = 0;
    size_t vlen;
    char *val;

    upload(f, UID_A, "doc", store_now_ms(), d[0]);
    make_group(f, "ab", ab, 2, gid);
    for (int i = 0; i < 3; i++)
        assert_int_equal(post(f, gid, UID_A, "m", d, 1, NULL), BLOBD_OK);

    /* What chat_group_delete commits first, without the later batches. */
    assert_int_equal(chat_group_load(f->c, gid, &rec, &err), BLOBD_OK);
    val = chat_group_encode(&rec.g, true, &vlen);
    b = store_batch_new(f->c);
    store_batch_put(b, key, chat_key_group(key, gid), val, vlen);
    for (size_t i = 0; i < rec.g.nmembers; i++)
        store_batch_delete(b, key, chat_key_member(key, rec.g.members[i],
                                                   gid));
    store_batch_put(b, key, chat_key_pending(key, gid), "", 0);
    store_contract_lock(f->c);
    assert_int_equal(store_batch_commit(b, &err), BLOBD_OK);
    store_contract_unlock(f->c);
    store_batch_free(b);
    free(val);
    chat_group_clear(&rec.g);

    assert_false(chat_blob_readable(f->c, UID_B, d[0]));
    assert_int_equal(message_count(f), 3);
    assert_int_equal(chat_sweep(f->c, store_now_ms(), 3600, &blobs, &bytes,
                                &err), BLOBD_OK);
    assert_int_equal(message_count(f), 0);
    assert_int_equal(blob_refs(f, d[0]), 0);
    assert_false(store_exists(f->c, key, chat_key_pending(key, gid)));
    assert_int_equal(run_check(f, report, sizeof(report)), 0);
}

struct poster {
    struct fixture *f;
    const char *uid;
    const char *gid;
    const unsigned char (*blob)[32];
    int deleted;
};

/* Post 60 messages with the shared blob and delete every other one. */
static void *poster_run(void *arg)
{
    struct poster *p = arg;
    struct blobd_error err;

    for (int i = 0; i < 60; i++) {
        struct chat_message m;

        if (post(p->f, p->gid, p->uid, "busy", p->blob, 1, &m) != BLOBD_OK)
            return NULL;
        if (i % 2 == 0 &&
            chat_message_delete(p->f->c, m.id, p->uid, false, &err) ==
                BLOBD_OK)
            p->deleted++;
        chat_message_clear(&m);
    }
    return NULL;
}

static void test_concurrent_posts_count(void **state)
{
    struct fixture *f = *state;
    const char *abc[] = { UID_A, UID_B, UID_C };
    const char *uids[] = { UID_A, UID_B, UID_C };
    unsigned char d[1][32];
    struct poster posters[3];
    pthread_t threads[3];
    struct chat_sync s;
    struct blobd_error err;
    char gid[CHAT_ID_LEN + 1];
    char report[4096];

    make_group(f, "abc", abc, 3, gid);
    upload(f, UID_A, "everyone's", store_now_ms(), d[0]);
    assert_int_equal(post(f, gid, UID_A, "seed", d, 1, NULL), BLOBD_OK);
    for (int i = 0; i < 3; i++) {
        posters[i] = (struct poster){ .f = f, .uid = uids[i], .gid = gid,
                                      .blob = d };
        assert_int_equal(pthread_create(&threads[i], NULL, poster_run,
                                        &posters[i]), 0);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(posters[i].deleted, 30);

    assert_int_equal(message_count(f), 1 + 3 * 30);
    assert_int_equal(blob_refs(f, d[0]), 1 + 3 * 30);
    assert_int_equal(chat_sync(f->c, UID_B, 0, CHAT_PAGE_MAX, &s, &err),
                     BLOBD_OK);
    assert_int_equal(s.page.nmessages, 1 + 3 * 30);
    assert_int_equal(s.ndeleted, 3 * 30);
    for (size_t i = 1; i < s.page.nmessages; i++)
        assert_true(s.page.messages[i].seq > s.page.messages[i - 1].seq);
    chat_sync_clear(&s);
    assert_int_equal(run_check(f, report, sizeof(report)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_refs_duplicate_attachment,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_keeps_shared_blob,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_unknown_member, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rights_after_membership_change,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge_dry_run_equals_real,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge_in_batches, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_check_finds_faults, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_posts_count, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sweep_resumes_group_delete,
                                        setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

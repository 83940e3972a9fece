/*
 * Tests of the accounts module against a real store in a temporary
 * directory: users, logins, chat code revocation, expiry, idle sessions,
 * the login rate limiter and its memory bound. Times are passed in, so
 * windows and idle limits are tested without waiting.
 */
#include <ftw.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "accounts.h"
#include "accounts_int.h"
#include "quota.h"
#include "store.h"

#define DAY_MS (24 * 60 * 60 * 1000LL)
#define T0 1767225600000LL       /* 2026-01-01T00:00:00Z */
#define IDLE_DAYS 90

struct fixture {
    char dir[64];
    struct quota_plans *plans;
    struct store *st;
    struct store_contract *c;
    struct accounts *acc;
};

struct login_result {
    int rc;
    struct blobd_error err;
    char token[ACCOUNTS_TOKEN_SIZE];
    char uid[ACCOUNTS_UID_LEN + 1];
};

static int remove_entry(const char *path, const struct stat *sb, int flag,
                        struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct store_options opts;
    struct blobd_error err;

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_accounts.XXXXXX");
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
    assert_int_equal(store_contract_create(f->st, "other", "Other AG",
                                           "basic", 10, NULL, &err),
                     BLOBD_OK);
    assert_int_equal(store_contract_acquire(f->st, "acme", &f->c, &err),
                     BLOBD_OK);
    assert_int_equal(accounts_open(&f->acc, &err), BLOBD_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    accounts_close(f->acc);
    store_contract_release(f->c);
    store_close(f->st);
    quota_plans_free(f->plans);
    nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void create_user(struct fixture *f, const char *name,
                        const char *password, bool admin,
                        struct accounts_user *user,
                        char code[ACCOUNTS_CHAT_CODE_LEN + 1])
{
    struct blobd_error err;

    assert_int_equal(accounts_user_create(f->c, name, password,
                                          strlen(password), admin, false, 0,
                                          T0, user, code, &err),
                     BLOBD_OK);
}

static struct login_result login_at(struct fixture *f, const char *cid,
                                    const char *name, const char *password,
                                    const char *code, const char *addr,
                                    int64_t now_ms)
{
    struct login_result r;
    struct accounts_login in = {
        .contract = cid,
        .username = name,
        .password = password,
        .password_len = strlen(password),
        .chat_code = code,
        .device = "phone",
        .client_addr = addr,
    };

    memset(&r, 0, sizeof(r));
    r.rc = accounts_login(f->acc, f->st, &in, now_ms, r.token, r.uid,
                          &r.err);
    return r;
}

/* Authenticate `token`, releasing the contract on success. */
static int auth_at(struct fixture *f, const char *token, int64_t now_ms,
                   struct accounts_session *out)
{
    struct accounts_session session;
    struct store_contract *c = NULL;
    struct blobd_error err;
    int rc = accounts_session_auth(f->acc, f->st, token, now_ms, IDLE_DAYS,
                                   &c, out ? out : &session, &err);

    if (rc == BLOBD_OK) {
        assert_ptr_equal(c, f->c);
        store_contract_release(c);
    } else {
        assert_null(c);
    }
    return rc;
}

static bool is_chat_code(const char *code)
{
    if (strlen(code) != ACCOUNTS_CHAT_CODE_LEN)
        return false;
    for (const char *p = code; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            return false;
    return true;
}

static void test_user_create_fields(void **state)
{
    struct fixture *f = *state;
    struct accounts_user user, got;
    char code[ACCOUNTS_CHAT_CODE_LEN + 1];
    struct blobd_error err;

    create_user(f, "anna", "secret", false, &user, code);
    assert_true(accounts_uid_valid(user.id));
    assert_string_equal(user.username, "anna");
    assert_false(user.admin);
    assert_false(user.has_valid_until);
    assert_true(is_chat_code(code));

    assert_int_equal(accounts_user_get(f->c, user.id, &got, &err), BLOBD_OK);
    assert_string_equal(got.username, "anna");
    assert_int_equal(got.created_ms, T0);
    assert_int_equal(accounts_user_exists(f->c, user.id), 1);
    assert_int_equal(accounts_user_exists(f->c, "0123456789abcdef"), 0);
    assert_int_equal(accounts_user_exists(f->c, "not-a-uid"), 0);
    assert_int_equal(accounts_user_get(f->c, "0123456789abcdef", &got, &err),
                     BLOBD_ENOTFOUND);
}

static void test_user_create_rejects(void **state)
{
    struct fixture *f = *state;
    struct accounts_user user;
    char code[ACCOUNTS_CHAT_CODE_LEN + 1];
    char long_password[ACCOUNTS_PASSWORD_MAX + 2];
    char long_name[ACCOUNTS_USERNAME_MAX + 2];
    struct blobd_error err;

    create_user(f, "anna", "secret", false, &user, code);
    assert_int_equal(accounts_user_create(f->c, "Anna", "x", 1, false, false,
                                          0, T0, &user, code, &err),
                     BLOBD_ECONFLICT);
    assert_int_equal(accounts_user_create(f->c, "a b", "x", 1, false, false,
                                          0, T0, &user, code, &err),
                     BLOBD_EINVAL);
    assert_non_null(strstr(err.message, "username"));
    assert_int_equal(accounts_user_create(f->c, "", "x", 1, false, false, 0,
                                          T0, &user, code, &err),
                     BLOBD_EINVAL);
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    assert_int_equal(accounts_user_create(f->c, long_name, "x", 1, false,
                                          false, 0, T0, &user, code, &err),
                     BLOBD_EINVAL);
    assert_int_equal(accounts_user_create(f->c, "bob", "", 0, false, false,
                                          0, T0, &user, code, &err),
                     BLOBD_EINVAL);
    assert_non_null(strstr(err.message, "password"));
    memset(long_password, 'p', sizeof(long_password) - 1);
    long_password[sizeof(long_password) - 1] = '\0';
    assert_int_equal(accounts_user_create(f->c, "bob", long_password,
                                          strlen(long_password), false,
                                          false, 0, T0, &user, code, &err),
                     BLOBD_EINVAL);
    assert_non_null(strstr(err.message, "password"));
}

static void test_user_list_sorted(void **state)
{
    struct fixture *f = *state;
    struct accounts_user user, *users = NULL;
    char code[ACCOUNTS_CHAT_CODE_LEN + 1];
    struct blobd_error err;
    size_t count = 0;

    create_user(f, "carl", "pw", false, &user, code);
    create_user(f, "Bob", "pw", true, &user, code);
    create_user(f, "anna", "pw", false, &user, code);
    assert_int_equal(accounts_user_list(f->c, &users, &count, &err),
                     BLOBD_OK);
    assert_int_equal(count, 3);
    assert_string_equal(users[0].username, "Bob");
    assert_true(users[0].admin);
    assert_string_equal(users[1].username, "anna");
    assert_string_equal(users[2].username, "carl");
    free(users);
}

static void test_login_and_auth(void **state)
{
    struct fixture *f = *state;
    struct accounts_user user;
    struct accounts_session session;
    char code[ACCOUNTS_CHAT_CODE_LEN + 1];
    struct login_result r;

    create_user(f, "anna", "secret", true, &user, code);
    r = login_at(f, "acme", "anna", "secret", code, "10.0.0.1", T0);
    assert_int_equal(r.rc, BLOBD_OK);
    assert_string_equal(r.uid, user.id);
    assert_int_equal(strncmp(r.token, "acme.", 5), 0);
    assert_int_equal(strlen(r.token), 5 + 64);

    assert_int_equal(auth_at(f, r.token, T0 + 1000, &session), BLOBD_OK);
    assert_string_equal(session.uid, user.id);
    assert_true(session.admin);
    assert_int_equal(session.valid_until_ms, 0);
    assert_int_equal(strlen(session.session_id), 64);

    /* Usernames match without regard to case; chat codes too. */
    for (char *p = code; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    r = login_at(f, "acme", "ANNA", "secret", code, "10.0.0.1", T0);
    assert_int_equal(r.rc, BLOBD_OK);
}

static void test_login_failures_alike(void **state)
{
    struct fixture *f = *state;
    struct accounts_user user;
    char code[ACCOUNTS_CHAT_CODE_LEN + 1];
    char wrong_code[ACCOUNTS_CHAT_CODE_LEN + 1];
    struct login_result cases[6];

    create_user(f, "anna", "secret", false, &user, code);
    memcpy(wrong_code, code, sizeof(code));
    wrong_code[0] = code[0] == 'A' ? 'B' : 'A';

    cases[0] = login_at(f, "acme", "anna", "wrong", code, "a", T0);
    cases[1] = login_at(f, "acme", "anna", "secret", wrong_code, "a", T0);
    cases[2] = login_at(f, "acme", "nobody", "secret", code, "a", T0);
    cases[3] = login_at(f, "nosuch", "anna", "secret", code, "a", T0);
    cases[4] = login_at(f, "other", "anna", "secret", code, "a", T0);
    cases[5] = login_at(f, "Bad Id!", "anna", "secret", code, "a", T0);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(cases[i].rc, BLOBD_EUNAUTH);
        assert_string_equal(cases[i].err.message, cases[0].err.message);
    }
}

static void test_token_malformed(void **state)
{
    struct fixture *f = *state;
    const char *hex = "00112233445566778899aabbccddeeff"
                      "00112233445566778899aabbccddeeff";
    char token[ACCOUNTS_TOKEN_SIZE + 8];

    assert_int_equal(auth_at(f, "", T0, NULL), BLOBD_EUNAUTH);
    assert_int_equal(auth_at(f, "acme", T0, NULL), BLOBD_EUNAUTH);
    assert_int_equal(auth_at(f, "acme.1234", T0, NULL), BLOBD_EUNAUTH);
    snprintf(token, sizeof(token), "ACME.%s", hex);
    assert_int_equal(auth_at(f, token, T0, NULL), BLOBD_EUNAUTH);
    snprintf(token, sizeof(token), "nosuch.%s", hex);
    assert_int_equal(auth_at(f, token, T0, NULL), BLOBD_EUNAUTH);
    snprintf(token, sizeof(token), "acme.%s", hex);
    assert_int_equal(auth_at(f, token, T0, NULL), BLOBD_EUNAUTH);
}

static void test_chat_code_revokes(void **state)
{
    struct fixture *f = *state;
    struct accounts_user user;
    char code[ACCOUNTS_CHAT_CODE_LEN + 1];
    char new_code[ACCOUNTS_CHAT_CODE_LEN + 1];
    struct blobd_error err;
    struct login_result old_session, r;

    create_user(f, "anna", "secret", false, &user, code);
    old_session = login_at(f, "acme", "anna", "secret", code, "a", T0);
    assert_int_equal(old_session.rc, BLOBD_OK);

    assert_int_equal(accounts_chat_code_replace(f->c, user.id, new_code,
                                                &err),
                     BLOBD_OK);
    assert_true(is_chat_code(new_code));
    assert_int_equal(auth_at(f, old_session.token, T0 + 1, NULL),
                     BLOBD_EREVOKED);
    /* Still revoked on every later request, not just once. */
    assert_int_equal(auth_at(f, old_session.token, T0 + 2, NULL),
                     BLOBD_EREVOKED);

    r = login_at(f, "acme", "anna", "secret", code, "a", T0 + 3);
    assert_int_equal(r.rc, BLOBD_EUNAUTH);
    r = login_at(f, "acme", "anna", "secret", new_code, "a", T0 + 4);
    assert_int_equal(r.rc, BLOBD_OK);
    assert_int_equal(auth_at(f, r.token, T0 + 5, NULL), BLOBD_OK);

    assert_int_equal(accounts_chat_code_replace(f->c, "0123456789abcdef",
                                                new_code, &err),
                     BLOBD_ENOTFOUND);
}

static void test_user_expiry(void **state)
{
    struct fixture *f = *state;
    struct accounts_user user;
    struct accounts_user_patch patch;
    struct accounts_session session;
    char code[ACCOUNTS_CHAT_CODE_LEN + 1];
    struct blobd_error err;
    struct login_result r;
    int64_t end = T0 + 60000;

    assert_int_equal(accounts_user_create(f->c, "anna", "secret", 6, false,
                                          true, end, T0, &user, code, &err),
                     BLOBD_OK);
    assert_true(user.has_valid_until);
    assert_int_equal(user.valid_until_ms, end);

    r = login_at(f, "acme", "anna", "secret", code, "a", T0);
    assert_int_equal(r.rc, BLOBD_OK);
    assert_int_equal(auth_at(f, r.token, end - 1, &session), BLOBD_OK);
    assert_int_equal(session.valid_until_ms, end);
    assert_int_equal(accounts_user_check(f->c, user.id, end - 1, &err),
                     BLOBD_OK);

    assert_int_equal(auth_at(f, r.token, end, NULL), BLOBD_EEXPIRED);
    assert_int_equal(accounts_user_check(f->c, user.id, end, &err),
                     BLOBD_EEXPIRED);
    /* Only a login with all three parts right learns of the expiry. */
    assert_int_equal(login_at(f, "acme", "anna", "secret", code, "a",
                              end).rc, BLOBD_EEXPIRED);
    assert_int_equal(login_at(f, "acme", "anna", "wrong", code, "a",
                              end).rc, BLOBD_EUNAUTH);

    memset(&patch, 0, sizeof(patch));
    patch.set_valid_until = true;
    patch.has_valid_until = false;
    assert_int_equal(accounts_user_update(f->c, user.id, &patch, &user,
                                          &err),
                     BLOBD_OK);
    assert_false(user.has_valid_until);
    assert_int_equal(auth_at(f, r.token, end + 1, NULL), BLOBD_OK);
    assert_int_equal(accounts_user_check(f->c, "0123456789abcdef", end,
                                         &err),
                     BLOBD_EUNAUTH);
}

static void test_session_idle(void **state)
{
    struct fixture *f = *state;
    struct accounts_user user;
    char code[ACCOUNTS_CHAT_CODE_LEN + 1];
    struct login_result r;

    create_user(f, "anna", "secret", false, &user, code);
    r = login_at(f, "acme", "anna", "secret", code, "a", T0);
    assert_int_equal(r.rc, BLOBD_OK);

    /* Each use within the idle limit moves it on: 140 days after the
     * login is fine after a use on day 60. */
    assert_int_equal(auth_at(f, r.token, T0 + 60 * DAY_MS, NULL), BLOBD_OK);
    assert_int_equal(auth_at(f, r.token, T0 + 140 * DAY_MS, NULL),
                     BLOBD_OK);
    assert_int_equal(auth_at(f, r.token,
                             T0 + (140 + IDLE_DAYS) * DAY_MS + 1, NULL),
                     BLOBD_EUNAUTH);
    /* Deleted: an earlier time does not bring it back. */
    assert_int_equal(auth_at(f, r.token, T0 + 141 * DAY_MS, NULL),
                     BLOBD_EUNAUTH);
}

static void test_session_touch_hourly(void **state)
{
    struct fixture *f = *state;
    struct accounts_user user;
    char code[ACCOUNTS_CHAT_CODE_LEN + 1];
    struct login_result r;
    int64_t hour = 60 * 60 * 1000;

    create_user(f, "anna", "secret", false, &user, code);
    r = login_at(f, "acme", "anna", "secret", code, "a", T0);
    assert_int_equal(r.rc, BLOBD_OK);

    /* A use within the first hour writes nothing, so idleness still
     * counts from the login. */
    assert_int_equal(auth_at(f, r.token, T0 + hour - 1, NULL), BLOBD_OK);
    assert_int_equal(auth_at(f, r.token,
                             T0 + IDLE_DAYS * DAY_MS + hour / 2, NULL),
                     BLOBD_EUNAUTH);

    r = login_at(f, "acme", "anna", "secret", code, "a", T0);
    assert_int_equal(r.rc, BLOBD_OK);
    assert_int_equal(auth_at(f, r.token, T0 + hour, NULL), BLOBD_OK);
    assert_int_equal(auth_at(f, r.token,
                             T0 + IDLE_DAYS * DAY_MS + hour / 2, NULL),
                     BLOBD_OK);
}

static void test_logout(void **state)
{
    struct fixture *f = *state;
    struct accounts_user user;
    struct accounts_session session;
    char code[ACCOUNTS_CHAT_CODE_LEN + 1];
    struct blobd_error err;
    struct login_result r, other;

    create_user(f, "anna", "secret", false, &user, code);
    r = login_at(f, "acme", "anna", "secret", code, "a", T0);
    other = login_at(f, "acme", "anna", "secret", code, "a", T0);
    assert_int_equal(r.rc, BLOBD_OK);
    assert_int_equal(other.rc, BLOBD_OK);
    assert_string_not_equal(r.token, other.token);

    assert_int_equal(auth_at(f, r.token, T0, &session), BLOBD_OK);
    assert_int_equal(accounts_session_delete(f->c, session.session_id, &err),
                     BLOBD_OK);
    assert_int_equal(auth_at(f, r.token, T0, NULL), BLOBD_EUNAUTH);
    assert_int_equal(auth_at(f, other.token, T0, NULL), BLOBD_OK);
    assert_int_equal(accounts_session_delete(f->c, "xyz", &err),
                     BLOBD_EINVAL);
}

static void test_user_update(void **state)
{
    struct fixture *f = *state;
    struct accounts_user user;
    struct accounts_user_patch patch;
    struct accounts_session session;
    char code[ACCOUNTS_CHAT_CODE_LEN + 1];
    struct blobd_error err;
    struct login_result r;

    create_user(f, "anna", "secret", false, &user, code);
    r = login_at(f, "acme", "anna", "secret", code, "a", T0);
    assert_int_equal(r.rc, BLOBD_OK);

    memset(&patch, 0, sizeof(patch));
    patch.password = "better";
    patch.password_len = 6;
    patch.set_role = true;
    patch.admin = true;
    assert_int_equal(accounts_user_update(f->c, user.id, &patch, &user,
                                          &err),
                     BLOBD_OK);
    assert_true(user.admin);
    assert_string_equal(user.username, "anna");

    /* The session survives the new password and gets the new role. */
    assert_int_equal(auth_at(f, r.token, T0, &session), BLOBD_OK);
    assert_true(session.admin);
    assert_int_equal(login_at(f, "acme", "anna", "secret", code, "b",
                              T0).rc, BLOBD_EUNAUTH);
    assert_int_equal(login_at(f, "acme", "anna", "better", code, "b",
                              T0).rc, BLOBD_OK);

    memset(&patch, 0, sizeof(patch));
    patch.password = "";
    assert_int_equal(accounts_user_update(f->c, user.id, &patch, &user,
                                          &err),
                     BLOBD_EINVAL);
    memset(&patch, 0, sizeof(patch));
    assert_int_equal(accounts_user_update(f->c, "0123456789abcdef", &patch,
                                          &user, &err),
                     BLOBD_ENOTFOUND);
}

static void test_rate_limit_user(void **state)
{
    struct fixture *f = *state;
    struct accounts_user user;
    char code[ACCOUNTS_CHAT_CODE_LEN + 1];
    struct login_result r;
    const int64_t window = ACCOUNTS_LOGIN_WINDOW_MS;

    create_user(f, "anna", "secret", false, &user, code);
    for (int i = 0; i < ACCOUNTS_LOGIN_USER_FAILURES; i++) {
        r = login_at(f, "acme", "anna", "wrong", code, "10.0.0.1",
                     T0 + i * 1000);
        assert_int_equal(r.rc, BLOBD_EUNAUTH);
    }

    /* Blocked even with the right password, until the first failure
     * leaves the window. */
    r = login_at(f, "acme", "ANNA", "secret", code, "10.0.0.1", T0 + 10000);
    assert_int_equal(r.rc, BLOBD_ERATE);
    assert_int_equal(r.err.retry_after, (window - 10000) / 1000);
    r = login_at(f, "acme", "anna", "secret", code, "10.0.0.1",
                 T0 + window - 1);
    assert_int_equal(r.rc, BLOBD_ERATE);
    assert_int_equal(r.err.retry_after, 1);

    /* Other addresses and other usernames from this address go on. */
    r = login_at(f, "acme", "anna", "secret", code, "10.0.0.2", T0 + 10000);
    assert_int_equal(r.rc, BLOBD_OK);
    r = login_at(f, "acme", "bob", "x", code, "10.0.0.1", T0 + 10000);
    assert_int_equal(r.rc, BLOBD_EUNAUTH);

    /* The 429 replies counted nothing: one failure left the window, so
     * one more attempt is allowed. */
    r = login_at(f, "acme", "anna", "wrong", code, "10.0.0.1", T0 + window);
    assert_int_equal(r.rc, BLOBD_EUNAUTH);
    r = login_at(f, "acme", "anna", "secret", code, "10.0.0.1",
                 T0 + window);
    assert_int_equal(r.rc, BLOBD_ERATE);
    assert_int_equal(r.err.retry_after, 1);
    r = login_at(f, "acme", "anna", "secret", code, "10.0.0.1",
                 T0 + window + 1000);
    assert_int_equal(r.rc, BLOBD_OK);
}

static void test_rate_limit_address(void **state)
{
    struct fixture *f = *state;
    struct accounts_limiter *lim = accounts_limiter_of(f->acc);
    char name[32];

    /* Five failures each for ten usernames: none reaches its own limit,
     * but the address reaches fifty. */
    for (int i = 0; i < ACCOUNTS_LOGIN_ADDR_FAILURES; i++) {
        snprintf(name, sizeof(name), "user%d", i % 10);
        assert_int_equal(accounts_limiter_check(lim, "10.0.0.9", "acme",
                                                name, T0 + i),
                         0);
        accounts_limiter_fail(lim, "10.0.0.9", "acme", name, T0 + i);
    }
    assert_int_equal(accounts_limiter_check(lim, "10.0.0.9", "acme",
                                            "fresh", T0 + 100),
                     ACCOUNTS_LOGIN_WINDOW_MS / 1000);
    assert_int_equal(accounts_limiter_check(lim, "10.0.0.9", NULL, NULL,
                                            T0 + 100),
                     ACCOUNTS_LOGIN_WINDOW_MS / 1000);
    assert_int_equal(accounts_limiter_check(lim, "10.0.0.8", "acme",
                                            "fresh", T0 + 100),
                     0);
    assert_int_equal(accounts_limiter_check(lim, "10.0.0.9", "acme",
                                            "fresh",
                                            T0 + ACCOUNTS_LOGIN_WINDOW_MS),
                     0);
}

static void test_rate_limit_memory_bound(void **state)
{
    struct fixture *f = *state;
    struct accounts_limiter *lim = accounts_limiter_of(f->acc);
    char addr[32];
    int64_t now = T0;

    for (int i = 0; i < ACCOUNTS_LOGIN_USER_FAILURES; i++)
        accounts_limiter_fail(lim, "192.0.2.1", "acme", "anna", now);
    assert_int_not_equal(accounts_limiter_check(lim, "192.0.2.1", "acme",
                                                "anna", now),
                         0);

    for (int i = 0; i < ACCOUNTS_LIMIT_USER_ENTRIES; i++) {
        snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16,
                 (i >> 8) & 255, i & 255);
        accounts_limiter_fail(lim, addr, "acme", "anna", ++now);
    }
    assert_true(accounts_limiter_size(lim) <=
                ACCOUNTS_LIMIT_USER_ENTRIES + ACCOUNTS_LIMIT_ADDR_ENTRIES);
    /* The entry with the oldest failure went first. */
    assert_int_equal(accounts_limiter_check(lim, "192.0.2.1", "acme",
                                            "anna", now),
                     0);
}

static void test_session_sweep(void **state)
{
    struct fixture *f = *state;
    struct accounts_user user;
    char code[ACCOUNTS_CHAT_CODE_LEN + 1];
    struct blobd_error err;
    struct login_result old, fresh;
    uint64_t deleted = 0;
    int64_t later = T0 + (IDLE_DAYS + 1) * DAY_MS;

    create_user(f, "anna", "secret", false, &user, code);
    old = login_at(f, "acme", "anna", "secret", code, "a", T0);
    fresh = login_at(f, "acme", "anna", "secret", code, "a", later);
    assert_int_equal(old.rc, BLOBD_OK);
    assert_int_equal(fresh.rc, BLOBD_OK);

    assert_int_equal(accounts_session_sweep(f->c, later, IDLE_DAYS, 100,
                                            &deleted, &err),
                     BLOBD_OK);
    assert_int_equal(deleted, 1);
    assert_int_equal(auth_at(f, fresh.token, later, NULL), BLOBD_OK);
    /* Gone, so even a time inside the limit finds nothing. */
    assert_int_equal(auth_at(f, old.token, T0 + 1, NULL), BLOBD_EUNAUTH);
}

static void test_chat_code_alphabet(void **state)
{
    char code[ACCOUNTS_CHAT_CODE_LEN + 1];
    struct blobd_error err;
    int seen[36] = {0};
    const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

    (void)state;
    for (int i = 0; i < 2000; i++) {
        assert_int_equal(accounts_chat_code_new(code, &err), BLOBD_OK);
        assert_true(is_chat_code(code));
        for (const char *p = code; *p; p++)
            seen[strchr(alphabet, *p) - alphabet]++;
    }
    /* 20000 draws: every character shows up. */
    for (int i = 0; i < 36; i++)
        assert_true(seen[i] > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_user_create_fields, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_user_create_rejects, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_user_list_sorted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_login_and_auth, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_login_failures_alike, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_token_malformed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_chat_code_revokes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_user_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_touch_hourly, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_logout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_user, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_address, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_memory_bound, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_session_sweep, setup, teardown),
        cmocka_unit_test(test_chat_code_alphabet),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

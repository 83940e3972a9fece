/*
 * Sessions: logins, token authentication, logout and the idle sweep.
 *
 * A session is stored under 's' + hex SHA-256 of its token as a JSON
 * object: {"uid": ..., "chat_gen": N, "device": ..., "created_ms": N,
 * "last_used_ms": N}. The token itself ("<cid>.<64 hex>", 256 random
 * bits) is shown to the client once and never stored, so a copy of the
 * database does not hand out sessions.
 *
 * A session is valid while its user exists, its chat_gen equals the
 * user's (a replaced chat code bumps the user's), the user is not past
 * valid_until, and it has been used within the idle limit. last_used_ms
 * is refreshed at most once per ACCOUNTS_TOUCH_INTERVAL_MS, so most
 * requests cost reads only. Idleness is therefore measured with up to
 * that much slack.
 */
#include "accounts_int.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"

#define SESSION_KEY_LEN (1 + ACCOUNTS_SESSION_ID_LEN)
#define DAY_MS (24 * 60 * 60 * 1000LL)
/* Idle limits above this many days mean no limit. The cap also keeps
 * the product with DAY_MS far from overflowing. */
#define IDLE_DAYS_MAX 3650000

struct session_record {
    char uid[ACCOUNTS_UID_LEN + 1];
    uint64_t chat_gen;
    char device[ACCOUNTS_DEVICE_MAX + 1];
    int64_t created_ms;
    int64_t last_used_ms;
};

static int unauthorized(struct blobd_error *err)
{
    return blobd_fail(err, BLOBD_EUNAUTH, "unauthorized");
}

static bool session_id_valid(const char *sid)
{
    unsigned char digest[ACCOUNTS_DIGEST_HEX_LEN / 2];

    return sid && accounts_hex_decode(sid, digest, sizeof(digest));
}

static void session_key(char key[SESSION_KEY_LEN], const char *sid)
{
    key[0] = 's';
    memcpy(key + 1, sid, ACCOUNTS_SESSION_ID_LEN);
}

/* Split "<cid>.<64 hex>" and check both parts. */
static bool token_parse(const char *token, char cid[STORE_CID_MAX + 1])
{
    const char *dot = token ? strchr(token, '.') : NULL;
    unsigned char secret[32];
    size_t cid_len;

    if (!dot)
        return false;
    cid_len = (size_t)(dot - token);
    if (cid_len == 0 || cid_len > STORE_CID_MAX)
        return false;
    memcpy(cid, token, cid_len);
    cid[cid_len] = '\0';
    return store_cid_valid(cid) &&
           accounts_hex_decode(dot + 1, secret, sizeof(secret));
}

static bool session_idle(const struct session_record *s, int64_t now_ms,
                         uint64_t idle_days)
{
    if (idle_days == 0 || idle_days > IDLE_DAYS_MAX)
        return false;
    return now_ms - s->last_used_ms > (int64_t)idle_days * DAY_MS;
}

static char *session_encode(const struct session_record *s)
{
    json_t *obj = json_pack("{s:s, s:I, s:s, s:I, s:I}", "uid", s->uid,
                            "chat_gen", (json_int_t)s->chat_gen,
                            "device", s->device,
                            "created_ms", (json_int_t)s->created_ms,
                            "last_used_ms", (json_int_t)s->last_used_ms);
    char *text;

    if (!obj)
        return NULL;
    text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    return text;
}

static bool session_decode(const char *text, size_t len,
                           struct session_record *out)
{
    json_t *obj = json_loadb(text, len, 0, NULL);
    const char *uid, *device;
    json_int_t gen, created, used;
    bool ok;

    memset(out, 0, sizeof(*out));
    if (!obj)
        return false;
    ok = json_unpack(obj, "{s:s, s:I, s:s, s:I, s:I}", "uid", &uid,
                     "chat_gen", &gen, "device", &device,
                     "created_ms", &created, "last_used_ms", &used) == 0 &&
         accounts_uid_valid(uid) && gen >= 0;
    if (ok) {
        memcpy(out->uid, uid, ACCOUNTS_UID_LEN + 1);
        snprintf(out->device, sizeof(out->device), "%s", device);
        out->chat_gen = (uint64_t)gen;
        out->created_ms = created;
        out->last_used_ms = used;
    }
    json_decref(obj);
    return ok;
}

static int session_get(struct store_contract *c, const char *sid,
                       struct session_record *out, struct blobd_error *err)
{
    char key[SESSION_KEY_LEN];
    char *val = NULL;
    size_t vlen = 0;
    int rc;

    session_key(key, sid);
    rc = store_get(c, key, sizeof(key), &val, &vlen, err);
    if (rc != BLOBD_OK)
        return rc;
    if (!session_decode(val, vlen, out))
        rc = blobd_fail(err, BLOBD_EIO, "session record of contract \"%s\" "
                        "is corrupt", store_contract_id(c));
    free(val);
    return rc;
}

/* Write (s != NULL) or delete session `sid` in one synchronous batch. */
static int session_write(struct store_contract *c, const char *sid,
                         const struct session_record *s,
                         struct blobd_error *err)
{
    char key[SESSION_KEY_LEN];
    char *text = NULL;
    struct store_batch *b;
    int rc;

    session_key(key, sid);
    if (s && !(text = session_encode(s)))
        return blobd_fail(err, BLOBD_ENOMEM, "out of memory");
    b = store_batch_new(c);
    if (s)
        store_batch_put(b, key, sizeof(key), text, strlen(text));
    else
        store_batch_delete(b, key, sizeof(key));
    store_contract_lock(c);
    rc = store_batch_commit(b, err);
    store_contract_unlock(c);
    store_batch_free(b);
    free(text);
    return rc;
}

/*
 * Refresh last_used_ms. The session is read again under the lock, so a
 * logout that committed since the first read is not undone. A failure
 * only delays the refresh to the next request, so it is logged, not
 * returned.
 */
static void session_touch(struct store_contract *c, const char *sid,
                          int64_t now_ms)
{
    struct blobd_error err;
    struct session_record s;
    int rc;

    blobd_error_clear(&err);
    store_contract_lock(c);
    rc = session_get(c, sid, &s, &err);
    if (rc == BLOBD_OK && now_ms - s.last_used_ms >=
                              ACCOUNTS_TOUCH_INTERVAL_MS) {
        char key[SESSION_KEY_LEN];
        char *text = NULL;

        s.last_used_ms = now_ms;
        text = session_encode(&s);
        if (!text) {
            rc = blobd_fail(&err, BLOBD_ENOMEM, "out of memory");
        } else {
            struct store_batch *b = store_batch_new(c);

            session_key(key, sid);
            store_batch_put(b, key, sizeof(key), text, strlen(text));
            rc = store_batch_commit(b, &err);
            store_batch_free(b);
            free(text);
        }
    }
    store_contract_unlock(c);
    if (rc != BLOBD_OK && rc != BLOBD_ENOTFOUND)
        log_warn("accounts", "session_touch_failed",
                 "contract=%s error=\"%s\"", store_contract_id(c),
                 err.message);
}

/* The checks of accounts_session_auth() once the contract is acquired. */
static int session_check(struct store_contract *c, const char *sid,
                         int64_t now_ms, uint64_t idle_days,
                         struct accounts_session *out,
                         struct blobd_error *err)
{
    struct session_record s;
    struct accounts_record rec;
    int rc = session_get(c, sid, &s, err);

    if (rc == BLOBD_ENOTFOUND)
        return unauthorized(err);
    if (rc != BLOBD_OK)
        return rc;
    rc = accounts_record_get(c, s.uid, &rec, err);
    if (rc == BLOBD_ENOTFOUND)
        return unauthorized(err);
    if (rc != BLOBD_OK)
        return rc;

    if (s.chat_gen != rec.chat_gen)
        return blobd_fail(err, BLOBD_EREVOKED, "session revoked: the chat "
                          "code it was made with has been replaced");
    if (session_idle(&s, now_ms, idle_days)) {
        /* Best effort: a failed delete leaves a session that the next
         * attempt or the sweep removes. */
        (void)session_write(c, sid, NULL, NULL);
        return unauthorized(err);
    }
    if (accounts_user_expired(&rec.user, now_ms))
        return blobd_fail(err, BLOBD_EEXPIRED, "account of \"%s\" expired",
                          rec.user.username);
    if (now_ms - s.last_used_ms >= ACCOUNTS_TOUCH_INTERVAL_MS)
        session_touch(c, sid, now_ms);

    memset(out, 0, sizeof(*out));
    snprintf(out->uid, sizeof(out->uid), "%s", rec.user.id);
    out->admin = rec.user.admin;
    /* A valid_until of exactly the epoch is in the past, so an account
     * that gets here with one set has valid_until_ms != 0. */
    out->valid_until_ms = rec.user.has_valid_until ? rec.user.valid_until_ms
                                                   : 0;
    snprintf(out->session_id, sizeof(out->session_id), "%s", sid);
    return BLOBD_OK;
}

int accounts_session_auth(struct accounts *acc, struct store *st,
                          const char *token, int64_t now_ms,
                          uint64_t idle_days,
                          struct store_contract **contract,
                          struct accounts_session *out,
                          struct blobd_error *err)
{
    char cid[STORE_CID_MAX + 1];
    char sid[ACCOUNTS_DIGEST_HEX_LEN + 1];
    struct store_contract *c = NULL;
    int rc;

    (void)acc;
    *contract = NULL;
    if (!token_parse(token, cid))
        return unauthorized(err);
    rc = store_contract_acquire(st, cid, &c, err);
    if (rc == BLOBD_ENOTFOUND)
        return unauthorized(err);
    if (rc != BLOBD_OK)
        return rc;

    accounts_sha256_hex(token, strlen(token), sid);
    rc = session_check(c, sid, now_ms, idle_days, out, err);
    if (rc != BLOBD_OK) {
        store_contract_release(c);
        return rc;
    }
    *contract = c;
    return BLOBD_OK;
}

/*
 * Look up the user of a login and check the password and the chat code.
 * Every path runs one scrypt and one digest comparison, so an unknown
 * contract or user takes as long as a wrong password. On success *cp is
 * the contract, acquired, or NULL when it does not exist. *match is true
 * when all three parts were right.
 */
static int login_verify(struct store *st, const struct accounts_login *in,
                        bool names_valid, struct store_contract **cp,
                        struct accounts_record *rec, bool *match,
                        struct blobd_error *err)
{
    static const char no_code[] = "0000000000000000000000000000000000000000"
                                  "000000000000000000000000";
    char code_digest[ACCOUNTS_DIGEST_HEX_LEN + 1];
    char uid[ACCOUNTS_UID_LEN + 1];
    struct store_contract *c = NULL;
    bool found = false, password_ok = false, code_ok;
    int rc = BLOBD_OK;

    *cp = NULL;
    *match = false;
    if (names_valid) {
        rc = store_contract_acquire(st, in->contract, &c, err);
        if (rc == BLOBD_ENOTFOUND)
            rc = BLOBD_OK;
        if (rc != BLOBD_OK)
            return rc;
    }
    if (c) {
        rc = accounts_uid_find(c, in->username, uid, err);
        if (rc == BLOBD_OK)
            rc = accounts_record_get(c, uid, rec, err);
        found = rc == BLOBD_OK;
        if (rc != BLOBD_OK && rc != BLOBD_ENOTFOUND)
            goto out;
        rc = BLOBD_OK;
    }

    if (found)
        rc = accounts_password_verify(&rec->pw, in->password,
                                      in->password_len, &password_ok, err);
    else
        accounts_password_dummy(in->password, in->password_len);
    if (rc != BLOBD_OK)
        goto out;
    accounts_chat_code_digest(in->chat_code, code_digest);
    code_ok = accounts_digest_equal(found ? rec->chat_code_sha256 : no_code,
                                    code_digest);
    *match = found && password_ok && code_ok;
out:
    if (rc != BLOBD_OK && c) {
        store_contract_release(c);
        c = NULL;
    }
    *cp = c;
    return rc;
}

static int login_check_input(const struct accounts_login *in,
                             struct blobd_error *err)
{
    static const char *const names[] = {"contract", "username", "password",
                                        "chat_code"};
    const char *values[] = {in->contract, in->username, in->password,
                            in->chat_code};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!values[i])
            return blobd_fail(err, BLOBD_EINVAL, "missing field \"%s\"",
                              names[i]);
    if (in->password_len > ACCOUNTS_PASSWORD_MAX)
        return blobd_fail(err, BLOBD_EINVAL, "invalid field \"password\": "
                          "longer than %d bytes", ACCOUNTS_PASSWORD_MAX);
    if (in->device && strlen(in->device) > ACCOUNTS_DEVICE_MAX)
        return blobd_fail(err, BLOBD_EINVAL, "invalid field \"device\": "
                          "longer than %d bytes", ACCOUNTS_DEVICE_MAX);
    return BLOBD_OK;
}

/* Create the session of a successful login and fill `token`. */
static int session_create(struct store_contract *c,
                          const struct accounts_record *rec,
                          const char *device, int64_t now_ms,
                          char token[ACCOUNTS_TOKEN_SIZE],
                          struct blobd_error *err)
{
    char secret[ACCOUNTS_DIGEST_HEX_LEN + 1];
    char sid[ACCOUNTS_DIGEST_HEX_LEN + 1];
    struct session_record s;
    int rc = accounts_random_hex(secret, 32, err);

    if (rc != BLOBD_OK)
        return rc;
    snprintf(token, ACCOUNTS_TOKEN_SIZE, "%s.%s", store_contract_id(c),
             secret);
    accounts_sha256_hex(token, strlen(token), sid);

    memset(&s, 0, sizeof(s));
    memcpy(s.uid, rec->user.id, sizeof(s.uid));
    s.chat_gen = rec->chat_gen;
    snprintf(s.device, sizeof(s.device), "%s", device ? device : "");
    s.created_ms = now_ms;
    s.last_used_ms = now_ms;
    rc = session_write(c, sid, &s, err);
    if (rc != BLOBD_OK)
        memset(token, 0, ACCOUNTS_TOKEN_SIZE);
    return rc;
}

int accounts_login(struct accounts *acc, struct store *st,
                   const struct accounts_login *in, int64_t now_ms,
                   char token[ACCOUNTS_TOKEN_SIZE],
                   char uid[ACCOUNTS_UID_LEN + 1], struct blobd_error *err)
{
    struct accounts_limiter *lim = accounts_limiter_of(acc);
    struct store_contract *c = NULL;
    struct accounts_record rec;
    const char *addr = in->client_addr ? in->client_addr : "";
    const char *cid, *name;
    bool cid_valid, name_valid, match;
    unsigned wait;
    int rc = login_check_input(in, err);

    if (rc != BLOBD_OK)
        return rc;
    cid_valid = store_cid_valid(in->contract);
    name_valid = accounts_username_valid(in->username);
    cid = cid_valid ? in->contract : NULL;
    name = name_valid ? in->username : NULL;

    /* A login that may proceed takes a slot of the limiter, which
     * accounts_limiter_end() below gives back. */
    wait = accounts_limiter_begin(lim, addr, cid, name, now_ms);
    if (wait > 0) {
        rc = blobd_fail(err, BLOBD_ERATE, "too many failed logins from "
                        "this address; retry in %u seconds", wait);
        if (err)
            err->retry_after = wait;
        return rc;
    }

    rc = login_verify(st, in, cid_valid && name_valid, &c, &rec, &match,
                      err);
    accounts_limiter_end(lim, addr, cid, name, rc == BLOBD_OK && !match,
                         now_ms);
    if (rc != BLOBD_OK)
        return rc;
    if (!match) {
        /* Logged once per lockout: while it lasts, attempts are rejected
         * before they can fail again. Invalid names are user input that
         * does not belong in a log line. */
        wait = accounts_limiter_check(lim, addr, cid, name, now_ms);
        if (wait > 0)
            log_warn("accounts", "login_locked",
                     "addr=%s contract=%s username=%s retry_after=%u", addr,
                     cid ? cid : "-", name ? name : "-", wait);
        rc = unauthorized(err);
        goto out;
    }
    if (accounts_user_expired(&rec.user, now_ms)) {
        rc = blobd_fail(err, BLOBD_EEXPIRED, "account of \"%s\" expired",
                        rec.user.username);
        goto out;
    }
    rc = session_create(c, &rec, in->device, now_ms, token, err);
    if (rc == BLOBD_OK)
        memcpy(uid, rec.user.id, ACCOUNTS_UID_LEN + 1);
out:
    if (c)
        store_contract_release(c);
    return rc;
}

int accounts_session_delete(struct store_contract *c, const char *session_id,
                            struct blobd_error *err)
{
    if (!session_id_valid(session_id))
        return blobd_fail(err, BLOBD_EINVAL, "invalid session id");
    return session_write(c, session_id, NULL, err);
}

/* Delete the listed sessions that are still idle when read again under
 * the lock, in one batch. */
static int sweep_commit(struct store_contract *c, char (*ids)[65], size_t n,
                        int64_t now_ms, uint64_t idle_days,
                        uint64_t *deleted, struct blobd_error *err)
{
    struct store_batch *b = store_batch_new(c);
    uint64_t count = 0;
    int rc = BLOBD_OK;

    store_contract_lock(c);
    for (size_t i = 0; i < n; i++) {
        struct session_record s;
        char key[SESSION_KEY_LEN];

        if (session_get(c, ids[i], &s, NULL) != BLOBD_OK ||
            !session_idle(&s, now_ms, idle_days))
            continue;
        session_key(key, ids[i]);
        store_batch_delete(b, key, sizeof(key));
        count++;
    }
    if (count > 0)
        rc = store_batch_commit(b, err);
    store_contract_unlock(c);
    store_batch_free(b);
    if (rc == BLOBD_OK)
        *deleted += count;
    return rc;
}

int accounts_session_sweep(struct store_contract *c, int64_t now_ms,
                           uint64_t idle_days, size_t limit,
                           uint64_t *deleted, struct blobd_error *err)
{
    char (*ids)[65] = NULL;
    struct store_iter *it;
    size_t n = 0;
    int rc;

    if (idle_days == 0 || idle_days > IDLE_DAYS_MAX || limit == 0)
        return BLOBD_OK;
    ids = calloc(limit, sizeof(*ids));
    if (!ids)
        return blobd_fail(err, BLOBD_ENOMEM, "out of memory");

    it = store_iter_new(c, "s", 1);
    for (store_iter_seek_first(it); store_iter_valid(it) && n < limit;
         store_iter_next(it)) {
        size_t klen, vlen;
        const char *key = store_iter_key(it, &klen);
        const char *val = store_iter_value(it, &vlen);
        struct session_record s;

        if (klen != SESSION_KEY_LEN || !session_decode(val, vlen, &s) ||
            !session_idle(&s, now_ms, idle_days))
            continue;
        memcpy(ids[n], key + 1, ACCOUNTS_SESSION_ID_LEN);
        ids[n][ACCOUNTS_SESSION_ID_LEN] = '\0';
        n++;
    }
    store_iter_free(it);

    rc = n > 0 ? sweep_commit(c, ids, n, now_ms, idle_days, deleted, err)
               : BLOBD_OK;
    free(ids);
    return rc;
}

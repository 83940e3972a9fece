/*
 * Users of a contract: the user record under 'u' + uid, the username
 * index under 'n' + lowercase username, creation, listing, changes and
 * chat code replacement. Sessions and logins are in accounts_session.c,
 * secrets in accounts_crypto.c, the login rate limiter in
 * accounts_limit.c. See accounts.h for the key layout.
 *
 * The user record is a JSON object:
 *
 *   {"username": "anna", "role": "user", "valid_until_ms": null,
 *    "created_ms": 1767225600000, "chat_gen": 1,
 *    "chat_code_sha256": "<64 hex>",
 *    "password": {"kdf": "scrypt", "n": 32768, "r": 8, "p": 1,
 *                 "salt": "<32 hex>", "key": "<64 hex>"}}
 *
 * Every change is a read-modify-write done under the contract lock, so
 * two admins changing one user cannot lose each other's update, and the
 * username check and the insert of a new user are atomic.
 */
#include "accounts_int.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

struct accounts {
    struct accounts_limiter *limiter;
};

int accounts_open(struct accounts **out, struct blobd_error *err)
{
    struct accounts *acc = calloc(1, sizeof(*acc));
    int rc;

    *out = NULL;
    if (!acc)
        return blobd_fail(err, BLOBD_ENOMEM, "out of memory");
    rc = accounts_limiter_new(&acc->limiter, err);
    if (rc != BLOBD_OK) {
        free(acc);
        return rc;
    }
    *out = acc;
    return BLOBD_OK;
}

void accounts_close(struct accounts *acc)
{
    if (!acc)
        return;
    accounts_limiter_free(acc->limiter);
    free(acc);
}

struct accounts_limiter *accounts_limiter_of(struct accounts *acc)
{
    return acc->limiter;
}

bool accounts_username_valid(const char *name)
{
    size_t len;

    if (!name)
        return false;
    len = strlen(name);
    if (len == 0 || len > ACCOUNTS_USERNAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
              ch == '-' || ch == '@'))
            return false;
    }
    return true;
}

bool accounts_uid_valid(const char *uid)
{
    if (!uid || strlen(uid) != ACCOUNTS_UID_LEN)
        return false;
    for (size_t i = 0; i < ACCOUNTS_UID_LEN; i++) {
        char ch = uid[i];

        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return false;
    }
    return true;
}

static void user_key(char key[1 + ACCOUNTS_UID_LEN], const char *uid)
{
    key[0] = 'u';
    memcpy(key + 1, uid, ACCOUNTS_UID_LEN);
}

/* 'n' + the lowercase username; returns the key length. */
static size_t name_key(char key[1 + ACCOUNTS_USERNAME_MAX], const char *name)
{
    size_t len = strlen(name);

    key[0] = 'n';
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];

        key[1 + i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
    }
    return 1 + len;
}

bool accounts_user_expired(const struct accounts_user *user, int64_t now_ms)
{
    return user->has_valid_until && now_ms >= user->valid_until_ms;
}

/* ---- the stored record ---- */

static json_t *pwhash_encode(const struct accounts_pwhash *pw)
{
    char salt[2 * ACCOUNTS_SALT_LEN + 1];
    char key[2 * ACCOUNTS_KEY_LEN + 1];

    accounts_hex_encode(pw->salt, sizeof(pw->salt), salt);
    accounts_hex_encode(pw->key, sizeof(pw->key), key);
    return json_pack("{s:s, s:I, s:I, s:I, s:s, s:s}", "kdf", "scrypt",
                     "n", (json_int_t)pw->n, "r", (json_int_t)pw->r,
                     "p", (json_int_t)pw->p, "salt", salt, "key", key);
}

/* Encode `rec` as JSON; the caller frees the result with free(). NULL
 * when out of memory. */
static char *record_encode(const struct accounts_record *rec)
{
    const struct accounts_user *u = &rec->user;
    json_t *valid_until = u->has_valid_until
                              ? json_integer(u->valid_until_ms)
                              : json_null();
    json_t *obj = json_pack("{s:s, s:s, s:o, s:I, s:I, s:s, s:o}",
                            "username", u->username,
                            "role", u->admin ? "admin" : "user",
                            "valid_until_ms", valid_until,
                            "created_ms", (json_int_t)u->created_ms,
                            "chat_gen", (json_int_t)rec->chat_gen,
                            "chat_code_sha256", rec->chat_code_sha256,
                            "password", pwhash_encode(&rec->pw));
    char *text;

    if (!obj)
        return NULL;
    text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    return text;
}

static bool pwhash_decode(json_t *obj, struct accounts_pwhash *pw)
{
    const char *kdf, *salt, *key;
    json_int_t n, r, p;

    if (json_unpack(obj, "{s:s, s:I, s:I, s:I, s:s, s:s}", "kdf", &kdf,
                    "n", &n, "r", &r, "p", &p, "salt", &salt,
                    "key", &key) != 0)
        return false;
    if (strcmp(kdf, "scrypt") != 0 || n < 0 || r < 0 || r > UINT32_MAX ||
        p < 0 || p > UINT32_MAX)
        return false;
    pw->n = (uint64_t)n;
    pw->r = (uint32_t)r;
    pw->p = (uint32_t)p;
    return accounts_pwhash_params_valid(pw->n, pw->r, pw->p) &&
           accounts_hex_decode(salt, pw->salt, sizeof(pw->salt)) &&
           accounts_hex_decode(key, pw->key, sizeof(pw->key));
}

static bool record_decode(const char *text, size_t len, const char *uid,
                          struct accounts_record *out)
{
    json_t *obj = json_loadb(text, len, 0, NULL);
    json_t *valid_until, *password;
    const char *username, *role, *code;
    json_int_t created, gen;
    bool ok = false;

    memset(out, 0, sizeof(*out));
    if (!obj)
        return false;
    if (json_unpack(obj, "{s:s, s:s, s:o, s:I, s:I, s:s, s:o}",
                    "username", &username, "role", &role,
                    "valid_until_ms", &valid_until, "created_ms", &created,
                    "chat_gen", &gen, "chat_code_sha256", &code,
                    "password", &password) != 0)
        goto out;
    if (!accounts_username_valid(username) ||
        strlen(code) != ACCOUNTS_DIGEST_HEX_LEN || gen < 0)
        goto out;
    if (!json_is_null(valid_until) && !json_is_integer(valid_until))
        goto out;
    if (!pwhash_decode(password, &out->pw))
        goto out;

    snprintf(out->user.id, sizeof(out->user.id), "%s", uid);
    snprintf(out->user.username, sizeof(out->user.username), "%s", username);
    out->user.admin = strcmp(role, "admin") == 0;
    out->user.has_valid_until = json_is_integer(valid_until);
    out->user.valid_until_ms = json_integer_value(valid_until);
    out->user.created_ms = created;
    out->chat_gen = (uint64_t)gen;
    memcpy(out->chat_code_sha256, code, ACCOUNTS_DIGEST_HEX_LEN + 1);
    ok = true;
out:
    json_decref(obj);
    return ok;
}

int accounts_record_get(struct store_contract *c, const char *uid,
                        struct accounts_record *out, struct blobd_error *err)
{
    char key[1 + ACCOUNTS_UID_LEN];
    char *val = NULL;
    size_t vlen = 0;
    int rc;

    if (!accounts_uid_valid(uid))
        return blobd_fail(err, BLOBD_ENOTFOUND, "user \"%.64s\" not found",
                          uid ? uid : "");
    user_key(key, uid);
    rc = store_get(c, key, sizeof(key), &val, &vlen, err);
    if (rc == BLOBD_ENOTFOUND)
        return blobd_fail(err, BLOBD_ENOTFOUND, "user \"%s\" not found", uid);
    if (rc != BLOBD_OK)
        return rc;
    if (!record_decode(val, vlen, uid, out))
        rc = blobd_fail(err, BLOBD_EIO, "user record \"%s\" of contract "
                        "\"%s\" is corrupt", uid, store_contract_id(c));
    free(val);
    return rc;
}

int accounts_uid_find(struct store_contract *c, const char *username,
                      char uid[ACCOUNTS_UID_LEN + 1], struct blobd_error *err)
{
    char key[1 + ACCOUNTS_USERNAME_MAX];
    char *val = NULL;
    size_t vlen = 0;
    int rc;

    if (!accounts_username_valid(username))
        return blobd_fail(err, BLOBD_ENOTFOUND, "user not found");
    rc = store_get(c, key, name_key(key, username), &val, &vlen, err);
    if (rc != BLOBD_OK)
        return rc;
    if (vlen != ACCOUNTS_UID_LEN || !accounts_uid_valid(val))
        rc = blobd_fail(err, BLOBD_EIO, "username index of \"%s\" in "
                        "contract \"%s\" is corrupt", username,
                        store_contract_id(c));
    else
        memcpy(uid, val, ACCOUNTS_UID_LEN + 1);
    free(val);
    return rc;
}

/* Write `rec` in a batch of its own, under the contract lock that the
 * caller holds, and with `with_name` also its username index entry. */
static int record_commit_locked(struct store_contract *c,
                                const struct accounts_record *rec,
                                bool with_name, struct blobd_error *err)
{
    char ukey[1 + ACCOUNTS_UID_LEN];
    char nkey[1 + ACCOUNTS_USERNAME_MAX];
    char *text = record_encode(rec);
    struct store_batch *b;
    int rc;

    if (!text)
        return blobd_fail(err, BLOBD_ENOMEM, "out of memory");
    b = store_batch_new(c);
    user_key(ukey, rec->user.id);
    store_batch_put(b, ukey, sizeof(ukey), text, strlen(text));
    if (with_name)
        store_batch_put(b, nkey, name_key(nkey, rec->user.username),
                        rec->user.id, ACCOUNTS_UID_LEN);
    rc = store_batch_commit(b, err);
    store_batch_free(b);
    free(text);
    return rc;
}

/* ---- operations ---- */

int accounts_user_exists(struct store_contract *c, const char *uid)
{
    char key[1 + ACCOUNTS_UID_LEN];

    if (!accounts_uid_valid(uid))
        return 0;
    user_key(key, uid);
    return store_exists(c, key, sizeof(key)) ? 1 : 0;
}

int accounts_user_check(struct store_contract *c, const char *uid,
                        int64_t now_ms, struct blobd_error *err)
{
    struct accounts_record rec;
    int rc = accounts_record_get(c, uid, &rec, err);

    if (rc == BLOBD_ENOTFOUND)
        return blobd_fail(err, BLOBD_EUNAUTH, "unauthorized");
    if (rc != BLOBD_OK)
        return rc;
    if (accounts_user_expired(&rec.user, now_ms))
        return blobd_fail(err, BLOBD_EEXPIRED, "account of \"%s\" expired",
                          rec.user.username);
    return BLOBD_OK;
}

static int password_check(const char *password, size_t len,
                          struct blobd_error *err)
{
    if (!password || len == 0)
        return blobd_fail(err, BLOBD_EINVAL, "missing field \"password\"");
    if (len > ACCOUNTS_PASSWORD_MAX)
        return blobd_fail(err, BLOBD_EINVAL, "invalid field \"password\": "
                          "longer than %d bytes", ACCOUNTS_PASSWORD_MAX);
    return BLOBD_OK;
}

/* Lock the contract and draw a uid that no user has yet. On success the
 * lock is held. */
static int uid_draw_locked(struct store_contract *c,
                           char uid[ACCOUNTS_UID_LEN + 1],
                           struct blobd_error *err)
{
    char key[1 + ACCOUNTS_UID_LEN];

    /* 64 random bits: a second draw is already astronomically rare. */
    for (int attempt = 0; attempt < 4; attempt++) {
        int rc = accounts_random_hex(uid, ACCOUNTS_UID_LEN / 2, err);

        if (rc != BLOBD_OK)
            return rc;
        user_key(key, uid);
        if (!store_exists(c, key, sizeof(key)))
            return BLOBD_OK;
    }
    return blobd_fail(err, BLOBD_EIO, "no free user id after 4 draws");
}

int accounts_user_create(struct store_contract *c, const char *username,
                         const char *password, size_t password_len,
                         bool admin, bool has_valid_until,
                         int64_t valid_until_ms, int64_t now_ms,
                         struct accounts_user *out,
                         char chat_code[ACCOUNTS_CHAT_CODE_LEN + 1],
                         struct blobd_error *err)
{
    struct accounts_record rec;
    char nkey[1 + ACCOUNTS_USERNAME_MAX];
    int rc;

    memset(&rec, 0, sizeof(rec));
    if (!username)
        return blobd_fail(err, BLOBD_EINVAL, "missing field \"username\"");
    if (!accounts_username_valid(username))
        return blobd_fail(err, BLOBD_EINVAL, "invalid field \"username\": "
                          "use 1 to %d characters of A-Z a-z 0-9 . _ - @",
                          ACCOUNTS_USERNAME_MAX);
    rc = password_check(password, password_len, err);
    if (rc != BLOBD_OK)
        return rc;

    /* The expensive parts, outside the lock. */
    rc = accounts_password_hash(password, password_len, &rec.pw, err);
    if (rc == BLOBD_OK)
        rc = accounts_chat_code_new(chat_code, err);
    if (rc != BLOBD_OK)
        return rc;
    accounts_chat_code_digest(chat_code, rec.chat_code_sha256);
    snprintf(rec.user.username, sizeof(rec.user.username), "%s", username);
    rec.user.admin = admin;
    rec.user.has_valid_until = has_valid_until;
    rec.user.valid_until_ms = has_valid_until ? valid_until_ms : 0;
    rec.user.created_ms = now_ms;
    rec.chat_gen = 1;

    store_contract_lock(c);
    if (store_exists(c, nkey, name_key(nkey, username))) {
        rc = blobd_fail(err, BLOBD_ECONFLICT, "username \"%s\" exists",
                        username);
        goto out;
    }
    rc = uid_draw_locked(c, rec.user.id, err);
    if (rc == BLOBD_OK)
        rc = record_commit_locked(c, &rec, true, err);
out:
    store_contract_unlock(c);
    if (rc == BLOBD_OK)
        *out = rec.user;
    return rc;
}

int accounts_user_get(struct store_contract *c, const char *uid,
                      struct accounts_user *out, struct blobd_error *err)
{
    struct accounts_record rec;
    int rc = accounts_record_get(c, uid, &rec, err);

    if (rc == BLOBD_OK)
        *out = rec.user;
    return rc;
}

static int user_compare(const void *a, const void *b)
{
    const struct accounts_user *x = a;
    const struct accounts_user *y = b;

    return strcmp(x->username, y->username);
}

int accounts_user_list(struct store_contract *c, struct accounts_user **users,
                       size_t *count, struct blobd_error *err)
{
    struct store_iter *it = store_iter_new(c, "u", 1);
    struct accounts_user *list = NULL;
    size_t n = 0, cap = 0;
    int rc = BLOBD_OK;

    for (store_iter_seek_first(it); store_iter_valid(it);
         store_iter_next(it)) {
        size_t klen, vlen;
        const char *key = store_iter_key(it, &klen);
        const char *val = store_iter_value(it, &vlen);
        char uid[ACCOUNTS_UID_LEN + 1];
        struct accounts_record rec;

        if (klen != 1 + ACCOUNTS_UID_LEN)
            continue;
        memcpy(uid, key + 1, ACCOUNTS_UID_LEN);
        uid[ACCOUNTS_UID_LEN] = '\0';
        if (!record_decode(val, vlen, uid, &rec)) {
            rc = blobd_fail(err, BLOBD_EIO, "user record \"%s\" of contract "
                            "\"%s\" is corrupt", uid, store_contract_id(c));
            goto out;
        }
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            struct accounts_user *grown = realloc(list, ncap * sizeof(*list));

            if (!grown) {
                rc = blobd_fail(err, BLOBD_ENOMEM, "out of memory");
                goto out;
            }
            list = grown;
            cap = ncap;
        }
        list[n++] = rec.user;
    }
    if (n > 1)
        qsort(list, n, sizeof(*list), user_compare);
out:
    store_iter_free(it);
    if (rc != BLOBD_OK) {
        free(list);
        list = NULL;
        n = 0;
    }
    *users = list;
    *count = n;
    return rc;
}

int accounts_user_update(struct store_contract *c, const char *uid,
                         const struct accounts_user_patch *patch,
                         struct accounts_user *out, struct blobd_error *err)
{
    struct accounts_pwhash pw;
    struct accounts_record rec;
    int rc;

    if (patch->password) {
        rc = password_check(patch->password, patch->password_len, err);
        if (rc == BLOBD_OK)
            rc = accounts_password_hash(patch->password, patch->password_len,
                                        &pw, err);
        if (rc != BLOBD_OK)
            return rc;
    }

    store_contract_lock(c);
    rc = accounts_record_get(c, uid, &rec, err);
    if (rc != BLOBD_OK)
        goto out;
    if (patch->password)
        rec.pw = pw;
    if (patch->set_role)
        rec.user.admin = patch->admin;
    if (patch->set_valid_until) {
        rec.user.has_valid_until = patch->has_valid_until;
        rec.user.valid_until_ms =
            patch->has_valid_until ? patch->valid_until_ms : 0;
    }
    rc = record_commit_locked(c, &rec, false, err);
out:
    store_contract_unlock(c);
    if (rc == BLOBD_OK)
        *out = rec.user;
    return rc;
}

int accounts_chat_code_replace(struct store_contract *c, const char *uid,
                               char chat_code[ACCOUNTS_CHAT_CODE_LEN + 1],
                               struct blobd_error *err)
{
    struct accounts_record rec;
    char digest[ACCOUNTS_DIGEST_HEX_LEN + 1];
    int rc = accounts_chat_code_new(chat_code, err);

    if (rc != BLOBD_OK)
        return rc;
    accounts_chat_code_digest(chat_code, digest);

    store_contract_lock(c);
    rc = accounts_record_get(c, uid, &rec, err);
    if (rc == BLOBD_OK) {
        memcpy(rec.chat_code_sha256, digest, sizeof(digest));
        rec.chat_gen++;
        rc = record_commit_locked(c, &rec, false, err);
    }
    store_contract_unlock(c);
    return rc;
}

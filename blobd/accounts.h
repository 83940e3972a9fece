/*
 * Accounts: the users of a contract, their chat codes, password hashes and
 * sessions, and the rate limit on failed logins.
 *
 * Users and sessions live in the contract's own database, in the key
 * families that store.h reserves for accounts:
 *
 *   'u' + uid                      user record (JSON)
 *   'n' + lowercase username       uid
 *   's' + hex SHA-256 of a token   session record (JSON)
 *
 * A uid is 16 lowercase hex digits. A username is 1 to 64 characters of
 * A-Z a-z 0-9 . _ - @ and is unique per contract without regard to case:
 * "Anna" and "anna" are the same login. A session token is
 * "<cid>.<64 hex digits>". The server stores only its SHA-256, and the
 * session id in struct accounts_session is that digest in hex.
 *
 * Passwords are hashed with scrypt (N = 2^15, r = 8, p = 1, 16-byte
 * random salt, 32-byte key); the parameters are stored beside each hash,
 * so they can be raised later without invalidating old hashes. Chat codes
 * are 10 characters of A-Z 0-9; only their SHA-256 is stored. Each user
 * has a chat code generation, and every session records the generation it
 * was made with: replacing the code bumps it, so older sessions get
 * BLOBD_EREVOKED at once.
 *
 * Writes are committed in one synchronous batch under the contract lock;
 * reads take no lock. struct accounts itself only holds the login rate
 * limiter and is safe to share between threads.
 *
 * Limits: passwords are 1 to ACCOUNTS_PASSWORD_MAX bytes, device names at
 * most ACCOUNTS_DEVICE_MAX bytes. The rate limiter keeps at most
 * ACCOUNTS_LIMIT_USER_ENTRIES (address, contract, username) entries and
 * ACCOUNTS_LIMIT_ADDR_ENTRIES address entries; beyond that it forgets the
 * entries with the oldest failures first.
 */
#ifndef BLOBD_ACCOUNTS_H
#define BLOBD_ACCOUNTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "store.h"

#define ACCOUNTS_UID_LEN 16
#define ACCOUNTS_USERNAME_MAX 64
#define ACCOUNTS_PASSWORD_MAX 1024
#define ACCOUNTS_DEVICE_MAX 128
#define ACCOUNTS_CHAT_CODE_LEN 10
#define ACCOUNTS_SESSION_ID_LEN 64           /* hex SHA-256 of a token */
/* "<cid>." plus 64 hex digits, plus the terminating NUL */
#define ACCOUNTS_TOKEN_SIZE (STORE_CID_MAX + 1 + 64 + 1)

/* Login rate limit: failures per sliding window that block further
 * attempts, per (address, contract, username) and per address. */
#define ACCOUNTS_LOGIN_WINDOW_MS (15 * 60 * 1000)
#define ACCOUNTS_LOGIN_USER_FAILURES 10
#define ACCOUNTS_LOGIN_ADDR_FAILURES 50
#define ACCOUNTS_LIMIT_USER_ENTRIES 16384
#define ACCOUNTS_LIMIT_ADDR_ENTRIES 4096

/* A session refreshes its last_used_ms at most this often. */
#define ACCOUNTS_TOUCH_INTERVAL_MS (60 * 60 * 1000)

struct accounts;
struct route_request;    /* route.h */
struct route_reply;

struct accounts_session {
    char uid[48];
    bool admin;
    int64_t valid_until_ms;      /* 0 when the account has no end */
    char session_id[72];         /* hex SHA-256 of the token */
};

struct accounts_user {
    char id[ACCOUNTS_UID_LEN + 1];
    char username[ACCOUNTS_USERNAME_MAX + 1];
    bool admin;
    bool has_valid_until;        /* false: the account has no end */
    int64_t valid_until_ms;
    int64_t created_ms;
};

/* Changes made by accounts_user_update(); NULL or false leaves a field. */
struct accounts_user_patch {
    const char *password;
    size_t password_len;
    bool set_role;
    bool admin;
    bool set_valid_until;
    bool has_valid_until;        /* with set_valid_until: false clears it */
    int64_t valid_until_ms;
};

struct accounts_login {
    const char *contract;
    const char *username;
    const char *password;
    size_t password_len;
    const char *chat_code;
    const char *device;          /* NULL or "" when the client gave none */
    const char *client_addr;     /* numeric peer address, for the limiter */
};

/* Create the accounts context (the login rate limiter). BLOBD_ENOMEM. */
int accounts_open(struct accounts **out, struct blobd_error *err);
void accounts_close(struct accounts *acc);

/*
 * Authenticate a request by its session token. On success *contract is
 * the token's contract, acquired (the caller releases it), and `out`
 * describes the caller. Errors, with nothing left acquired:
 *   BLOBD_EUNAUTH   malformed token, unknown contract, unknown session or
 *                   user, or a session unused for more than `idle_days`
 *                   days (the session is deleted; 0 days: no idle limit)
 *   BLOBD_EREVOKED  the session was made with a chat code that has been
 *                   replaced since. This is checked before idleness,
 *                   so a lost device keeps receiving the wipe order
 *   BLOBD_EEXPIRED  the user is past valid_until
 *   BLOBD_EIO, BLOBD_ENOMEM
 * last_used_ms is written at most once per ACCOUNTS_TOUCH_INTERVAL_MS.
 */
int accounts_session_auth(struct accounts *acc, struct store *st,
                          const char *token, int64_t now_ms,
                          uint64_t idle_days,
                          struct store_contract **contract,
                          struct accounts_session *out,
                          struct blobd_error *err);

/* 1 when user `uid` exists in contract `c`, else 0. */
int accounts_user_exists(struct store_contract *c, const char *uid);

/* Check that user `uid` still exists (BLOBD_EUNAUTH otherwise) and is not
 * past valid_until (BLOBD_EEXPIRED). BLOBD_EIO on a database failure. */
int accounts_user_check(struct store_contract *c, const char *uid,
                        int64_t now_ms, struct blobd_error *err);

/* True when `name` is a valid username (see the top of this file). */
bool accounts_username_valid(const char *name);

/*
 * Create a user and its first chat code, written to `chat_code`.
 * BLOBD_EINVAL on an invalid username or password (the message names the
 * field), BLOBD_ECONFLICT when the username exists in the contract.
 */
int accounts_user_create(struct store_contract *c, const char *username,
                         const char *password, size_t password_len,
                         bool admin, bool has_valid_until,
                         int64_t valid_until_ms, int64_t now_ms,
                         struct accounts_user *out,
                         char chat_code[ACCOUNTS_CHAT_CODE_LEN + 1],
                         struct blobd_error *err);

/* Read one user. BLOBD_ENOTFOUND for an unknown uid. */
int accounts_user_get(struct store_contract *c, const char *uid,
                      struct accounts_user *out, struct blobd_error *err);

/* All users of the contract sorted by username (byte order); *users is
 * malloc'd and the caller frees it with free(). */
int accounts_user_list(struct store_contract *c, struct accounts_user **users,
                       size_t *count, struct blobd_error *err);

/*
 * Apply `patch` to user `uid` and return the new view in `out`. A new
 * password keeps the user's sessions: devices are ended by replacing the
 * chat code. BLOBD_ENOTFOUND for an unknown uid, BLOBD_EINVAL on an
 * invalid password.
 */
int accounts_user_update(struct store_contract *c, const char *uid,
                         const struct accounts_user_patch *patch,
                         struct accounts_user *out, struct blobd_error *err);

/* Give user `uid` a new chat code, written to `chat_code`, and revoke
 * every session made with an older one. BLOBD_ENOTFOUND. */
int accounts_chat_code_replace(struct store_contract *c, const char *uid,
                               char chat_code[ACCOUNTS_CHAT_CODE_LEN + 1],
                               struct blobd_error *err);

/*
 * Check a login and create a session. An unknown contract or username, a
 * wrong password and a wrong chat code all fail with the same
 * BLOBD_EUNAUTH after the same scrypt work, and count as failures for the
 * rate limiter. BLOBD_ERATE (retry_after set, nothing counted) while the
 * limiter blocks the address; BLOBD_EEXPIRED only when all three parts
 * were right; BLOBD_EINVAL on an oversized password or device name.
 * On success `token` and `uid` are filled.
 */
int accounts_login(struct accounts *acc, struct store *st,
                   const struct accounts_login *in, int64_t now_ms,
                   char token[ACCOUNTS_TOKEN_SIZE],
                   char uid[ACCOUNTS_UID_LEN + 1], struct blobd_error *err);

/* Delete session `session_id` (hex SHA-256 of its token); deleting a
 * session that does not exist succeeds. */
int accounts_session_delete(struct store_contract *c, const char *session_id,
                            struct blobd_error *err);

/*
 * Delete the sessions of contract `c` unused for more than `idle_days`
 * days, revoked ones included, up to `limit` of them in one batch, and
 * add the number deleted to *deleted. The periodic sweep calls this.
 * Without it, an idle session is deleted only when it is next presented.
 */
int accounts_session_sweep(struct store_contract *c, int64_t now_ms,
                           uint64_t idle_days, size_t limit,
                           uint64_t *deleted, struct blobd_error *err);

/* Route handlers (routes_users.c), referenced by the table in routes.c. */
void routes_users_create(struct route_request *req, struct route_reply *rep);
void routes_users_list(struct route_request *req, struct route_reply *rep);
void routes_users_update(struct route_request *req, struct route_reply *rep);
void routes_users_chat_code(struct route_request *req,
                            struct route_reply *rep);
void routes_users_login(struct route_request *req, struct route_reply *rep);
void routes_users_logout(struct route_request *req, struct route_reply *rep);

#endif

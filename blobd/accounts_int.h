/*
 * Internals shared by the accounts files: password hashing and random
 * secrets (accounts_crypto.c), the login rate limiter (accounts_limit.c)
 * and the user record (accounts.c), used by the sessions
 * (accounts_session.c). Nothing outside accounts_*.c includes this.
 */
#ifndef BLOBD_ACCOUNTS_INT_H
#define BLOBD_ACCOUNTS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "accounts.h"
#include "errors.h"
#include "store.h"

#define ACCOUNTS_SALT_LEN 16
#define ACCOUNTS_KEY_LEN 32
#define ACCOUNTS_DIGEST_HEX_LEN 64

/* Default scrypt cost for new hashes: 2^15 * 8 * 128 bytes = 32 MiB. */
#define ACCOUNTS_SCRYPT_N 32768
#define ACCOUNTS_SCRYPT_R 8
#define ACCOUNTS_SCRYPT_P 1
/* Memory that scrypt may use. OpenSSL 3.0 allows only 32 MiB when it is
 * given 0, less than the default cost needs with its bookkeeping. Stored
 * parameters that need more are rejected as corrupt. */
#define ACCOUNTS_SCRYPT_MAXMEM (64u * 1024 * 1024)

/* A stored password hash with the parameters that made it. */
struct accounts_pwhash {
    uint64_t n;
    uint32_t r;
    uint32_t p;
    unsigned char salt[ACCOUNTS_SALT_LEN];
    unsigned char key[ACCOUNTS_KEY_LEN];
};

/* The whole user record as stored under 'u' + uid. */
struct accounts_record {
    struct accounts_user user;
    struct accounts_pwhash pw;
    char chat_code_sha256[ACCOUNTS_DIGEST_HEX_LEN + 1];
    uint64_t chat_gen;           /* bumped by every replaced chat code */
};

/* accounts_crypto.c */

/* Fill `hex` with 2 * nbytes lowercase hex digits of RAND_bytes output.
 * BLOBD_EIO when the random generator fails. */
int accounts_random_hex(char *hex, size_t nbytes, struct blobd_error *err);
/* Draw a chat code of ACCOUNTS_CHAT_CODE_LEN characters of A-Z 0-9,
 * without modulo bias. BLOBD_EIO when the random generator fails. */
int accounts_chat_code_new(char code[ACCOUNTS_CHAT_CODE_LEN + 1],
                           struct blobd_error *err);
void accounts_sha256_hex(const void *data, size_t len,
                         char hex[ACCOUNTS_DIGEST_HEX_LEN + 1]);
/* Hex SHA-256 of a chat code as typed: lowercase letters count as upper
 * case, so "k3m9q2zx7a" matches "K3M9Q2ZX7A". */
void accounts_chat_code_digest(const char *code,
                               char hex[ACCOUNTS_DIGEST_HEX_LEN + 1]);
/* Compare two hex digests in constant time. */
bool accounts_digest_equal(const char *a, const char *b);
bool accounts_hex_decode(const char *hex, unsigned char *out, size_t len);
void accounts_hex_encode(const unsigned char *in, size_t len, char *hex);

/* Hash `password` with a new random salt and the default cost. */
int accounts_password_hash(const char *password, size_t len,
                           struct accounts_pwhash *out,
                           struct blobd_error *err);
/* Set *match to whether `password` gives the stored key. */
int accounts_password_verify(const struct accounts_pwhash *pw,
                             const char *password, size_t len, bool *match,
                             struct blobd_error *err);
/* Spend the same work as a verification at the default cost, for logins
 * whose contract or user does not exist. */
void accounts_password_dummy(const char *password, size_t len);
/* True when the parameters are within what verification accepts. */
bool accounts_pwhash_params_valid(uint64_t n, uint32_t r, uint32_t p);

/* accounts_limit.c */

struct accounts_limiter;

int accounts_limiter_new(struct accounts_limiter **out,
                         struct blobd_error *err);
void accounts_limiter_free(struct accounts_limiter *lim);
/*
 * Return 0 when a login from `addr` for (`cid`, `username`) may proceed,
 * else the seconds until the window allows one again. `cid` and
 * `username` may be NULL when they are not valid names; then only the
 * address counts.
 */
unsigned accounts_limiter_check(struct accounts_limiter *lim,
                                const char *addr, const char *cid,
                                const char *username, int64_t now_ms);
/* Record a failed login (same arguments as the check). */
void accounts_limiter_fail(struct accounts_limiter *lim, const char *addr,
                           const char *cid, const char *username,
                           int64_t now_ms);
/*
 * Like accounts_limiter_check(), but logins in progress count as failures,
 * and a login that may proceed (0) takes a slot. Each such login must call
 * accounts_limiter_end() once, with `failed` set when it failed, which
 * gives the slot back.
 */
unsigned accounts_limiter_begin(struct accounts_limiter *lim,
                                const char *addr, const char *cid,
                                const char *username, int64_t now_ms);
void accounts_limiter_end(struct accounts_limiter *lim, const char *addr,
                          const char *cid, const char *username, bool failed,
                          int64_t now_ms);
/* Number of entries held, for tests of the memory bound. */
size_t accounts_limiter_size(struct accounts_limiter *lim);

/* accounts.c */

struct accounts_limiter *accounts_limiter_of(struct accounts *acc);
/* Read and decode the record of `uid`; BLOBD_ENOTFOUND when absent,
 * BLOBD_EIO when the stored value is corrupt. */
int accounts_record_get(struct store_contract *c, const char *uid,
                        struct accounts_record *out, struct blobd_error *err);
/* Find the uid of `username` (any case); BLOBD_ENOTFOUND when absent. */
int accounts_uid_find(struct store_contract *c, const char *username,
                      char uid[ACCOUNTS_UID_LEN + 1], struct blobd_error *err);
/* True when `uid` has the form of a user id. */
bool accounts_uid_valid(const char *uid);
/* True when `user` has a valid_until and `now_ms` has reached it. */
bool accounts_user_expired(const struct accounts_user *user, int64_t now_ms);

#endif

/*
 * Secrets of the accounts module: scrypt password hashes, chat codes,
 * random ids and tokens, and constant-time digest comparison. All
 * randomness comes from OpenSSL's RAND_bytes; a failing generator is an
 * error, never a fallback to something weaker.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "accounts_int.h"

static const char hex_digits[] = "0123456789abcdef";
static const char chat_code_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

void accounts_hex_encode(const unsigned char *in, size_t len, char *hex)
{
    for (size_t i = 0; i < len; i++) {
        hex[2 * i] = hex_digits[in[i] >> 4];
        hex[2 * i + 1] = hex_digits[in[i] & 15];
    }
    hex[2 * len] = '\0';
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

bool accounts_hex_decode(const char *hex, unsigned char *out, size_t len)
{
    if (strlen(hex) != 2 * len)
        return false;
    for (size_t i = 0; i < len; i++) {
        int hi = hex_value(hex[2 * i]);
        int lo = hex_value(hex[2 * i + 1]);

        if (hi < 0 || lo < 0)
            return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

int accounts_random_hex(char *hex, size_t nbytes, struct blobd_error *err)
{
    unsigned char buf[64];

    if (nbytes > sizeof(buf))
        return blobd_fail(err, BLOBD_EIO, "random request of %zu bytes "
                          "is too large", nbytes);
    if (RAND_bytes(buf, (int)nbytes) != 1)
        return blobd_fail(err, BLOBD_EIO, "random generator failed");
    accounts_hex_encode(buf, nbytes, hex);
    OPENSSL_cleanse(buf, sizeof(buf));
    return BLOBD_OK;
}

int accounts_chat_code_new(char code[ACCOUNTS_CHAT_CODE_LEN + 1],
                           struct blobd_error *err)
{
    /* 252 = 7 * 36: bytes from 252 up are drawn again, so each of the 36
     * characters is equally likely. */
    const unsigned limit = 252;
    unsigned char buf[32];
    size_t used = sizeof(buf);
    size_t n = 0;

    while (n < ACCOUNTS_CHAT_CODE_LEN) {
        if (used == sizeof(buf)) {
            if (RAND_bytes(buf, sizeof(buf)) != 1)
                return blobd_fail(err, BLOBD_EIO, "random generator failed");
            used = 0;
        }
        unsigned v = buf[used++];

        if (v < limit)
            code[n++] = chat_code_alphabet[v % 36];
    }
    code[n] = '\0';
    OPENSSL_cleanse(buf, sizeof(buf));
    return BLOBD_OK;
}

void accounts_sha256_hex(const void *data, size_t len,
                         char hex[ACCOUNTS_DIGEST_HEX_LEN + 1])
{
    unsigned char md[SHA256_DIGEST_LENGTH];

    SHA256(data, len, md);
    accounts_hex_encode(md, sizeof(md), hex);
}

void accounts_chat_code_digest(const char *code,
                               char hex[ACCOUNTS_DIGEST_HEX_LEN + 1])
{
    char upper[ACCOUNTS_CHAT_CODE_LEN + 1];
    size_t len = strnlen(code, ACCOUNTS_CHAT_CODE_LEN + 1);

    /* A code of the wrong length cannot match; hashing it unchanged keeps
     * the work the same as for a right one. */
    if (len != ACCOUNTS_CHAT_CODE_LEN) {
        accounts_sha256_hex(code, strlen(code), hex);
        return;
    }
    for (size_t i = 0; i < len; i++) {
        char ch = code[i];

        upper[i] = (ch >= 'a' && ch <= 'z') ? (char)(ch - 'a' + 'A') : ch;
    }
    accounts_sha256_hex(upper, len, hex);
}

bool accounts_digest_equal(const char *a, const char *b)
{
    if (strlen(a) != ACCOUNTS_DIGEST_HEX_LEN ||
        strlen(b) != ACCOUNTS_DIGEST_HEX_LEN)
        return false;
    return CRYPTO_memcmp(a, b, ACCOUNTS_DIGEST_HEX_LEN) == 0;
}

bool accounts_pwhash_params_valid(uint64_t n, uint32_t r, uint32_t p)
{
    if (n < 2 || n > (1u << 20) || (n & (n - 1)) != 0)
        return false;
    if (r < 1 || r > 32 || p < 1 || p > 16)
        return false;
    /* What OpenSSL 3.0 counts against maxmem: the p blocks of 128 * r
     * bytes and the table of N + 2 blocks. */
    uint64_t need = 128ull * r * p + 128ull * r * (n + 2);

    return need <= ACCOUNTS_SCRYPT_MAXMEM;
}

static int scrypt_derive(const char *password, size_t len,
                         const unsigned char *salt, uint64_t n, uint32_t r,
                         uint32_t p, unsigned char key[ACCOUNTS_KEY_LEN],
                         struct blobd_error *err)
{
    if (EVP_PBE_scrypt(password, len, salt, ACCOUNTS_SALT_LEN, n, r, p,
                       ACCOUNTS_SCRYPT_MAXMEM, key, ACCOUNTS_KEY_LEN) != 1)
        return blobd_fail(err, BLOBD_ENOMEM, "scrypt failed (N=%llu r=%u "
                          "p=%u)", (unsigned long long)n, r, p);
    return BLOBD_OK;
}

int accounts_password_hash(const char *password, size_t len,
                           struct accounts_pwhash *out,
                           struct blobd_error *err)
{
    out->n = ACCOUNTS_SCRYPT_N;
    out->r = ACCOUNTS_SCRYPT_R;
    out->p = ACCOUNTS_SCRYPT_P;
    if (RAND_bytes(out->salt, sizeof(out->salt)) != 1)
        return blobd_fail(err, BLOBD_EIO, "random generator failed");
    return scrypt_derive(password, len, out->salt, out->n, out->r, out->p,
                         out->key, err);
}

int accounts_password_verify(const struct accounts_pwhash *pw,
                             const char *password, size_t len, bool *match,
                             struct blobd_error *err)
{
    unsigned char key[ACCOUNTS_KEY_LEN];
    int rc;

    *match = false;
    if (!accounts_pwhash_params_valid(pw->n, pw->r, pw->p))
        return blobd_fail(err, BLOBD_EIO, "stored password hash has "
                          "invalid scrypt parameters");
    rc = scrypt_derive(password, len, pw->salt, pw->n, pw->r, pw->p, key,
                       err);
    if (rc != BLOBD_OK)
        return rc;
    *match = CRYPTO_memcmp(key, pw->key, sizeof(key)) == 0;
    OPENSSL_cleanse(key, sizeof(key));
    return BLOBD_OK;
}

void accounts_password_dummy(const char *password, size_t len)
{
    static const unsigned char salt[ACCOUNTS_SALT_LEN] = "blobd-no-user!!";
    unsigned char key[ACCOUNTS_KEY_LEN];
    static const unsigned char other[ACCOUNTS_KEY_LEN];

    /* The result is thrown away; the comparison only mirrors the work of
     * a real verification. A failure here changes nothing either way. */
    if (scrypt_derive(password, len, salt, ACCOUNTS_SCRYPT_N,
                      ACCOUNTS_SCRYPT_R, ACCOUNTS_SCRYPT_P, key,
                      NULL) == BLOBD_OK)
        (void)CRYPTO_memcmp(key, other, sizeof(key));
    OPENSSL_cleanse(key, sizeof(key));
}

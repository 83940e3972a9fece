/*
 * Error records shared by the store, accounts, chatapi and the HTTP layer.
 *
 * A failing function fills a caller-owned struct blobd_error once, at the
 * failure site, and returns its code. The HTTP layer turns the code into a
 * status and an API error code through one table (http_error_status() in
 * route_util.c). Codes are stable: they name what the API reports, not where
 * the failure happened.
 */
#ifndef BLOBD_ERRORS_H
#define BLOBD_ERRORS_H

#include <stdint.h>

enum blobd_code {
    BLOBD_OK = 0,
    BLOBD_EINVAL,          /* 400 invalid_request */
    BLOBD_EUNAUTH,         /* 401 unauthorized */
    BLOBD_EREVOKED,        /* 401 session_revoked, "wipe": true */
    BLOBD_EFORBIDDEN,      /* 403 forbidden */
    BLOBD_EEXPIRED,        /* 403 account_expired */
    BLOBD_ENOTFOUND,       /* 404 not_found */
    BLOBD_EMETHOD,         /* 405 method_not_allowed */
    BLOBD_ECONFLICT,       /* 409 conflict */
    BLOBD_EBELOWUSAGE,     /* 409 quota_below_usage */
    BLOBD_ELENGTH,         /* 411 length_required */
    BLOBD_ETOOLARGE,       /* 413 too_large */
    BLOBD_EIMAGE,          /* 415 unsupported_image */
    BLOBD_ERANGE,          /* 416 range_not_satisfiable */
    BLOBD_ERATE,           /* 429 too_many_requests */
    BLOBD_EOVERLOAD,       /* 503 overloaded */
    BLOBD_EQUOTA,          /* 507 quota_exceeded */
    BLOBD_ENOSPC,          /* 507 insufficient_storage */
    BLOBD_EIO,             /* 500 internal_error: I/O or database failure */
    BLOBD_ENOMEM,          /* 500 internal_error: out of memory */
};

/*
 * Detail of one failure. `message` is a sentence for people, lowercase,
 * without a final period. The figures are set only by the codes that
 * report them: quota_exceeded and quota_below_usage set used and quota
 * (and needed), 429 and 503 set retry_after seconds.
 */
struct blobd_error {
    enum blobd_code code;
    int sys_errno;
    uint64_t used_bytes;
    uint64_t quota_bytes;
    uint64_t needed_bytes;
    unsigned retry_after;
    char message[256];
};

/* Fill `err` (when not NULL) and return `code`. */
__attribute__((format(printf, 3, 4)))
enum blobd_code blobd_fail(struct blobd_error *err, enum blobd_code code,
                           const char *fmt, ...);

/* Reset `err` to BLOBD_OK with an empty message. */
void blobd_error_clear(struct blobd_error *err);

#endif

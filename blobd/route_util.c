/*
 * Helpers of route.h shared by every handler, the one table that turns an
 * error code into an HTTP status and an API error code, and the parser of
 * Range headers. The parser lives here rather than in routes_blobs.c, so
 * that the request fuzzer can reach it.
 */
#include "http_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct {
    unsigned status;
    const char *name;
} error_table[] = {
    [BLOBD_OK] = {200, "ok"},
    [BLOBD_EINVAL] = {400, "invalid_request"},
    [BLOBD_EUNAUTH] = {401, "unauthorized"},
    [BLOBD_EREVOKED] = {401, "session_revoked"},
    [BLOBD_EFORBIDDEN] = {403, "forbidden"},
    [BLOBD_EEXPIRED] = {403, "account_expired"},
    [BLOBD_ENOTFOUND] = {404, "not_found"},
    [BLOBD_EMETHOD] = {405, "method_not_allowed"},
    [BLOBD_ECONFLICT] = {409, "conflict"},
    [BLOBD_EBELOWUSAGE] = {409, "quota_below_usage"},
    [BLOBD_ELENGTH] = {411, "length_required"},
    [BLOBD_ETOOLARGE] = {413, "too_large"},
    [BLOBD_EIMAGE] = {415, "unsupported_image"},
    [BLOBD_ERANGE] = {416, "range_not_satisfiable"},
    [BLOBD_ERATE] = {429, "too_many_requests"},
    [BLOBD_EOVERLOAD] = {503, "overloaded"},
    [BLOBD_EQUOTA] = {507, "quota_exceeded"},
    [BLOBD_ENOSPC] = {507, "insufficient_storage"},
    [BLOBD_EIO] = {500, "internal_error"},
    [BLOBD_ENOMEM] = {500, "internal_error"},
};

unsigned http_error_status(enum blobd_code code)
{
    if ((size_t)code >= sizeof(error_table) / sizeof(error_table[0]) ||
        error_table[code].status == 0)
        return 500;
    return error_table[code].status;
}

const char *http_error_name(enum blobd_code code)
{
    if ((size_t)code >= sizeof(error_table) / sizeof(error_table[0]) ||
        !error_table[code].name)
        return "internal_error";
    return error_table[code].name;
}

const char *route_query_get(const struct route_request *req,
                            const char *name)
{
    for (unsigned i = 0; i < req->nquery; i++) {
        if (strcmp(req->query[i].name, name) == 0)
            return req->query[i].value;
    }
    return NULL;
}

int route_query_uint(const struct route_request *req, const char *name,
                     uint64_t dflt, uint64_t max, uint64_t *out,
                     struct blobd_error *err)
{
    const char *text = route_query_get(req, name);
    unsigned long long v;
    char *end;

    if (!text) {
        *out = dflt;
        return BLOBD_OK;
    }
    if (*text < '0' || *text > '9')
        return blobd_fail(err, BLOBD_EINVAL,
                          "invalid %s: a non-negative integer expected", name);
    errno = 0;
    v = strtoull(text, &end, 10);
    if (*end)
        return blobd_fail(err, BLOBD_EINVAL,
                          "invalid %s: a non-negative integer expected", name);
    /* Values above the maximum, overflowing ones included, are clamped. */
    if (errno == ERANGE || v > max)
        v = max;
    *out = v;
    return BLOBD_OK;
}

void route_reply_json(struct route_reply *rep, unsigned status, json_t *json)
{
    json_decref(rep->json);
    rep->status = status;
    rep->json = json;
}

void route_reply_empty(struct route_reply *rep, unsigned status)
{
    json_decref(rep->json);
    rep->json = NULL;
    rep->status = status;
}

void route_reply_error(struct route_reply *rep, const struct blobd_error *err)
{
    json_decref(rep->json);
    rep->json = NULL;
    rep->status = 0;
    rep->err = *err;
    if (rep->err.code == BLOBD_OK)
        rep->err.code = BLOBD_EIO;
}

void route_reply_fail(struct route_reply *rep, enum blobd_code code,
                      const char *fmt, ...)
{
    va_list ap;

    json_decref(rep->json);
    rep->json = NULL;
    rep->status = 0;
    memset(&rep->err, 0, sizeof(rep->err));
    rep->err.code = code;
    va_start(ap, fmt);
    vsnprintf(rep->err.message, sizeof(rep->err.message), fmt, ap);
    va_end(ap);
}

void route_reply_header(struct route_reply *rep, const char *name,
                        const char *value)
{
    if (rep->nheaders == sizeof(rep->headers) / sizeof(rep->headers[0]))
        return;
    rep->headers[rep->nheaders].name = name;
    snprintf(rep->headers[rep->nheaders].value,
             sizeof(rep->headers[0].value), "%s", value);
    rep->nheaders++;
}

void route_time_format(int64_t ms, char out[32])
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;

    if (ms < 0 && ms % 1000)
        secs--;
    gmtime_r(&secs, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static bool digits(const char *p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

/* Days from 1970-01-01 to the given civil date (proleptic Gregorian). */
static int64_t days_from_civil(int y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool route_time_parse(const char *text, int64_t *ms)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30,
                                31};
    int y, mo, d, h, mi, s, frac_ms = 0, off = 0;
    const char *p = text;

    if (!text || strlen(text) < 20)
        return false;
    if (!digits(p, 4, &y) || p[4] != '-' || !digits(p + 5, 2, &mo) ||
        p[7] != '-' || !digits(p + 8, 2, &d) ||
        (p[10] != 'T' && p[10] != 't') || !digits(p + 11, 2, &h) ||
        p[13] != ':' || !digits(p + 14, 2, &mi) || p[16] != ':' ||
        !digits(p + 17, 2, &s))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 ||
        mi > 59 || s > 60)
        return false;
    if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return false;
    p += 19;
    if (*p == '.') {
        int n = 0;
        p++;
        while (*p >= '0' && *p <= '9') {
            if (n < 3)
                frac_ms = frac_ms * 10 + (*p - '0');
            n++;
            p++;
        }
        if (n == 0)
            return false;
        for (; n < 3; n++)
            frac_ms *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) ||
            oh > 23 || om > 59)
            return false;
        off = (oh * 60 + om) * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return false;
    }
    if (*p)
        return false;
    if (s == 60)
        s = 59;
    *ms = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s) -
           (int64_t)off * 60) * 1000 + frac_ms;
    return true;
}

static bool parse_u64(const char **p, uint64_t *out)
{
    uint64_t v = 0;
    const char *s = *p;

    if (*s < '0' || *s > '9')
        return false;
    while (*s >= '0' && *s <= '9') {
        if (__builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v))
            return false;
        s++;
    }
    *p = s;
    *out = v;
    return true;
}

enum route_range_kind route_range_parse(const char *header, uint64_t size,
                                       uint64_t *first, uint64_t *last)
{
    const char *p;
    uint64_t a, b;

    if (!header || strncmp(header, "bytes=", 6) != 0)
        return RANGE_NONE;
    p = header + 6;
    if (strchr(p, ','))
        return RANGE_NONE;
    while (*p == ' ')
        p++;
    if (*p == '-') {
        p++;
        if (!parse_u64(&p, &b) || *p)
            return RANGE_NONE;
        if (b == 0 || size == 0)
            return RANGE_UNSATISFIABLE;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return RANGE_ONE;
    }
    if (!parse_u64(&p, &a) || *p != '-')
        return RANGE_NONE;
    p++;
    if (*p == '\0') {
        b = UINT64_MAX;
    } else if (!parse_u64(&p, &b) || *p || b < a) {
        return RANGE_NONE;
    }
    if (a >= size)
        return RANGE_UNSATISFIABLE;
    *first = a;
    *last = b >= size ? size - 1 : b;
    return RANGE_ONE;
}

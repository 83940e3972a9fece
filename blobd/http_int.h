/*
 * Private to http.c and the route table (routes.c): route entries,
 * the error table and the metrics counters.
 */
#ifndef BLOBD_HTTP_INT_H
#define BLOBD_HTTP_INT_H

#include <stdatomic.h>

#include "route.h"

enum route_body {
    BODY_NONE,       /* a body is read and ignored */
    BODY_JSON,       /* parsed into req->body, at most BLOBD_JSON_MAX */
    BODY_UPLOAD,     /* streamed to a temporary file while hashing */
};

enum route_pool {
    POOL_WORKERS,
    POOL_LOGIN,
    /* Run on the polling thread, without a suspend and resume: only for
     * handlers that never park and only read (database reads are served
     * from memory or one small file read). */
    POOL_INLINE,
};

struct route_entry {
    const char *method;
    const char *pattern;         /* "/v1/contracts/{}/users" */
    enum route_access access;
    enum route_body body;
    enum route_pool pool;
    bool operator_not_found;     /* operator gets 404, not 403 */
    route_fn fn;
};

/* The table in routes.c, ended by an entry with a NULL method. */
extern const struct route_entry routes_table[];
size_t routes_count(void);

/* Map an error code to its HTTP status and its API error code. */
unsigned http_error_status(enum blobd_code code);
const char *http_error_name(enum blobd_code code);

/* The outcome of parsing a Range header (route_util.c). */
enum route_range_kind {
    RANGE_NONE,        /* no usable Range: send everything */
    RANGE_ONE,
    RANGE_UNSATISFIABLE,
};

/*
 * Parse a single byte range of RFC 9110 for a blob of `size` bytes into
 * the inclusive [*first, *last]. Several ranges, other units and syntax
 * errors give RANGE_NONE (the whole blob is sent), as the RFC allows.
 */
enum route_range_kind route_range_parse(const char *header, uint64_t size,
                                        uint64_t *first, uint64_t *last);

/* Counters for /metrics; every field is an atomic counter. */
struct http_metrics {
    _Atomic uint64_t upload_bytes;
    _Atomic uint64_t uploads;
    _Atomic uint64_t uploads_deduplicated;
    _Atomic uint64_t quota_rejections;
    _Atomic uint64_t image_rescales;
    _Atomic uint64_t image_rescale_us;
    _Atomic uint64_t image_rejections;
    _Atomic uint64_t overload_rejections;
};

extern struct http_metrics http_metrics;

/* Render the Prometheus text of all counters; caller frees. */
char *http_metrics_render(struct blobd_app *app, size_t *len);

/* Route handlers of routes_blobs.c and routes_contracts.c. */
void routes_health(struct route_request *req, struct route_reply *rep);
void routes_metrics(struct route_request *req, struct route_reply *rep);
void routes_contracts_create(struct route_request *req,
                             struct route_reply *rep);
void routes_contracts_list(struct route_request *req,
                           struct route_reply *rep);
void routes_contracts_get(struct route_request *req,
                          struct route_reply *rep);
void routes_contracts_update(struct route_request *req,
                             struct route_reply *rep);
void routes_usage(struct route_request *req, struct route_reply *rep);
void routes_blobs_get(struct route_request *req, struct route_reply *rep);

/*
 * The upload job: runs on a worker after the body has been streamed to
 * `tmp_path` (descriptor `fd`, `size` bytes, SHA-256 `digest`).
 */
struct upload_input {
    int fd;
    const char *tmp_path;
    uint64_t size;
    unsigned char digest[STORE_DIGEST_LEN];
    unsigned char head[16];
    size_t head_len;
};
void routes_blobs_upload(struct route_request *req, struct route_reply *rep,
                         struct upload_input *in);

#endif

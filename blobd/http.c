/*
 * The HTTP layer on libmicrohttpd 0.9.75.
 *
 * Life of a request (struct http_req):
 *   1. first call of the access handler: match the route, take the request
 *      id, check Content-Length against the route's limit (411, 413 before
 *      any body byte is read) and authenticate the caller;
 *   2. body calls: JSON bodies are collected in memory up to
 *      BLOBD_JSON_MAX, uploads are written to a temporary file of the
 *      contract while SHA-256 is computed, so memory does not grow with the
 *      file. An error found mid-body (a full disk) is kept and sent once
 *      the body is drained, because libmicrohttpd can queue a response
 *      only before or after the body;
 *   3. last call: the connection is suspended and the handler runs on a
 *      worker pool; the worker resumes the connection and the next call
 *      queues the response;
 *   4. a handler may park the request (long polls): it stays suspended,
 *      without a thread, until route_wake_contract(), its deadline or
 *      shutdown puts it back on a worker;
 *   5. the completion callback logs one line and frees the request.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "accounts.h"
#include "http_int.h"
#include "log.h"
#include "pool.h"
#include "store.h"

#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
#define PARK_TICK_MS 100

struct http_metrics http_metrics;

enum req_state {
    REQ_READING,      /* first call done, body arriving */
    REQ_RUNNING,      /* suspended, a worker runs the handler */
    REQ_PARKED,       /* suspended, waiting for a wake or its deadline */
    REQ_DONE,         /* reply ready to queue */
};

struct http_req {
    struct http_server *srv;
    struct MHD_Connection *conn;
    const struct route_entry *route;
    enum req_state state;
    struct route_request rr;
    struct route_reply rep;
    char method[8];
    char path[512];
    char *query_buf;                 /* copies of query names and values */
    char request_id[72];
    char client_addr[INET6_ADDRSTRLEN];
    char token[160];
    char range[128];
    char if_none_match[160];
    struct timespec started;
    /* Body. */
    uint64_t content_length;         /* UINT64_MAX when absent */
    uint64_t body_bytes;
    char *json_buf;
    size_t json_len;
    enum blobd_code body_error;      /* sent once the body is drained */
    char body_error_msg[160];
    struct upload_input upload;
    char tmp_path[4096];
    EVP_MD_CTX *sha;
    bool queued;
    /* Parking. */
    struct http_req *park_prev, *park_next;
    bool wake_due;
    bool shutting_down;
    uint64_t bytes_out;
    unsigned status;
};

struct http_server {
    struct blobd_app *app;
    struct MHD_Daemon *daemon;
    char *tls_cert;
    char *tls_key;
    pthread_mutex_t park_mu;
    struct http_req *parked;
    pthread_t ticker;
    bool ticker_started;
    _Atomic bool stopping;
    _Atomic long in_flight;
    /* Requests by route and status: [route index + 1][status - 100];
     * index 0 is for requests that matched no route. */
    _Atomic uint64_t (*by_route)[500];
};

/* ---- small helpers ---- */

static int64_t elapsed_us(const struct timespec *since)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(now.tv_sec - since->tv_sec) * 1000000 +
           (now.tv_nsec - since->tv_nsec) / 1000;
}

static void random_hex(char *out, size_t bytes)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char rnd[32];

    if (bytes > sizeof(rnd))
        bytes = sizeof(rnd);
    if (RAND_bytes(rnd, (int)bytes) != 1)
        memset(rnd, 0, sizeof(rnd));
    for (size_t i = 0; i < bytes; i++) {
        out[2 * i] = digits[rnd[i] >> 4];
        out[2 * i + 1] = digits[rnd[i] & 0xf];
    }
    out[2 * bytes] = '\0';
}

/* A client's X-Request-Id is kept when it is 1..64 bytes of a safe set,
 * so it can go into log lines and headers unescaped. */
static bool request_id_valid(const char *id)
{
    size_t len = strlen(id);

    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
              ch == '.' || ch == ':'))
            return false;
    }
    return true;
}

static void reply_reset(struct route_reply *rep)
{
    json_decref(rep->json);
    free(rep->text);
    if (rep->fd >= 0)
        close(rep->fd);
    memset(rep, 0, sizeof(*rep));
    rep->fd = -1;
}

/* ---- route matching ---- */

/* Match `path` against `pattern`, where "{}" matches one non-empty
 * segment; captured segments point into `buf`, a copy of the path. */
static bool route_match(const char *pattern, const char *path, char *buf,
                        size_t size, const char *params[ROUTE_PARAMS_MAX])
{
    const char *p = pattern;
    char *s;
    unsigned n = 0;

    if (strlen(path) >= size)
        return false;
    memcpy(buf, path, strlen(path) + 1);
    s = buf;
    while (*p && *s) {
        if (p[0] == '{' && p[1] == '}') {
            char *end = strchr(s, '/');
            if (end == s || n == ROUTE_PARAMS_MAX)
                return false;
            params[n++] = s;
            p += 2;
            if (!end) {
                s += strlen(s);
                break;
            }
            if (*p != '/')
                return false;
            *end = '\0';
            s = end + 1;
            p++;
            continue;
        }
        if (*p != *s)
            return false;
        p++;
        s++;
    }
    return *p == '\0' && *s == '\0';
}

static const struct route_entry *route_find(struct http_req *r,
                                            bool *path_known)
{
    static _Thread_local char scratch[512];

    *path_known = false;
    for (const struct route_entry *e = routes_table; e->method; e++) {
        const char *params[ROUTE_PARAMS_MAX] = {0};
        if (!route_match(e->pattern, r->path, scratch, sizeof(scratch),
                         params))
            continue;
        *path_known = true;
        if (strcmp(e->method, r->method) != 0 &&
            !(strcmp(r->method, "HEAD") == 0 && strcmp(e->method, "GET") == 0
              && strcmp(e->pattern, "/v1/blobs/{}") == 0))
            continue;
        /* Keep the captured parameters in the request's own copy. */
        route_match(e->pattern, r->path, r->path + 256, 256, params);
        for (int i = 0; i < ROUTE_PARAMS_MAX; i++)
            r->rr.params[i] = params[i];
        return e;
    }
    return NULL;
}

/* Set the Allow header of a 405 from the routes that match the path. */
static void route_allowed_methods(struct http_req *r)
{
    static _Thread_local char scratch[512];
    char allow[96] = "";
    size_t len = 0;

    for (const struct route_entry *e = routes_table; e->method; e++) {
        const char *params[ROUTE_PARAMS_MAX] = {0};
        bool head = strcmp(e->pattern, "/v1/blobs/{}") == 0;

        if (!route_match(e->pattern, r->path, scratch, sizeof(scratch),
                         params))
            continue;
        len += (size_t)snprintf(allow + len, sizeof(allow) - len, "%s%s%s",
                                len ? ", " : "", e->method,
                                head ? ", HEAD" : "");
        if (len >= sizeof(allow))
            break;
    }
    route_reply_header(&r->rep, "Allow", allow);
}

/* ---- replies ---- */

/* Messages may quote client input (a path, a header, an id), and jansson
 * rejects invalid UTF-8, which would leave the response without a body.
 * Such messages are sent with every non-ASCII byte replaced by '?'. */
static json_t *error_message(const char *text)
{
    char safe[sizeof(((struct blobd_error *)0)->message)];
    json_t *msg = json_string(text);
    size_t i;

    if (msg)
        return msg;
    for (i = 0; text[i] && i + 1 < sizeof(safe); i++)
        safe[i] = (unsigned char)text[i] < 0x80 ? text[i] : '?';
    safe[i] = '\0';
    return json_string(safe);
}

static json_t *error_json(const struct blobd_error *err)
{
    json_t *inner = json_pack("{s:s, s:o}", "code",
                              http_error_name(err->code), "message",
                              error_message(err->message[0]
                                                ? err->message
                                                : http_error_name(err->code)));

    if (err->code == BLOBD_EQUOTA || err->code == BLOBD_EBELOWUSAGE) {
        json_object_set_new(inner, "used_bytes",
                            json_integer((json_int_t)err->used_bytes));
        json_object_set_new(inner, "quota_bytes",
                            json_integer((json_int_t)err->quota_bytes));
        if (err->code == BLOBD_EQUOTA)
            json_object_set_new(inner, "needed_bytes",
                                json_integer((json_int_t)err->needed_bytes));
    }
    if (err->code == BLOBD_EREVOKED)
        json_object_set_new(inner, "wipe", json_true());
    return json_pack("{s:o}", "error", inner);
}

static struct MHD_Response *build_response(struct http_req *r,
                                           unsigned *status)
{
    struct route_reply *rep = &r->rep;
    struct MHD_Response *resp;
    const char *type = NULL;
    char retry[24];

    if (rep->status == 0) {
        *status = http_error_status(rep->err.code);
        json_decref(rep->json);
        rep->json = error_json(&rep->err);
    } else {
        *status = rep->status;
    }

    if (rep->fd >= 0) {
        resp = MHD_create_response_from_fd_at_offset64(rep->fd_length,
                                                       rep->fd,
                                                       rep->fd_offset);
        if (resp)
            rep->fd = -1;   /* the response owns and closes it */
        r->bytes_out = rep->fd_length;
    } else if (rep->text) {
        resp = MHD_create_response_from_buffer(rep->text_len, rep->text,
                                               MHD_RESPMEM_MUST_FREE);
        if (resp)
            rep->text = NULL;
        type = rep->text_type;
        r->bytes_out = rep->text_len;
    } else if (rep->json) {
        char *body = json_dumps(rep->json, JSON_COMPACT);
        size_t len = body ? strlen(body) : 0;
        resp = MHD_create_response_from_buffer(len, body,
                                               MHD_RESPMEM_MUST_FREE);
        type = "application/json; charset=utf-8";
        r->bytes_out = len;
    } else {
        resp = MHD_create_response_from_buffer(0, NULL,
                                               MHD_RESPMEM_PERSISTENT);
    }
    if (!resp)
        return NULL;
    if (type)
        MHD_add_response_header(resp, "Content-Type", type);
    MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    if (rep->status == 0 && rep->err.retry_after) {
        snprintf(retry, sizeof(retry), "%u", rep->err.retry_after);
        MHD_add_response_header(resp, "Retry-After", retry);
    }
    for (unsigned i = 0; i < rep->nheaders; i++)
        MHD_add_response_header(resp, rep->headers[i].name,
                                rep->headers[i].value);
    return resp;
}

static enum MHD_Result queue_reply(struct http_req *r)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    unsigned status;

    resp = build_response(r, &status);
    if (!resp)
        return MHD_NO;
    r->status = status;
    r->queued = true;
    ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result queue_error(struct http_req *r, enum blobd_code code,
                                   const char *fmt, ...)
{
    va_list ap;

    reply_reset(&r->rep);
    r->rep.err.code = code;
    va_start(ap, fmt);
    vsnprintf(r->rep.err.message, sizeof(r->rep.err.message), fmt, ap);
    va_end(ap);
    if (code == BLOBD_EOVERLOAD)
        r->rep.err.retry_after = 1;
    return queue_reply(r);
}

/* ---- authentication ---- */

static bool token_is_operator(const struct blobd_app *app, const char *token)
{
    size_t len = strlen(token);

    return len == strlen(app->operator_token) && len > 0 &&
           CRYPTO_memcmp(token, app->operator_token, len) == 0;
}

/* Fill r->rr.caller from the Authorization header and apply the route's
 * access rule. Returns BLOBD_OK or fills `err`. Blocks briefly: a session
 * lookup is a database read. */
static int authorize(struct http_req *r, struct blobd_error *err)
{
    struct blobd_app *app = r->srv->app;
    struct route_caller *caller = &r->rr.caller;
    const struct route_entry *e = r->route;
    const char *cid = e->access == ROUTE_CONTRACT ||
                      e->access == ROUTE_OPERATOR_CONTRACT
                          ? r->rr.params[0] : NULL;
    int rc;

    if (caller->contract) {
        store_contract_release(caller->contract);
        caller->contract = NULL;
    }
    memset(caller, 0, sizeof(*caller));
    if (e->access == ROUTE_PUBLIC)
        return BLOBD_OK;
    if (r->token[0] == '\0')
        return blobd_fail(err, BLOBD_EUNAUTH, "missing bearer token");

    if (token_is_operator(app, r->token)) {
        caller->kind = CALLER_OPERATOR;
        if (e->access == ROUTE_USER)
            return blobd_fail(err, e->operator_not_found ? BLOBD_ENOTFOUND
                                                         : BLOBD_EFORBIDDEN,
                              e->operator_not_found
                                  ? "not found"
                                  : "the operator cannot use this route");
        if (cid)
            return store_contract_acquire(app->store, cid, &caller->contract,
                                          err);
        return BLOBD_OK;
    }

    {
        struct accounts_session sess;
        rc = accounts_session_auth(app->accounts, app->store, r->token,
                                   store_now_ms(),
                                   app->cfg->limits.session_idle_days,
                                   &caller->contract, &sess, err);
        if (rc != BLOBD_OK)
            return rc;
        caller->kind = CALLER_USER;
        snprintf(caller->uid, sizeof(caller->uid), "%s", sess.uid);
        caller->admin = sess.admin;
        caller->valid_until_ms = sess.valid_until_ms;
        snprintf(caller->session_id, sizeof(caller->session_id), "%s",
                 sess.session_id);
    }

    switch (e->access) {
    case ROUTE_USER:
        return BLOBD_OK;
    case ROUTE_OPERATOR:
        return blobd_fail(err, BLOBD_EFORBIDDEN,
                          "this route needs the operator token");
    case ROUTE_CONTRACT:
    case ROUTE_OPERATOR_CONTRACT:
        /* Another contract's id gets the same 404 as an unknown one. */
        if (strcmp(store_contract_id(caller->contract), cid) != 0)
            return blobd_fail(err, BLOBD_ENOTFOUND, "contract not found");
        if (e->access == ROUTE_OPERATOR_CONTRACT)
            return blobd_fail(err, BLOBD_EFORBIDDEN,
                              "this route needs the operator token");
        if (!caller->admin)
            return blobd_fail(err, BLOBD_EFORBIDDEN,
                              "this route needs a contract admin");
        return BLOBD_OK;
    case ROUTE_PUBLIC:
        break;
    }
    return BLOBD_OK;
}

/* ---- running handlers on workers ---- */

static void park_insert(struct http_req *r);
static void run_job(void *arg);

static struct pool *pool_for(struct http_req *r)
{
    struct blobd_app *app = r->srv->app;

    if (r->route->pool == POOL_LOGIN)
        return app->login_pool;
    if (r->route->body == BODY_UPLOAD && r->upload.fd >= 0 &&
        r->body_error == BLOBD_OK) {
        /* JPEG and PNG bodies go to the bounded image pool. */
        const unsigned char *h = r->upload.head;
        if ((r->upload.head_len >= 3 && h[0] == 0xff && h[1] == 0xd8 &&
             h[2] == 0xff) ||
            (r->upload.head_len >= 8 && memcmp(h, "\x89PNG\r\n\x1a\n", 8) == 0))
            return app->image_pool;
    }
    return app->workers;
}

static void finish_job(struct http_req *r)
{
    r->state = REQ_DONE;
    MHD_resume_connection(r->conn);
}

static void run_job(void *arg)
{
    struct http_req *r = arg;
    struct blobd_error err;

    log_set_request_id(r->request_id);
    /* A parked request woken again re-checks its session: a replaced chat
     * code or an expired account ends a waiting sync at once. */
    if (r->rr.deadline_ms != 0 && r->route->access != ROUTE_PUBLIC) {
        if (authorize(r, &err) != BLOBD_OK) {
            reply_reset(&r->rep);
            route_reply_error(&r->rep, &err);
            finish_job(r);
            log_set_request_id(NULL);
            return;
        }
        if (r->shutting_down)
            r->rr.deadline_ms = 1;
    }
    reply_reset(&r->rep);
    if (r->route->body == BODY_UPLOAD)
        routes_blobs_upload(&r->rr, &r->rep, &r->upload);
    else
        r->route->fn(&r->rr, &r->rep);

    if (r->rep.park && !r->srv->stopping) {
        r->rep.park = false;
        r->state = REQ_PARKED;
        park_insert(r);
    } else if (r->rep.park) {
        /* Shutting down: run once more with the deadline passed, so the
         * handler sends what it has. */
        r->rep.park = false;
        r->rr.deadline_ms = 1;
        reply_reset(&r->rep);
        r->route->fn(&r->rr, &r->rep);
        finish_job(r);
    } else {
        finish_job(r);
    }
    log_set_request_id(NULL);
}

static int dispatch(struct http_req *r)
{
    struct pool *p = pool_for(r);

    r->state = REQ_RUNNING;
    MHD_suspend_connection(r->conn);
    if (pool_submit(p, run_job, r) != 0) {
        http_metrics.overload_rejections++;
        reply_reset(&r->rep);
        blobd_fail(&r->rep.err, BLOBD_EOVERLOAD,
                   "the server is busy; retry after the time in Retry-After");
        r->rep.err.retry_after = 1;
        r->state = REQ_DONE;
        MHD_resume_connection(r->conn);
    }
    return 0;
}

/* ---- parking ---- */

static void park_insert(struct http_req *r)
{
    struct http_server *srv = r->srv;

    pthread_mutex_lock(&srv->park_mu);
    r->wake_due = false;
    r->park_prev = NULL;
    r->park_next = srv->parked;
    if (srv->parked)
        srv->parked->park_prev = r;
    srv->parked = r;
    pthread_mutex_unlock(&srv->park_mu);
}

static void park_remove_locked(struct http_server *srv, struct http_req *r)
{
    if (r->park_prev)
        r->park_prev->park_next = r->park_next;
    else
        srv->parked = r->park_next;
    if (r->park_next)
        r->park_next->park_prev = r->park_prev;
    r->park_prev = r->park_next = NULL;
}

/* Put the due parked requests back on the workers. */
static void park_dispatch_due(struct http_server *srv)
{
    struct http_req *due = NULL;

    pthread_mutex_lock(&srv->park_mu);
    for (struct http_req *r = srv->parked, *next; r; r = next) {
        next = r->park_next;
        if (!r->wake_due)
            continue;
        park_remove_locked(srv, r);
        r->park_next = due;
        due = r;
    }
    pthread_mutex_unlock(&srv->park_mu);

    while (due) {
        struct http_req *r = due;
        due = r->park_next;
        r->park_next = NULL;
        r->state = REQ_RUNNING;
        if (pool_submit(srv->app->workers, run_job, r) != 0) {
            /* Busy: stay parked and try again on the next tick. */
            r->state = REQ_PARKED;
            park_insert(r);
            pthread_mutex_lock(&srv->park_mu);
            r->wake_due = true;
            pthread_mutex_unlock(&srv->park_mu);
        }
    }
}

/* Shutdown: make every parked request due, so that it is sent at once. */
static void park_flush_all(struct http_server *srv)
{
    pthread_mutex_lock(&srv->park_mu);
    for (struct http_req *r = srv->parked; r; r = r->park_next) {
        r->wake_due = true;
        r->shutting_down = true;
    }
    pthread_mutex_unlock(&srv->park_mu);
    park_dispatch_due(srv);
}

static bool uid_listed(const char *uid, char *const *uids, size_t nuids)
{
    for (size_t i = 0; i < nuids; i++) {
        if (strcmp(uids[i], uid) == 0)
            return true;
    }
    return false;
}

/* Mark the parked requests of contract `cid` due, all of them when `uids`
 * is NULL, else those of the listed users, and dispatch them. */
static void park_wake(struct http_server *srv, const char *cid,
                      char *const *uids, size_t nuids)
{
    bool any = false;

    if (!srv)
        return;
    pthread_mutex_lock(&srv->park_mu);
    for (struct http_req *r = srv->parked; r; r = r->park_next) {
        struct store_contract *c = r->rr.caller.contract;
        if (!c || strcmp(store_contract_id(c), cid) != 0)
            continue;
        if (uids && !uid_listed(r->rr.caller.uid, uids, nuids))
            continue;
        r->wake_due = true;
        any = true;
    }
    pthread_mutex_unlock(&srv->park_mu);
    if (any)
        park_dispatch_due(srv);
}

void route_wake_contract(struct blobd_app *app, const char *cid)
{
    park_wake(app->http, cid, NULL, 0);
}

void route_wake_users(struct blobd_app *app, const char *cid,
                      char *const *uids, size_t nuids)
{
    park_wake(app->http, cid, uids, nuids);
}

static void *ticker_main(void *arg)
{
    struct http_server *srv = arg;
    struct timespec pause = {0, PARK_TICK_MS * 1000000L};

    while (!srv->stopping) {
        int64_t now = store_now_ms();
        bool any = false;

        pthread_mutex_lock(&srv->park_mu);
        for (struct http_req *r = srv->parked; r; r = r->park_next) {
            if (r->wake_due || now >= r->rr.deadline_ms ||
                (r->rr.caller.valid_until_ms &&
                 now >= r->rr.caller.valid_until_ms)) {
                r->wake_due = true;
                any = true;
            }
        }
        pthread_mutex_unlock(&srv->park_mu);
        if (any)
            park_dispatch_due(srv);
        nanosleep(&pause, NULL);
    }
    return NULL;
}

/* ---- body handling ---- */

static void upload_discard(struct http_req *r)
{
    if (r->upload.fd >= 0) {
        close(r->upload.fd);
        r->upload.fd = -1;
    }
    if (r->tmp_path[0]) {
        unlink(r->tmp_path);
        r->tmp_path[0] = '\0';
    }
}

static void body_fail(struct http_req *r, enum blobd_code code,
                      const char *msg)
{
    if (r->body_error != BLOBD_OK)
        return;
    r->body_error = code;
    snprintf(r->body_error_msg, sizeof(r->body_error_msg), "%s", msg);
    if (r->route && r->route->body == BODY_UPLOAD)
        upload_discard(r);
    free(r->json_buf);
    r->json_buf = NULL;
}

static int upload_begin(struct http_req *r, struct blobd_error *err)
{
    int rc = store_tmp_create(r->rr.caller.contract, &r->upload.fd,
                              r->tmp_path, sizeof(r->tmp_path), err);

    if (rc != BLOBD_OK)
        return rc;
    r->upload.tmp_path = r->tmp_path;
    /* Claim the body's disk space first, so that uploads cannot fill the
     * disk that the databases need. */
    rc = store_tmp_reserve(r->rr.caller.contract, r->upload.fd,
                           r->content_length, err);
    if (rc != BLOBD_OK)
        return rc;
    r->sha = EVP_MD_CTX_new();
    if (!r->sha || EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL) != 1)
        return blobd_fail(err, BLOBD_ENOMEM, "hash context failed");
    return BLOBD_OK;
}

static void upload_chunk(struct http_req *r, const char *data, size_t len)
{
    size_t done = 0;

    if (r->upload.head_len < sizeof(r->upload.head)) {
        size_t take = sizeof(r->upload.head) - r->upload.head_len;
        if (take > len)
            take = len;
        memcpy(r->upload.head + r->upload.head_len, data, take);
        r->upload.head_len += take;
    }
    EVP_DigestUpdate(r->sha, data, len);
    while (done < len) {
        ssize_t n = write(r->upload.fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            log_warn("http", "upload_write_failed", "path=%s error=\"%s\"",
                     r->tmp_path, strerror(e));
            body_fail(r, (e == ENOSPC || e == EDQUOT) ? BLOBD_ENOSPC
                                                      : BLOBD_EIO,
                      (e == ENOSPC || e == EDQUOT)
                          ? "the server's disk is full"
                          : "writing the upload failed");
            return;
        }
        done += (size_t)n;
    }
}

/* Cut bodies that arrive slower than the configured floor, so that slow
 * clients cannot hold connections and temporary files for ever. */
static bool body_too_slow(struct http_req *r)
{
    const struct blobd_limits *l = &r->srv->app->cfg->limits;
    int64_t us = elapsed_us(&r->started);
    uint64_t secs = (uint64_t)(us / 1000000);

    if (l->min_upload_rate_bytes == 0 || secs < l->upload_rate_grace_seconds)
        return false;
    return r->body_bytes / secs < l->min_upload_rate_bytes;
}

static void body_data(struct http_req *r, const char *data, size_t len)
{
    r->body_bytes += len;
    if (r->body_error != BLOBD_OK)
        return;
    switch (r->route->body) {
    case BODY_UPLOAD:
        if (r->body_bytes > r->srv->app->cfg->limits.max_upload_bytes) {
            body_fail(r, BLOBD_ETOOLARGE, "the upload is too large");
            return;
        }
        upload_chunk(r, data, len);
        break;
    case BODY_JSON:
        if (r->json_len + len > BLOBD_JSON_MAX) {
            body_fail(r, BLOBD_ETOOLARGE, "the JSON body is too large");
            return;
        }
        {
            char *grown = realloc(r->json_buf, r->json_len + len + 1);
            if (!grown) {
                body_fail(r, BLOBD_ENOMEM, "out of memory");
                return;
            }
            r->json_buf = grown;
        }
        memcpy(r->json_buf + r->json_len, data, len);
        r->json_len += len;
        break;
    case BODY_NONE:
        break;
    }
}

/* The body is complete: turn it into the handler's input. */
static int body_finish(struct http_req *r, struct blobd_error *err)
{
    if (r->body_error != BLOBD_OK)
        return blobd_fail(err, r->body_error, "%s", r->body_error_msg);
    if (r->route->body == BODY_JSON && r->json_len > 0) {
        json_error_t jerr;
        r->rr.body = json_loadb(r->json_buf, r->json_len,
                                JSON_REJECT_DUPLICATES, &jerr);
        if (!r->rr.body)
            return blobd_fail(err, BLOBD_EINVAL,
                              "invalid JSON body at line %d column %d: %s",
                              jerr.line, jerr.column, jerr.text);
    }
    if (r->route->body == BODY_UPLOAD) {
        unsigned int mdlen = 0;
        if (r->content_length != UINT64_MAX &&
            r->body_bytes != r->content_length)
            return blobd_fail(err, BLOBD_EINVAL,
                              "the body is shorter than Content-Length");
        EVP_DigestFinal_ex(r->sha, r->upload.digest, &mdlen);
        r->upload.size = r->body_bytes;
    }
    return BLOBD_OK;
}

/* ---- the access handler ---- */

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind,
                                     const char *key, const char *value)
{
    struct http_req *r = cls;
    size_t klen = strlen(key), vlen = value ? strlen(value) : 0;
    size_t used = 0;
    char *grown;

    (void)kind;
    if (r->rr.nquery == ROUTE_QUERY_MAX)
        return MHD_YES;
    for (unsigned i = 0; i < r->rr.nquery; i++)
        used += strlen(r->rr.query[i].name) + strlen(r->rr.query[i].value) + 2;
    /* Keep the copies in one buffer; rebuild pointers after growing. */
    grown = realloc(r->query_buf, used + klen + vlen + 2);
    if (!grown)
        return MHD_NO;
    if (grown != r->query_buf) {
        size_t off = 0;
        for (unsigned i = 0; i < r->rr.nquery; i++) {
            r->rr.query[i].name = grown + off;
            off += strlen(grown + off) + 1;
            r->rr.query[i].value = grown + off;
            off += strlen(grown + off) + 1;
        }
        r->query_buf = grown;
    }
    memcpy(grown + used, key, klen + 1);
    memcpy(grown + used + klen + 1, value ? value : "", vlen + 1);
    r->rr.query[r->rr.nquery].name = grown + used;
    r->rr.query[r->rr.nquery].value = grown + used + klen + 1;
    r->rr.nquery++;
    return MHD_YES;
}

static void client_address(struct http_req *r)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = info ? info->client_addr : NULL;

    snprintf(r->client_addr, sizeof(r->client_addr), "unknown");
    if (!sa)
        return;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
                  r->client_addr, sizeof(r->client_addr));
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
                  r->client_addr, sizeof(r->client_addr));
}

/*
 * Decode %HH in the path and the query, except in a value that contains
 * "%00", because the NUL would cut the decoded C string short and
 * "/v1/blobs/<id>%00x" would name <id>. Such a value stays encoded, and no
 * id or number contains '%'.
 */
static size_t unescape_without_nul(void *cls, struct MHD_Connection *conn,
                                   char *text)
{
    (void)cls;
    (void)conn;
    if (strstr(text, "%00"))
        return strlen(text);
    return MHD_http_unescape(text);
}

static bool parse_length(const char *text, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (!text || *text < '0' || *text > '9')
        return false;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

struct framing {
    unsigned lengths;
    unsigned transfer_encodings;
};

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind,
                                     const char *key, const char *value)
{
    struct framing *f = cls;

    (void)kind;
    (void)value;
    if (strcasecmp(key, "Content-Length") == 0)
        f->lengths++;
    else if (strcasecmp(key, "Transfer-Encoding") == 0)
        f->transfer_encodings++;
    return MHD_YES;
}

/* True when the request gives its body length more than one way. */
static bool framing_ambiguous(struct http_req *r)
{
    struct framing f = {0, 0};

    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_framing, &f);
    return f.lengths > 1 || (f.lengths && f.transfer_encodings);
}

static enum MHD_Result first_call(struct http_req *r)
{
    struct http_server *srv = r->srv;
    const char *hdr;
    bool path_known;
    struct blobd_error err;

    hdr = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                      "X-Request-Id");
    if (hdr && request_id_valid(hdr))
        snprintf(r->request_id, sizeof(r->request_id), "%s", hdr);
    else
        random_hex(r->request_id, 8);
    client_address(r);
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, collect_query,
                              r);
    hdr = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                      "Authorization");
    if (hdr && strncasecmp(hdr, "Bearer ", 7) == 0 &&
        strlen(hdr + 7) < sizeof(r->token))
        snprintf(r->token, sizeof(r->token), "%s", hdr + 7);

    hdr = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Range");
    if (hdr && strlen(hdr) < sizeof(r->range)) {
        snprintf(r->range, sizeof(r->range), "%s", hdr);
        r->rr.range = r->range;
    }
    hdr = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                      "If-None-Match");
    if (hdr && strlen(hdr) < sizeof(r->if_none_match)) {
        snprintf(r->if_none_match, sizeof(r->if_none_match), "%s", hdr);
        r->rr.if_none_match = r->if_none_match;
    }

    r->route = route_find(r, &path_known);
    if (!r->route) {
        if (path_known) {
            reply_reset(&r->rep);
            route_allowed_methods(r);
            route_reply_fail(&r->rep, BLOBD_EMETHOD,
                             "method %s is not allowed on %s", r->method,
                             r->path);
            return queue_reply(r);
        }
        return queue_error(r, BLOBD_ENOTFOUND, "no route for %s", r->path);
    }

    r->content_length = UINT64_MAX;
    if (framing_ambiguous(r)) {
        /* RFC 9112 6.3: conflicting lengths could smuggle a second
         * request past a proxy, so the connection ends after the 400. */
        reply_reset(&r->rep);
        route_reply_header(&r->rep, "Connection", "close");
        route_reply_fail(&r->rep, BLOBD_EINVAL,
                         "invalid request framing: several Content-Length "
                         "headers, or Content-Length with "
                         "Transfer-Encoding");
        return queue_reply(r);
    }
    hdr = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                      "Content-Length");
    if (hdr && !parse_length(hdr, &r->content_length))
        return queue_error(r, BLOBD_EINVAL, "invalid Content-Length");
    if (r->route->body == BODY_UPLOAD) {
        /* Test the header, not the value: 2^64 - 1 is a valid length. */
        if (!hdr)
            return queue_error(r, BLOBD_ELENGTH,
                               "an upload needs a Content-Length header");
        if (r->content_length > srv->app->cfg->limits.max_upload_bytes)
            return queue_error(r, BLOBD_ETOOLARGE,
                               "upload of %llu bytes is above the maximum "
                               "of %llu bytes",
                               (unsigned long long)r->content_length,
                               (unsigned long long)
                                   srv->app->cfg->limits.max_upload_bytes);
    } else if (hdr && r->content_length > BLOBD_JSON_MAX) {
        return queue_error(r, BLOBD_ETOOLARGE,
                           "request body above %d bytes", BLOBD_JSON_MAX);
    }

    if (authorize(r, &err) != BLOBD_OK) {
        reply_reset(&r->rep);
        route_reply_error(&r->rep, &err);
        return queue_reply(r);
    }
    /* The rate floor is checked as data arrives; a body that stops
     * altogether is cut by a short inactivity timeout meanwhile. */
    if (r->content_length != 0)
        MHD_set_connection_option(
            r->conn, MHD_CONNECTION_OPTION_TIMEOUT,
            (unsigned int)srv->app->cfg->limits.upload_rate_grace_seconds);
    if (r->route->body == BODY_UPLOAD &&
        upload_begin(r, &err) != BLOBD_OK) {
        /* The error is sent once the body has been drained. */
        body_fail(r, err.code, err.message);
    }
    r->state = REQ_READING;
    return MHD_YES;
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *conn,
                                      const char *url, const char *method,
                                      const char *version,
                                      const char *upload_data,
                                      size_t *upload_data_size, void **ctx)
{
    struct http_server *srv = cls;
    struct http_req *r = *ctx;

    (void)version;
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            return MHD_NO;
        r->srv = srv;
        r->conn = conn;
        r->upload.fd = -1;
        r->rep.fd = -1;
        r->rr.app = srv->app;
        r->rr.method = r->method;
        r->rr.path = r->path;
        r->rr.request_id = r->request_id;
        r->rr.client_addr = r->client_addr;
        clock_gettime(CLOCK_MONOTONIC, &r->started);
        snprintf(r->method, sizeof(r->method), "%s", method);
        *ctx = r;
        srv->in_flight++;
        if (strlen(url) >= 256) {
            snprintf(r->path, sizeof(r->path), "%.200s...", url);
            random_hex(r->request_id, 8);
            return queue_error(r, BLOBD_EINVAL, "the path is too long");
        }
        snprintf(r->path, sizeof(r->path), "%s", url);
        return first_call(r);
    }
    if (r->queued) {
        /* An early answer (411, 413, 401): the body is discarded. */
        *upload_data_size = 0;
        return MHD_YES;
    }

    if (*upload_data_size > 0) {
        body_data(r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        if (body_too_slow(r)) {
            log_info("http", "upload_too_slow", "bytes=%llu",
                     (unsigned long long)r->body_bytes);
            return MHD_NO;
        }
        return MHD_YES;
    }

    switch (r->state) {
    case REQ_READING: {
        struct blobd_error err;

        MHD_set_connection_option(
            conn, MHD_CONNECTION_OPTION_TIMEOUT,
            (unsigned int)srv->app->cfg->limits.connection_timeout_seconds);
        if (body_finish(r, &err) != BLOBD_OK) {
            upload_discard(r);
            reply_reset(&r->rep);
            route_reply_error(&r->rep, &err);
            return queue_reply(r);
        }
        if (r->route->pool == POOL_INLINE) {
            log_set_request_id(r->request_id);
            reply_reset(&r->rep);
            r->route->fn(&r->rr, &r->rep);
            log_set_request_id(NULL);
            return queue_reply(r);
        }
        dispatch(r);
        return MHD_YES;
    }
    case REQ_DONE:
        return queue_reply(r);
    case REQ_RUNNING:
    case REQ_PARKED:
        break;
    }
    return MHD_YES;
}

static const char *route_label(const struct http_req *r)
{
    return r->route ? r->route->pattern : "unmatched";
}

static void completed(void *cls, struct MHD_Connection *conn, void **ctx,
                      enum MHD_RequestTerminationCode toe)
{
    struct http_server *srv = cls;
    struct http_req *r = *ctx;
    unsigned status;
    int64_t us;

    (void)conn;
    if (!r)
        return;
    status = r->queued ? r->status : 0;
    us = elapsed_us(&r->started);
    if (status >= 100 && status < 600) {
        size_t idx = r->route ? (size_t)(r->route - routes_table) + 1 : 0;
        srv->by_route[idx][status - 100]++;
    }
    log_set_request_id(r->request_id);
    log_event(status >= 500 ? LOG_ERROR : LOG_INFO, "http", "request",
              "method=%s route=%s status=%u bytes_in=%llu bytes_out=%llu "
              "ms=%.1f contract=%s%s", r->method, route_label(r), status,
              (unsigned long long)r->body_bytes,
              (unsigned long long)r->bytes_out, (double)us / 1000.0,
              r->rr.caller.contract
                  ? store_contract_id(r->rr.caller.contract) : "-",
              toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? ""
                                                         : " aborted=1");
    log_set_request_id(NULL);

    upload_discard(r);
    if (r->sha)
        EVP_MD_CTX_free(r->sha);
    reply_reset(&r->rep);
    json_decref(r->rr.body);
    if (r->rr.caller.contract)
        store_contract_release(r->rr.caller.contract);
    free(r->json_buf);
    free(r->query_buf);
    free(r);
    *ctx = NULL;
    srv->in_flight--;
}

/* ---- start and stop ---- */

static char *read_file(const char *path, struct blobd_error *err)
{
    struct stat sb;
    char *buf;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0 || fstat(fd, &sb) < 0 || sb.st_size > (1 << 20)) {
        blobd_fail(err, BLOBD_EINVAL, "cannot read %s: %s", path,
                   fd < 0 ? strerror(errno) : "too large or unreadable");
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    buf = malloc((size_t)sb.st_size + 1);
    n = buf ? read(fd, buf, (size_t)sb.st_size) : -1;
    close(fd);
    if (n != sb.st_size) {
        free(buf);
        blobd_fail(err, BLOBD_EINVAL, "cannot read %s", path);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static int parse_listen(const char *listen, struct sockaddr_storage *ss,
                        struct blobd_error *err)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    struct addrinfo hints = {0}, *res = NULL;
    size_t hlen;

    if (!colon || colon == listen || !colon[1])
        return blobd_fail(err, BLOBD_EINVAL,
                          "invalid --listen %s: HOST:PORT expected", listen);
    hlen = (size_t)(colon - listen);
    if (hlen >= sizeof(host))
        return blobd_fail(err, BLOBD_EINVAL, "invalid --listen host");
    memcpy(host, listen, hlen);
    host[hlen] = '\0';
    if (host[0] == '[' && hlen > 2 && host[hlen - 1] == ']') {
        memmove(host, host + 1, hlen - 2);
        host[hlen - 2] = '\0';
    }
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || !res)
        return blobd_fail(err, BLOBD_EINVAL,
                          "invalid --listen %s: cannot resolve", listen);
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return BLOBD_OK;
}

int http_start(struct blobd_app *app, struct http_server **out,
               struct blobd_error *err)
{
    const struct blobd_config *cfg = app->cfg;
    struct http_server *srv = calloc(1, sizeof(*srv));
    struct sockaddr_storage ss;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int rc;

    if (!srv)
        return blobd_fail(err, BLOBD_ENOMEM, "out of memory");
    srv->app = app;
    pthread_mutex_init(&srv->park_mu, NULL);
    srv->by_route = calloc(routes_count() + 1, sizeof(*srv->by_route));
    if (!srv->by_route) {
        free(srv);
        return blobd_fail(err, BLOBD_ENOMEM, "out of memory");
    }
    rc = parse_listen(cfg->listen, &ss, err);
    if (rc != BLOBD_OK)
        goto fail;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (cfg->tls_cert) {
        srv->tls_cert = read_file(cfg->tls_cert, err);
        srv->tls_key = srv->tls_cert ? read_file(cfg->tls_key, err) : NULL;
        if (!srv->tls_key) {
            rc = BLOBD_EINVAL;
            goto fail;
        }
        flags |= MHD_USE_TLS;
    }
    app->http = srv;
    if (pthread_create(&srv->ticker, NULL, ticker_main, srv) != 0) {
        rc = blobd_fail(err, BLOBD_EIO, "cannot start the ticker thread");
        goto fail;
    }
    srv->ticker_started = true;

    {
        struct MHD_OptionItem opts[16];
        int n = 0;
        unsigned threads = ncpu > 1 ? (unsigned)ncpu : 1;

        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &ss};
        opts[n++] = (struct MHD_OptionItem){
            MHD_OPTION_CONNECTION_LIMIT,
            (intptr_t)cfg->limits.max_connections, NULL};
        opts[n++] = (struct MHD_OptionItem){
            MHD_OPTION_PER_IP_CONNECTION_LIMIT,
            (intptr_t)cfg->limits.max_connections_per_ip, NULL};
        opts[n++] = (struct MHD_OptionItem){
            MHD_OPTION_CONNECTION_TIMEOUT,
            (intptr_t)cfg->limits.connection_timeout_seconds, NULL};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE,
                                            (intptr_t)threads, NULL};
        opts[n++] = (struct MHD_OptionItem){
            MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed, srv};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                            64 * 1024, NULL};
        opts[n++] = (struct MHD_OptionItem){
            MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)unescape_without_nul,
            NULL};
        if (cfg->tls_cert) {
            opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0,
                                                srv->tls_cert};
            opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0,
                                                srv->tls_key};
            opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES,
                                                0, (void *)TLS_PRIORITIES};
        }
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
        srv->daemon = MHD_start_daemon(flags, 0, NULL, NULL, access_handler,
                                       srv, MHD_OPTION_ARRAY, opts,
                                       MHD_OPTION_END);
    }
    if (!srv->daemon) {
        rc = blobd_fail(err, BLOBD_EIO, "cannot listen on %s", cfg->listen);
        goto fail;
    }
    *out = srv;
    return BLOBD_OK;
fail:
    app->http = NULL;
    if (srv->ticker_started) {
        srv->stopping = true;
        pthread_join(srv->ticker, NULL);
    }
    free(srv->tls_cert);
    free(srv->tls_key);
    free(srv->by_route);
    free(srv);
    return rc;
}

void http_stop(struct http_server *srv, unsigned grace_ms)
{
    struct timespec pause = {0, 20 * 1000000L};
    unsigned waited = 0;

    MHD_quiesce_daemon(srv->daemon);
    srv->stopping = true;
    pthread_join(srv->ticker, NULL);

    /* Answer every parked request now, and again while waiting, since a
     * handler that was running may park after the first pass;
     * MHD_stop_daemon must not meet a suspended connection. */
    park_flush_all(srv);
    while (srv->in_flight > 0 && waited < grace_ms) {
        nanosleep(&pause, NULL);
        waited += 20;
        park_flush_all(srv);
    }
    if (srv->in_flight > 0) {
        /* MHD_stop_daemon aborts on a suspended connection. Every commit
         * is synchronous, so leaving now loses nothing acknowledged. */
        log_error("http", "stop_timeout", "in_flight=%ld grace_ms=%u",
                  (long)srv->in_flight, grace_ms);
        _exit(1);
    }
    MHD_stop_daemon(srv->daemon);
    srv->app->http = NULL;
    free(srv->tls_cert);
    free(srv->tls_key);
    free(srv->by_route);
    pthread_mutex_destroy(&srv->park_mu);
    free(srv);
}

/* ---- metrics ---- */

struct buf {
    char *data;
    size_t len, cap;
};

__attribute__((format(printf, 2, 3)))
static void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)n;
        b->data = realloc(b->data, b->cap);
        if (!b->data)
            abort();
    }
}

char *http_metrics_render(struct blobd_app *app, size_t *len)
{
    struct http_server *srv = app->http;
    struct buf b = {malloc(4096), 0, 4096};

    if (!b.data)
        abort();
    buf_printf(&b, "# HELP blobd_requests_total Requests answered, by route "
               "and status.\n# TYPE blobd_requests_total counter\n");
    for (size_t i = 0; srv && i <= routes_count(); i++) {
        for (unsigned s = 0; s < 500; s++) {
            uint64_t v = srv->by_route[i][s];
            if (!v)
                continue;
            buf_printf(&b, "blobd_requests_total{method=\"%s\",route=\"%s\","
                       "status=\"%u\"} %llu\n",
                       i ? routes_table[i - 1].method : "",
                       i ? routes_table[i - 1].pattern : "unmatched",
                       s + 100, (unsigned long long)v);
        }
    }
#define COUNTER(name, help, field)                                        \
    buf_printf(&b, "# HELP blobd_" name " " help "\n# TYPE blobd_" name   \
               " counter\nblobd_" name " %llu\n",                         \
               (unsigned long long)http_metrics.field)
    COUNTER("upload_bytes_total", "Bytes received in upload bodies.",
            upload_bytes);
    COUNTER("uploads_total", "Uploads stored or deduplicated.", uploads);
    COUNTER("uploads_deduplicated_total",
            "Uploads whose content the contract already had.",
            uploads_deduplicated);
    COUNTER("quota_rejections_total", "Uploads rejected by the quota.",
            quota_rejections);
    COUNTER("image_rescales_total", "Images processed.", image_rescales);
    COUNTER("image_rejections_total", "Images rejected as undecodable.",
            image_rejections);
    COUNTER("overload_rejections_total",
            "Requests answered 503 because a pool was full.",
            overload_rejections);
#undef COUNTER
    buf_printf(&b, "# HELP blobd_image_rescale_seconds_total Time spent "
               "processing images.\n# TYPE blobd_image_rescale_seconds_total "
               "counter\nblobd_image_rescale_seconds_total %.6f\n",
               (double)http_metrics.image_rescale_us / 1e6);
    buf_printf(&b, "# HELP blobd_requests_in_flight Requests being served."
               "\n# TYPE blobd_requests_in_flight gauge\n"
               "blobd_requests_in_flight %ld\n",
               srv ? (long)srv->in_flight : 0L);
    *len = b.len;
    return b.data;
}

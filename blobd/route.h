/*
 * The contract between the HTTP layer (http.c, routes.c) and the route
 * handlers (routes_*.c).
 *
 * The HTTP layer parses the request line, reads and parses a JSON body
 * (bounded by BLOBD_JSON_MAX), authenticates the caller and checks the
 * route's access rule before a handler runs. Handlers run on worker
 * threads with the connection suspended, so they may block on disk, the
 * database or password hashing. A handler fills `struct route_reply` and
 * returns; it never touches libmicrohttpd.
 *
 * Access rules (enum route_access) are checked centrally:
 *   ROUTE_PUBLIC     no token needed
 *   ROUTE_OPERATOR   the operator token only
 *   ROUTE_USER       a valid user session (caller.contract is set)
 *   ROUTE_CONTRACT   the operator, or an admin of the contract named by
 *                    the first path parameter; a user of another contract
 *                    gets 404, a plain user of this contract 403
 *   ROUTE_OPERATOR_CONTRACT  the operator only, on the contract named by
 *                    the first path parameter; its admins get 403, users
 *                    of other contracts 404
 * A token of the operator on a ROUTE_USER route gets 403, except where
 * the route says the operator must not learn that the target exists.
 */
#ifndef BLOBD_ROUTE_H
#define BLOBD_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "errors.h"
#include "store.h"

#define BLOBD_JSON_MAX (1024 * 1024)   /* largest JSON request body */
#define ROUTE_PARAMS_MAX 3
#define ROUTE_QUERY_MAX 8

struct blobd_app;   /* everything main wires together; see app.h */

enum route_access {
    ROUTE_PUBLIC,
    ROUTE_OPERATOR,
    ROUTE_USER,
    ROUTE_CONTRACT,
    ROUTE_OPERATOR_CONTRACT,
};

enum caller_kind {
    CALLER_NONE = 0,
    CALLER_OPERATOR,
    CALLER_USER,
};

struct route_caller {
    enum caller_kind kind;
    /* For users, their contract; for the operator on a ROUTE_CONTRACT
     * route, the contract of the path. Acquired by the HTTP layer and
     * released after the reply. NULL otherwise. */
    struct store_contract *contract;
    char uid[48];
    bool admin;                  /* user with role admin */
    int64_t valid_until_ms;      /* 0 when the account has no end */
    char session_id[72];         /* hex SHA-256 of the token */
};

struct route_query {
    const char *name;
    const char *value;
};

struct route_request {
    struct blobd_app *app;
    const char *method;
    const char *path;
    const char *params[ROUTE_PARAMS_MAX];   /* path segments in braces */
    struct route_query query[ROUTE_QUERY_MAX];
    unsigned nquery;
    json_t *body;                /* parsed JSON body, or NULL when none */
    const char *client_addr;     /* numeric address of the peer */
    const char *range;           /* Range header, NULL when absent */
    const char *if_none_match;   /* If-None-Match header, NULL when absent */
    const char *request_id;
    struct route_caller caller;
    int64_t deadline_ms;         /* set once for a parked request; 0 first */
};

struct route_reply {
    unsigned status;             /* 0: send `err` through the error table */
    json_t *json;                /* owned; sent as the body */
    char *text;                  /* owned; sent with text_type instead */
    size_t text_len;
    const char *text_type;
    struct blobd_error err;
    /*
     * Parking (long polls): a handler that has nothing to answer yet sets
     * park = true, park_seq to the contract sequence it has seen and
     * req->deadline_ms. The HTTP layer then holds the connection without a
     * thread and runs the handler again once the contract's sequence moves
     * past park_seq, the deadline passes, or the server stops.
     */
    bool park;
    uint64_t park_seq;
    /* A file body (blob downloads): sent from `fd` at `fd_offset`, length
     * fd_length; the HTTP layer closes fd. -1 when unused. */
    int fd;
    uint64_t fd_offset;
    uint64_t fd_length;
    /* Extra response headers, name and value. */
    struct {
        const char *name;
        char value[160];
    } headers[8];
    unsigned nheaders;
};

/* Add a response header; at most 8 per reply, further ones are dropped. */
void route_reply_header(struct route_reply *rep, const char *name,
                        const char *value);

typedef void (*route_fn)(struct route_request *req, struct route_reply *rep);

/* Read a query parameter, NULL when absent. */
const char *route_query_get(const struct route_request *req,
                            const char *name);
/*
 * Parse an optional non-negative integer query parameter: absent gives
 * `dflt`, above `max` is clamped to `max`, negative or non-numeric fails
 * with BLOBD_EINVAL naming the parameter.
 */
int route_query_uint(const struct route_request *req, const char *name,
                     uint64_t dflt, uint64_t max, uint64_t *out,
                     struct blobd_error *err);

/* Fill the reply. route_reply_json takes ownership of `json`. */
void route_reply_json(struct route_reply *rep, unsigned status, json_t *json);
void route_reply_empty(struct route_reply *rep, unsigned status);
/* Copy `err` into the reply; its code picks the status. */
void route_reply_error(struct route_reply *rep, const struct blobd_error *err);
/* Shorthand for route_reply_error with a fresh error. */
__attribute__((format(printf, 3, 4)))
void route_reply_fail(struct route_reply *rep, enum blobd_code code,
                      const char *fmt, ...);

/* RFC 3339 in UTC, second precision: "2026-01-31T23:59:59Z". */
void route_time_format(int64_t ms, char out[32]);
/* Parse RFC 3339 (Z or an offset, optional fraction); false when invalid. */
bool route_time_parse(const char *text, int64_t *ms);

/* Wake every parked request of the contract: after a deletion, a purge,
 * a membership change, a replaced chat code or an account change. */
void route_wake_contract(struct blobd_app *app, const char *cid);
/* Wake only the parked requests of the given users of the contract: after
 * a post, which concerns the members of one conversation. */
void route_wake_users(struct blobd_app *app, const char *cid,
                      char *const *uids, size_t nuids);

#endif

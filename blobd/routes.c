/*
 * The route table: every path of the API with its method, access rule,
 * body kind, worker pool and handler. The HTTP layer (http.c) matches
 * requests against it in order and enforces the access rule before the
 * handler runs; see route.h for the rules.
 */
#include "http_int.h"

#include "accounts.h"
#include "routes_chat.h"

#define R(m, p, a, b, pool, op404, fn) {m, p, a, b, pool, op404, fn}

const struct route_entry routes_table[] = {
    R("GET", "/healthz", ROUTE_PUBLIC, BODY_NONE, POOL_INLINE, false,
      routes_health),
    R("GET", "/metrics", ROUTE_OPERATOR, BODY_NONE, POOL_WORKERS, false,
      routes_metrics),

    /* Operator: contracts and billing. */
    R("POST", "/v1/contracts", ROUTE_OPERATOR, BODY_JSON, POOL_WORKERS, false,
      routes_contracts_create),
    R("GET", "/v1/contracts", ROUTE_OPERATOR, BODY_NONE, POOL_WORKERS, false,
      routes_contracts_list),
    R("GET", "/v1/contracts/{}", ROUTE_CONTRACT, BODY_NONE, POOL_WORKERS,
      false, routes_contracts_get),
    R("PATCH", "/v1/contracts/{}", ROUTE_OPERATOR_CONTRACT, BODY_JSON,
      POOL_WORKERS, false, routes_contracts_update),
    R("GET", "/v1/usage", ROUTE_OPERATOR, BODY_NONE, POOL_WORKERS, false,
      routes_usage),

    /* Contract admin: users, groups, purge. Password hashing runs on the
     * bounded login pool. */
    R("POST", "/v1/contracts/{}/users", ROUTE_CONTRACT, BODY_JSON, POOL_LOGIN,
      false, routes_users_create),
    R("GET", "/v1/contracts/{}/users", ROUTE_CONTRACT, BODY_NONE,
      POOL_WORKERS, false, routes_users_list),
    R("PATCH", "/v1/contracts/{}/users/{}", ROUTE_CONTRACT, BODY_JSON,
      POOL_LOGIN, false, routes_users_update),
    R("POST", "/v1/contracts/{}/users/{}/chat-code", ROUTE_CONTRACT,
      BODY_NONE, POOL_WORKERS, false, routes_users_chat_code),
    R("POST", "/v1/contracts/{}/groups", ROUTE_CONTRACT, BODY_JSON,
      POOL_WORKERS, false, routes_chat_group_create),
    R("GET", "/v1/contracts/{}/groups", ROUTE_CONTRACT, BODY_NONE,
      POOL_WORKERS, false, routes_chat_group_list),
    R("GET", "/v1/contracts/{}/groups/{}", ROUTE_CONTRACT, BODY_NONE,
      POOL_WORKERS, false, routes_chat_group_get),
    R("PUT", "/v1/contracts/{}/groups/{}/members", ROUTE_CONTRACT, BODY_JSON,
      POOL_WORKERS, false, routes_chat_group_members),
    R("DELETE", "/v1/contracts/{}/groups/{}", ROUTE_CONTRACT, BODY_NONE,
      POOL_WORKERS, false, routes_chat_group_delete),
    R("POST", "/v1/contracts/{}/purge", ROUTE_CONTRACT, BODY_JSON,
      POOL_WORKERS, false, routes_chat_purge),

    /* Users: sessions, blobs, messages. */
    R("POST", "/v1/sessions", ROUTE_PUBLIC, BODY_JSON, POOL_LOGIN, false,
      routes_users_login),
    R("DELETE", "/v1/sessions/current", ROUTE_USER, BODY_NONE, POOL_WORKERS,
      false, routes_users_logout),
    R("POST", "/v1/blobs", ROUTE_USER, BODY_UPLOAD, POOL_WORKERS, false,
      NULL),
    R("GET", "/v1/blobs/{}", ROUTE_USER, BODY_NONE, POOL_INLINE, true,
      routes_blobs_get),
    R("GET", "/v1/conversations", ROUTE_USER, BODY_NONE, POOL_WORKERS, false,
      routes_chat_conversations),
    R("POST", "/v1/conversations/{}/messages", ROUTE_USER, BODY_JSON,
      POOL_WORKERS, false, routes_chat_message_post),
    R("GET", "/v1/conversations/{}/messages", ROUTE_USER, BODY_NONE,
      POOL_WORKERS, false, routes_chat_history),
    R("DELETE", "/v1/messages/{}", ROUTE_USER, BODY_NONE, POOL_WORKERS,
      false, routes_chat_message_delete),
    R("GET", "/v1/sync", ROUTE_USER, BODY_NONE, POOL_WORKERS, false,
      routes_chat_sync),

    {0},
};

size_t routes_count(void)
{
    return sizeof(routes_table) / sizeof(routes_table[0]) - 1;
}

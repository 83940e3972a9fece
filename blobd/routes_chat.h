/*
 * Route handlers of the message API (groups, messages, sync, purge). Each
 * is a route_fn (see route.h); the access rule of each is given next to
 * it, as the route table must set it.
 */
#ifndef BLOBD_ROUTES_CHAT_H
#define BLOBD_ROUTES_CHAT_H

#include "route.h"

/* ROUTE_CONTRACT: POST /v1/contracts/{cid}/groups */
void routes_chat_group_create(struct route_request *req,
                              struct route_reply *rep);
/* ROUTE_CONTRACT: GET /v1/contracts/{cid}/groups */
void routes_chat_group_list(struct route_request *req,
                            struct route_reply *rep);
/* ROUTE_CONTRACT: GET /v1/contracts/{cid}/groups/{gid} */
void routes_chat_group_get(struct route_request *req,
                           struct route_reply *rep);
/* ROUTE_CONTRACT: PUT /v1/contracts/{cid}/groups/{gid}/members */
void routes_chat_group_members(struct route_request *req,
                               struct route_reply *rep);
/* ROUTE_CONTRACT: DELETE /v1/contracts/{cid}/groups/{gid} */
void routes_chat_group_delete(struct route_request *req,
                              struct route_reply *rep);
/* ROUTE_CONTRACT: POST /v1/contracts/{cid}/purge */
void routes_chat_purge(struct route_request *req, struct route_reply *rep);

/* ROUTE_USER: GET /v1/conversations */
void routes_chat_conversations(struct route_request *req,
                               struct route_reply *rep);
/* ROUTE_USER: POST /v1/conversations/{gid}/messages */
void routes_chat_message_post(struct route_request *req,
                              struct route_reply *rep);
/* ROUTE_USER: GET /v1/conversations/{gid}/messages */
void routes_chat_history(struct route_request *req, struct route_reply *rep);
/* ROUTE_USER: DELETE /v1/messages/{mid} */
void routes_chat_message_delete(struct route_request *req,
                                struct route_reply *rep);
/* ROUTE_USER: GET /v1/sync (parks while nothing is new; see route.h) */
void routes_chat_sync(struct route_request *req, struct route_reply *rep);

#endif

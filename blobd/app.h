/*
 * The application context that main wires together and hands to every
 * route handler. There is no global mutable state: what a handler needs
 * hangs off this struct.
 */
#ifndef BLOBD_APP_H
#define BLOBD_APP_H

#include "config.h"
#include "store.h"

struct accounts;
struct http_server;
struct pool;

struct blobd_app {
    const struct blobd_config *cfg;
    struct store *store;
    struct accounts *accounts;
    struct http_server *http;
    struct pool *workers;        /* general request work */
    struct pool *image_pool;     /* image rescaling, bounded */
    struct pool *login_pool;     /* password hashing, bounded */
    char operator_token[128];
};

#endif

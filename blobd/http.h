/*
 * The HTTP server: libmicrohttpd with epoll polling threads, connections
 * suspended while worker threads run the route handlers, parked long polls,
 * request logging and metrics.
 *
 * Limits: request bodies of JSON routes up to BLOBD_JSON_MAX bytes; upload
 * bodies up to [limits] max_upload_bytes, streamed to disk; connections up
 * to max_connections in total and max_connections_per_ip per address; an
 * upload body slower than min_upload_rate_bytes per second after
 * upload_rate_grace_seconds is cut.
 */
#ifndef BLOBD_HTTP_H
#define BLOBD_HTTP_H

#include "app.h"
#include "errors.h"

struct http_server;

/* Listen on cfg->listen (TLS when cfg->tls_cert is set) and serve. */
int http_start(struct blobd_app *app, struct http_server **out,
               struct blobd_error *err);
/* Stop accepting, answer parked requests at once, wait up to `grace_ms`
 * for requests in flight, then stop the daemon. When requests are still
 * running after the grace period, the process exits with status 1. */
void http_stop(struct http_server *srv, unsigned grace_ms);

#endif

/*
 * Logging: one line per event on stderr.
 *
 * Text lines read `2026-01-31T23:59:59.123Z info store recovered k=v ...`;
 * with log_init(true) each line is a JSON object with the same fields
 * (time, level, module, event, the key/value pairs). The request id of the
 * calling thread, set with log_set_request_id(), is appended by the
 * logger, so call sites never retype it. Never log a secret.
 *
 * Fields are passed as a printf format of `key=value` pairs separated by
 * single spaces; values must not contain spaces unless quoted with "".
 */
#ifndef BLOBD_LOG_H
#define BLOBD_LOG_H

#include <stdbool.h>

enum log_level {
    LOG_ERROR = 0,
    LOG_WARN,
    LOG_INFO,
    LOG_DEBUG,
};

void log_init(bool json, enum log_level level);
bool log_enabled(enum log_level level);
/* Request id appended to this thread's lines; NULL clears it. */
void log_set_request_id(const char *request_id);

__attribute__((format(printf, 4, 5)))
void log_event(enum log_level level, const char *module, const char *event,
               const char *fields, ...);

#define log_error(m, e, ...) log_event(LOG_ERROR, m, e, __VA_ARGS__)
#define log_warn(m, e, ...) log_event(LOG_WARN, m, e, __VA_ARGS__)
#define log_info(m, e, ...) log_event(LOG_INFO, m, e, __VA_ARGS__)
#define log_debug(m, e, ...)                                    \
    do {                                                        \
        if (log_enabled(LOG_DEBUG))                             \
            log_event(LOG_DEBUG, m, e, __VA_ARGS__);            \
    } while (0)

#endif

/*
 * The logger behind log.h. Lines are formatted into a stack buffer and
 * written with one write(2), so lines of concurrent threads never mix.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static bool log_json;
static enum log_level log_max = LOG_INFO;
static _Thread_local char log_request_id[72];

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_init(bool json, enum log_level level)
{
    log_json = json;
    log_max = level;
}

bool log_enabled(enum log_level level)
{
    return level <= log_max;
}

void log_set_request_id(const char *request_id)
{
    if (!request_id) {
        log_request_id[0] = '\0';
        return;
    }
    snprintf(log_request_id, sizeof(log_request_id), "%s", request_id);
}

static size_t append(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (len >= LOG_LINE_MAX)
        return len;
    va_start(ap, fmt);
    n = vsnprintf(buf + len, LOG_LINE_MAX - len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return len;
    len += (size_t)n;
    return len < LOG_LINE_MAX ? len : LOG_LINE_MAX - 1;
}

/* Append `text` as the body of a JSON string (without the quotes). */
static size_t append_json_text(char *buf, size_t len, const char *text,
                               size_t text_len)
{
    for (size_t i = 0; i < text_len && len + 8 < LOG_LINE_MAX; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '"' || ch == '\\') {
            buf[len++] = '\\';
            buf[len++] = (char)ch;
        } else if (ch < 0x20) {
            len += (size_t)snprintf(buf + len, LOG_LINE_MAX - len,
                                    "\\u%04x", ch);
        } else {
            buf[len++] = (char)ch;
        }
    }
    return len;
}

/* True when `text` is a JSON number as the log fields write them: an
 * optional minus, digits without a leading zero, an optional fraction. */
static bool is_number(const char *text, size_t len)
{
    size_t i = 0, digits = 0;

    if (i < len && text[i] == '-')
        i++;
    if (i < len && text[i] == '0' && i + 1 < len && text[i + 1] != '.')
        return false;
    for (; i < len && text[i] >= '0' && text[i] <= '9'; i++)
        digits++;
    if (digits == 0)
        return false;
    if (i < len && text[i] == '.') {
        size_t frac = 0;
        for (i++; i < len && text[i] >= '0' && text[i] <= '9'; i++)
            frac++;
        if (frac == 0)
            return false;
    }
    return i == len;
}

/* Turn `k=v k2="v 2" n=3` into `,"k":"v","k2":"v 2","n":3`. */
static size_t append_json_fields(char *buf, size_t len, const char *fields)
{
    const char *p = fields;

    while (*p) {
        const char *key, *eq, *val, *end;

        while (*p == ' ')
            p++;
        if (!*p)
            break;
        key = p;
        eq = strchr(p, '=');
        if (!eq)
            break;
        val = eq + 1;
        if (*val == '"') {
            val++;
            end = strchr(val, '"');
            if (!end)
                end = val + strlen(val);
            p = *end ? end + 1 : end;
        } else {
            end = strchr(val, ' ');
            if (!end)
                end = val + strlen(val);
            p = end;
        }
        len = append(buf, len, ",\"");
        len = append_json_text(buf, len, key, (size_t)(eq - key));
        if (is_number(val, (size_t)(end - val))) {
            len = append(buf, len, "\":%.*s", (int)(end - val), val);
            continue;
        }
        len = append(buf, len, "\":\"");
        len = append_json_text(buf, len, val, (size_t)(end - val));
        len = append(buf, len, "\"");
    }
    return len;
}

void log_event(enum log_level level, const char *module, const char *event,
               const char *fields, ...)
{
    char buf[LOG_LINE_MAX];
    char body[LOG_LINE_MAX / 2];
    char stamp[64];
    struct timespec ts;
    struct tm tm;
    size_t len = 0;
    va_list ap;

    if (!log_enabled(level))
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    va_start(ap, fields);
    vsnprintf(body, sizeof(body), fields, ap);
    va_end(ap);

    if (log_json) {
        len = append(buf, len, "{\"time\":\"%s\",\"level\":\"%s\","
                     "\"module\":\"%s\",\"event\":\"%s\"", stamp,
                     level_names[level], module, event);
        len = append_json_fields(buf, len, body);
        if (log_request_id[0])
            len = append(buf, len, ",\"request_id\":\"%s\"", log_request_id);
        len = append(buf, len, "}");
    } else {
        len = append(buf, len, "%s %s %s %s", stamp, level_names[level],
                     module, event);
        if (body[0])
            len = append(buf, len, " %s", body);
        if (log_request_id[0])
            len = append(buf, len, " request_id=%s", log_request_id);
    }
    if (len >= LOG_LINE_MAX - 1)
        len = LOG_LINE_MAX - 2;
    buf[len++] = '\n';
    if (write(STDERR_FILENO, buf, len) < 0) {
        /* Nowhere left to report a failing stderr. */
    }
}

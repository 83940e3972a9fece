/* Filling struct blobd_error; see errors.h. */
#include "errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum blobd_code blobd_fail(struct blobd_error *err, enum blobd_code code,
                           const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return code;
    memset(err, 0, sizeof(*err));
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return code;
}

void blobd_error_clear(struct blobd_error *err)
{
    if (err)
        memset(err, 0, sizeof(*err));
}

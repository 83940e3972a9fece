/*
 * Command line and INI file parsing; see config.h for the format.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quota.h"

#define INI_LINE_MAX 1024

struct limit_field {
    const char *name;
    size_t offset;
    uint64_t min;
};

#define LIMIT(name, min) {#name, offsetof(struct blobd_limits, name), min}

static const struct limit_field limit_fields[] = {
    LIMIT(max_upload_bytes, 0),
    LIMIT(max_image_pixels, 1),
    LIMIT(max_text_bytes, 1),
    LIMIT(unattached_grace_seconds, 0),
    LIMIT(sweep_interval_seconds, 1),
    LIMIT(session_idle_days, 1),
    LIMIT(max_connections, 4),
    LIMIT(max_connections_per_ip, 1),
    LIMIT(connection_timeout_seconds, 1),
    LIMIT(min_upload_rate_bytes, 0),
    LIMIT(upload_rate_grace_seconds, 1),
    LIMIT(worker_threads, 0),
    LIMIT(image_workers, 0),
    LIMIT(image_queue, 0),
    LIMIT(login_workers, 1),
    LIMIT(login_queue, 0),
    LIMIT(max_open_contracts, 1),
    LIMIT(min_free_bytes, 0),
};

static void limits_default(struct blobd_limits *l)
{
    l->max_upload_bytes = 104857600;
    l->max_image_pixels = 100000000;
    l->max_text_bytes = 65536;
    l->unattached_grace_seconds = 86400;
    l->sweep_interval_seconds = 60;
    l->session_idle_days = 90;
    l->max_connections = 1024;
    l->max_connections_per_ip = 64;
    l->connection_timeout_seconds = 60;
    l->min_upload_rate_bytes = 1024;
    l->upload_rate_grace_seconds = 10;
    l->worker_threads = 0;
    l->image_workers = 0;
    l->image_queue = 16;
    l->login_workers = 2;
    l->login_queue = 32;
    l->max_open_contracts = 256;
    l->min_free_bytes = 64u << 20;
}

static char *trim(char *s)
{
    char *end;

    while (*s == ' ' || *s == '\t')
        s++;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' ||
                       end[-1] == '\r' || end[-1] == '\n'))
        *--end = '\0';
    return s;
}

static bool parse_u64(const char *text, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (*text < '0' || *text > '9')
        return false;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static int set_limit(struct blobd_limits *l, const char *key,
                     const char *val, const char *file, int line,
                     struct blobd_error *err)
{
    for (size_t i = 0; i < sizeof(limit_fields) / sizeof(limit_fields[0]);
         i++) {
        const struct limit_field *f = &limit_fields[i];
        uint64_t v;

        if (strcmp(f->name, key) != 0)
            continue;
        if (!parse_u64(val, &v) || v < f->min)
            return blobd_fail(err, BLOBD_EINVAL,
                              "%s:%d: invalid value for %s: an integer of at "
                              "least %llu expected", file, line, key,
                              (unsigned long long)f->min);
        *(uint64_t *)((char *)l + f->offset) = v;
        return BLOBD_OK;
    }
    return blobd_fail(err, BLOBD_EINVAL, "%s:%d: unknown key %s in [limits]",
                      file, line, key);
}

static int load_ini(struct blobd_config *cfg, const char *file,
                    struct blobd_error *err)
{
    char buf[INI_LINE_MAX];
    char section[32] = "";
    bool plans_replaced = false;
    int line = 0, rc = BLOBD_OK;
    FILE *fp = fopen(file, "r");

    if (!fp)
        return blobd_fail(err, BLOBD_EINVAL, "cannot open config file %s: %s",
                          file, strerror(errno));
    while (fgets(buf, sizeof(buf), fp)) {
        char *s = trim(buf), *eq, *key, *val;

        line++;
        if (*s == '\0' || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close || close[1] != '\0' ||
                (size_t)(close - s - 1) >= sizeof(section)) {
                rc = blobd_fail(err, BLOBD_EINVAL, "%s:%d: invalid section",
                                file, line);
                break;
            }
            *close = '\0';
            snprintf(section, sizeof(section), "%s", s + 1);
            if (strcmp(section, "plans") != 0 &&
                strcmp(section, "limits") != 0) {
                rc = blobd_fail(err, BLOBD_EINVAL,
                                "%s:%d: unknown section [%s]", file, line,
                                section);
                break;
            }
            continue;
        }
        eq = strchr(s, '=');
        if (!eq || section[0] == '\0') {
            rc = blobd_fail(err, BLOBD_EINVAL,
                            "%s:%d: expected key = value inside a section",
                            file, line);
            break;
        }
        *eq = '\0';
        key = trim(s);
        val = trim(eq + 1);
        if (strcmp(section, "limits") == 0) {
            rc = set_limit(&cfg->limits, key, val, file, line, err);
            if (rc != BLOBD_OK)
                break;
            continue;
        }
        {
            uint64_t bytes;
            if (!plans_replaced) {
                quota_plans_free(cfg->plans);
                cfg->plans = quota_plans_new();
                plans_replaced = true;
            }
            if (!parse_u64(val, &bytes) || bytes == 0 ||
                quota_plans_set(cfg->plans, key, bytes) != QUOTA_OK) {
                rc = blobd_fail(err, BLOBD_EINVAL,
                                "%s:%d: invalid plan %s: a name of a-z 0-9 "
                                "- _ and a positive byte count expected",
                                file, line, key);
                break;
            }
        }
    }
    fclose(fp);
    return rc;
}

void config_usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--data DIR] [--listen HOST:PORT] [--config FILE]\n"
            "          [--tls-cert FILE --tls-key FILE] [--log-format "
            "text|json]\n"
            "       %s check [--data DIR] [--config FILE]\n"
            "\n"
            "  --data DIR          data directory (default ./var/blobd)\n"
            "  --listen HOST:PORT  address to listen on (default "
            "127.0.0.1:8080)\n"
            "  --config FILE       INI file with [plans] and [limits]\n"
            "  --tls-cert FILE     PEM certificate: serve HTTPS "
            "(TLS 1.2 and 1.3)\n"
            "  --tls-key FILE      PEM private key of --tls-cert\n"
            "  --log-format FMT    text (default) or json, one object per "
            "line\n"
            "  --version           print the version and exit\n"
            "\n"
            "The operator token is read from BLOBD_OPERATOR_TOKEN; when it "
            "is unset,\nDIR/operator.token is created at first start.\n",
            argv0, argv0);
}

int config_load(struct blobd_config *cfg, int argc, char **argv,
                struct blobd_error *err)
{
    int i = 1;

    memset(cfg, 0, sizeof(*cfg));
    cfg->data_dir = "./var/blobd";
    cfg->listen = "127.0.0.1:8080";
    limits_default(&cfg->limits);
    cfg->plans = quota_plans_new_default();
    if (!cfg->plans)
        return blobd_fail(err, BLOBD_ENOMEM, "out of memory");

    if (argc > 1 && strcmp(argv[1], "check") == 0) {
        cfg->check_mode = true;
        i = 2;
    }
    for (; i < argc; i++) {
        const char *opt = argv[i];
        const char **target = NULL;

        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0)
            return blobd_fail(err, BLOBD_EINVAL, "help");
        if (strcmp(opt, "--version") == 0)
            return blobd_fail(err, BLOBD_EINVAL, "version");
        if (strcmp(opt, "--data") == 0)
            target = &cfg->data_dir;
        else if (strcmp(opt, "--listen") == 0)
            target = &cfg->listen;
        else if (strcmp(opt, "--config") == 0)
            target = &cfg->config_file;
        else if (strcmp(opt, "--tls-cert") == 0)
            target = &cfg->tls_cert;
        else if (strcmp(opt, "--tls-key") == 0)
            target = &cfg->tls_key;
        else if (strcmp(opt, "--log-format") == 0) {
            if (i + 1 >= argc)
                return blobd_fail(err, BLOBD_EINVAL,
                                  "missing value for --log-format");
            opt = argv[++i];
            if (strcmp(opt, "json") == 0)
                cfg->log_json = true;
            else if (strcmp(opt, "text") != 0)
                return blobd_fail(err, BLOBD_EINVAL,
                                  "invalid --log-format %s: text or json "
                                  "expected", opt);
            continue;
        } else
            return blobd_fail(err, BLOBD_EINVAL, "unknown option %s", opt);
        if (i + 1 >= argc)
            return blobd_fail(err, BLOBD_EINVAL, "missing value for %s", opt);
        *target = argv[++i];
    }
    if (!cfg->tls_cert != !cfg->tls_key)
        return blobd_fail(err, BLOBD_EINVAL,
                          "--tls-cert and --tls-key must be given together");
    if (cfg->config_file)
        return load_ini(cfg, cfg->config_file, err);
    return BLOBD_OK;
}

void config_release(struct blobd_config *cfg)
{
    quota_plans_free(cfg->plans);
    cfg->plans = NULL;
}

/*
 * Configuration: command-line options and the INI file.
 *
 * The INI file has two sections. [plans] maps a plan name to bytes per
 * licence (defaults basic = 5000000000, pro = 10000000000; a file with a
 * [plans] section replaces the defaults). [limits] sets the fields of
 * struct blobd_limits by their names. Unknown sections and keys are
 * rejected, so a misspelt limit is not silently ignored.
 */
#ifndef BLOBD_CONFIG_H
#define BLOBD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "errors.h"

struct quota_plans;

struct blobd_limits {
    uint64_t max_upload_bytes;           /* 104857600 */
    uint64_t max_image_pixels;           /* 100000000 */
    uint64_t max_text_bytes;             /* 65536 */
    uint64_t unattached_grace_seconds;   /* 86400 */
    uint64_t sweep_interval_seconds;     /* 60 */
    uint64_t session_idle_days;          /* 90 */
    uint64_t max_connections;            /* 1024, in total */
    uint64_t max_connections_per_ip;     /* 64 */
    uint64_t connection_timeout_seconds; /* 60 of inactivity */
    uint64_t min_upload_rate_bytes;      /* 1024 per second, after the grace */
    uint64_t upload_rate_grace_seconds;  /* 10 */
    uint64_t worker_threads;             /* 0: twice the CPU count, at least 4 */
    uint64_t image_workers;              /* 0: the CPU count */
    uint64_t image_queue;                /* 16 uploads waiting for a worker */
    uint64_t login_workers;              /* 2 */
    uint64_t login_queue;                /* 32 */
    uint64_t max_open_contracts;         /* 256 */
    uint64_t min_free_bytes;             /* 67108864 kept free on the disk */
};

struct blobd_config {
    const char *data_dir;        /* ./var/blobd */
    const char *listen;          /* 127.0.0.1:8080 */
    const char *config_file;     /* NULL: defaults only */
    const char *tls_cert;
    const char *tls_key;
    bool log_json;
    bool check_mode;             /* `blobd check` */
    struct blobd_limits limits;
    struct quota_plans *plans;   /* owned */
};

/* Parse argv and the INI file; on error, err names the option or the
 * file and line. */
int config_load(struct blobd_config *cfg, int argc, char **argv,
                struct blobd_error *err);
void config_release(struct blobd_config *cfg);
void config_usage(const char *argv0);

#endif

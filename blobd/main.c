/*
 * blobd: configuration, wiring and the process lifecycle.
 *
 * main reads the configuration, sets up the operator token, opens the
 * store and the accounts context, starts the worker pools and the HTTP
 * server, runs the periodic sweep of unreferenced blobs, and on SIGTERM
 * or SIGINT lets requests in flight finish, closes the databases and
 * exits 0. `blobd check` verifies a stopped server's data instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "accounts.h"
#include "app.h"
#include "chat.h"
#include "check.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "pool.h"
#include "store.h"

#define BLOBD_VERSION "0.1.0"

/* Long enough for a large purge; slow uploads are cut by the rate floor
 * and idle connections by the inactivity timeout well before it. */
#define STOP_GRACE_MS (10 * 60 * 1000)
#define SESSION_SWEEP_BATCH 1000

/* Read BLOBD_OPERATOR_TOKEN, or DIR/operator.token, created with 256
 * random bits and mode 0600 at first start. Logs the path, never the
 * token. */
static int operator_token(struct blobd_app *app, const char *data_dir,
                          struct blobd_error *err)
{
    const char *env = getenv("BLOBD_OPERATOR_TOKEN");
    char path[4096];
    unsigned char rnd[32];
    ssize_t n;
    int fd;

    if (env && env[0]) {
        if (strlen(env) >= sizeof(app->operator_token))
            return blobd_fail(err, BLOBD_EINVAL,
                              "BLOBD_OPERATOR_TOKEN is longer than %zu bytes",
                              sizeof(app->operator_token) - 1);
        snprintf(app->operator_token, sizeof(app->operator_token), "%s", env);
        log_info("main", "operator_token", "source=environment");
        return BLOBD_OK;
    }
    snprintf(path, sizeof(path), "%s/operator.token", data_dir);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        n = read(fd, app->operator_token, sizeof(app->operator_token) - 1);
        close(fd);
        if (n <= 0)
            return blobd_fail(err, BLOBD_EINVAL, "cannot read %s", path);
        app->operator_token[n] = '\0';
        app->operator_token[strcspn(app->operator_token, "\r\n")] = '\0';
        log_info("main", "operator_token", "source=%s", path);
        return BLOBD_OK;
    }
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return blobd_fail(err, BLOBD_EIO, "random source failed");
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(app->operator_token + 2 * i, 3, "%02x", rnd[i]);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return blobd_fail(err, BLOBD_EIO, "cannot create %s: %s", path,
                          strerror(errno));
    n = write(fd, app->operator_token, strlen(app->operator_token));
    if (n != (ssize_t)strlen(app->operator_token) || write(fd, "\n", 1) != 1 ||
        fsync(fd) != 0) {
        close(fd);
        unlink(path);
        return blobd_fail(err, BLOBD_EIO, "cannot write %s", path);
    }
    close(fd);
    log_info("main", "operator_token_created", "path=%s", path);
    return BLOBD_OK;
}

/* Sweep one marked contract; returns true to keep it marked, while it
 * still has blobs without references or the sweep failed. */
static bool sweep_contract(struct store_contract *c, void *arg)
{
    const struct blobd_limits *l = arg;
    struct blobd_error err;
    uint64_t blobs = 0, bytes = 0, sessions = 0;

    if (accounts_session_sweep(c, store_now_ms(), l->session_idle_days,
                               SESSION_SWEEP_BATCH, &sessions,
                               &err) != BLOBD_OK)
        log_warn("sweep", "session_sweep_failed", "contract=%s error=\"%s\"",
                 store_contract_id(c), err.message);
    else if (sessions)
        log_info("sweep", "sessions_ended", "contract=%s sessions=%llu",
                 store_contract_id(c), (unsigned long long)sessions);

    if (chat_sweep(c, store_now_ms(), l->unattached_grace_seconds, &blobs,
                   &bytes, &err) != BLOBD_OK) {
        log_warn("sweep", "sweep_failed", "contract=%s error=\"%s\"",
                 store_contract_id(c), err.message);
        return true;
    }
    if (blobs)
        log_info("sweep", "blobs_freed", "contract=%s blobs=%llu bytes=%llu",
                 store_contract_id(c), (unsigned long long)blobs,
                 (unsigned long long)bytes);
    return store_blob_unreferenced_exist(c);
}

static size_t worker_count(const struct blobd_limits *l)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    if (ncpu < 1)
        ncpu = 1;
    if (l->worker_threads)
        return (size_t)l->worker_threads;
    return ncpu * 2 < 4 ? 4 : (size_t)ncpu * 2;
}

static int serve(struct blobd_config *cfg)
{
    struct blobd_app app = {.cfg = cfg};
    struct store_options sopts = {
        .data_dir = cfg->data_dir,
        .plans = cfg->plans,
        .max_open_contracts = cfg->limits.max_open_contracts,
        .min_free_bytes = cfg->limits.min_free_bytes,
    };
    struct blobd_error err;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    size_t image_workers = cfg->limits.image_workers
                               ? cfg->limits.image_workers
                               : (size_t)(ncpu > 0 ? ncpu : 1);
    sigset_t sigs;
    int64_t next_sweep;
    int status = 1, sig = 0;

    if (mkdir(cfg->data_dir, 0700) < 0 && errno != EEXIST) {
        log_error("main", "data_dir_failed", "path=%s error=\"%s\"",
                  cfg->data_dir, strerror(errno));
        return 1;
    }
    if (operator_token(&app, cfg->data_dir, &err) != BLOBD_OK) {
        log_error("main", "operator_token_failed", "error=\"%s\"",
                  err.message);
        return 1;
    }
    if (store_open(&app.store, &sopts, &err) != BLOBD_OK) {
        log_error("main", "store_open_failed", "error=\"%s\"", err.message);
        return 1;
    }
    if (accounts_open(&app.accounts, &err) != BLOBD_OK) {
        log_error("main", "accounts_open_failed", "error=\"%s\"",
                  err.message);
        goto out_store;
    }
    app.workers = pool_new("workers", worker_count(&cfg->limits), 4096);
    app.image_pool = pool_new("images", image_workers,
                              cfg->limits.image_queue);
    app.login_pool = pool_new("logins", cfg->limits.login_workers,
                              cfg->limits.login_queue);
    if (!app.workers || !app.image_pool || !app.login_pool) {
        log_error("main", "pool_failed", "error=\"cannot start threads\"");
        goto out_pools;
    }
    if (http_start(&app, &app.http, &err) != BLOBD_OK) {
        log_error("main", "listen_failed", "listen=%s error=\"%s\"",
                  cfg->listen, err.message);
        goto out_pools;
    }
    log_info("main", "started", "listen=%s data=%s tls=%s", cfg->listen,
             cfg->data_dir, cfg->tls_cert ? "on" : "off");

    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    next_sweep = store_now_ms() + 1000;
    while (sig != SIGTERM && sig != SIGINT) {
        struct timespec tick = {1, 0};
        sig = sigtimedwait(&sigs, NULL, &tick);
        if (store_now_ms() >= next_sweep) {
            store_contract_each_marked(app.store, sweep_contract,
                                       &cfg->limits);
            next_sweep = store_now_ms() +
                         (int64_t)cfg->limits.sweep_interval_seconds * 1000;
        }
    }
    log_info("main", "stopping", "signal=%s", sig == SIGTERM ? "SIGTERM"
                                                             : "SIGINT");
    http_stop(app.http, STOP_GRACE_MS);
    status = 0;
out_pools:
    pool_free(app.workers);
    pool_free(app.image_pool);
    pool_free(app.login_pool);
    accounts_close(app.accounts);
out_store:
    store_close(app.store);
    if (status == 0)
        log_info("main", "stopped", "status=0");
    return status;
}

int main(int argc, char **argv)
{
    struct blobd_config cfg;
    struct blobd_error err;
    sigset_t sigs;
    int rc;

    /* Block the stop signals in every thread; main waits for them. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (config_load(&cfg, argc, argv, &err) != BLOBD_OK) {
        bool help = strcmp(err.message, "help") == 0;

        config_release(&cfg);
        if (strcmp(err.message, "version") == 0) {
            printf("blobd %s\n", BLOBD_VERSION);
            return 0;
        }
        if (help) {
            config_usage(argv[0]);
            return 0;
        }
        fprintf(stderr, "blobd: %s (see blobd --help)\n", err.message);
        return 2;
    }
    log_init(cfg.log_json, LOG_INFO);
    if (cfg.check_mode) {
        /* The check verifies data, not plans: without --config it does
         * not reject contracts whose plan only the server's file names. */
        int problems = check_run(cfg.data_dir,
                                 cfg.config_file ? cfg.plans : NULL, stdout);
        config_release(&cfg);
        if (problems < 0)
            return 2;
        return problems == 0 ? 0 : 1;
    }
    rc = serve(&cfg);
    config_release(&cfg);
    return rc;
}

/*
 * libFuzzer target for the request parsing that the route handlers do:
 * RFC 3339 times, integer query parameters, Range headers and JSON bodies.
 * Bodies are loaded as http.c loads them (json_loadb with
 * JSON_REJECT_DUPLICATES) and go through the field checks of real
 * handlers, which run against a real store in a temporary directory.
 *
 * Input layout: one selector byte, then NUL-terminated parts: a time, a
 * query string ("limit=5&before=9"), a Range header and a blob size in
 * decimal; the rest of the input is the JSON body, NUL bytes included.
 * Missing parts are empty.
 *
 * Besides the sanitizers' findings, the target aborts when a result breaks
 * its contract: a clamped query value above its maximum, a range outside
 * the blob, a time that does not survive formatting and parsing again, or
 * a handler that returns a 5xx for a request body.
 *
 * Built and run by tests/fuzz/run-request.sh.
 */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "accounts.h"
#include "app.h"
#include "chat.h"
#include "config.h"
#include "http_int.h"
#include "routes_chat.h"
#include "store.h"

#define PARTS 4

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct {
    char dir[4096];
    struct blobd_config cfg;
    struct blobd_app app;
    struct store_contract *contract;
    char uid[ACCOUNTS_UID_LEN + 1];
    char gid[CHAT_ID_LEN + 1];
} fz;

static void die(const char *what, const struct blobd_error *err)
{
    fprintf(stderr, "fuzz_request: %s: %s\n", what,
            err ? err->message : "failed");
    abort();
}

static int remove_entry(const char *path, const struct stat *sb, int flag,
                        struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Remove the data directory at exit. The store stays open: RocksDB's own
 * static objects may already be gone when exit handlers run, so closing
 * its databases there aborts. */
static void cleanup(void)
{
    if (fz.dir[0])
        nftw(fz.dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A store with contract "fz", one admin user and one group with them. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char *args[] = {"blobd", NULL};
    struct store_options opts = {0};
    struct accounts_user user;
    struct chat_group group;
    struct blobd_error err;
    char code[ACCOUNTS_CHAT_CODE_LEN + 1];
    const char *members[1];

    (void)argc;
    (void)argv;
    /* run-request.sh passes an empty directory and removes it afterwards,
     * since libFuzzer may end without running exit handlers. */
    if (getenv("BLOBD_FUZZ_DIR")) {
        snprintf(fz.dir, sizeof(fz.dir), "%s/data",
                 getenv("BLOBD_FUZZ_DIR"));
    } else {
        snprintf(fz.dir, sizeof(fz.dir), "%s/blobd-fuzz-XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(fz.dir))
            die("mkdtemp", NULL);
        atexit(cleanup);
    }
    if (config_load(&fz.cfg, 1, args, &err) != BLOBD_OK)
        die("config_load", &err);
    fz.cfg.data_dir = fz.dir;
    fz.app.cfg = &fz.cfg;
    opts.data_dir = fz.dir;
    opts.plans = fz.cfg.plans;
    if (store_open(&fz.app.store, &opts, &err) != BLOBD_OK)
        die("store_open", &err);
    if (accounts_open(&fz.app.accounts, &err) != BLOBD_OK)
        die("accounts_open", &err);
    if (store_contract_create(fz.app.store, "fz", "Fuzz", "basic", 10, NULL,
                              &err) != BLOBD_OK ||
        store_contract_acquire(fz.app.store, "fz", &fz.contract, &err) !=
            BLOBD_OK)
        die("contract", &err);
    if (accounts_user_create(fz.contract, "anna", "correct horse", 13, true,
                             false, 0, store_now_ms(), &user, code,
                             &err) != BLOBD_OK)
        die("accounts_user_create", &err);
    memcpy(fz.uid, user.id, sizeof(fz.uid));
    members[0] = fz.uid;
    if (chat_group_create(fz.contract, "team", members, 1, &group, &err) !=
        BLOBD_OK)
        die("chat_group_create", &err);
    memcpy(fz.gid, group.id, sizeof(fz.gid));
    chat_group_clear(&group);
    return 0;
}

/* ---- parts of the input ---- */

struct input {
    unsigned selector;
    char *part[PARTS];           /* NUL-terminated copies */
    const char *body;            /* the rest, not terminated */
    size_t body_len;
};

static char *copy_part(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *nul = memchr(*p, '\0', (size_t)(end - *p));
    size_t len = nul ? (size_t)(nul - *p) : (size_t)(end - *p);
    char *out = malloc(len + 1);

    if (!out)
        abort();
    memcpy(out, *p, len);
    out[len] = '\0';
    *p += len + (nul ? 1 : 0);
    return out;
}

static void input_split(struct input *in, const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;

    in->selector = size ? *p++ : 0;
    for (int i = 0; i < PARTS; i++)
        in->part[i] = copy_part(&p, end);
    in->body = (const char *)p;
    in->body_len = (size_t)(end - p);
}

static void input_free(struct input *in)
{
    for (int i = 0; i < PARTS; i++)
        free(in->part[i]);
}

/* Split "a=1&b=2" in place into the request's query, as libmicrohttpd
 * would hand it over (without the %-decoding). */
static void query_fill(struct route_request *req, char *text)
{
    char *save = NULL;

    for (char *pair = strtok_r(text, "&", &save);
         pair && req->nquery < ROUTE_QUERY_MAX;
         pair = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(pair, '=');

        if (eq)
            *eq++ = '\0';
        req->query[req->nquery].name = pair;
        req->query[req->nquery].value = eq ? eq : "";
        req->nquery++;
    }
}

/* ---- the checks ---- */

static void check_time(const char *text)
{
    int64_t ms, again;
    char formatted[32];

    if (!route_time_parse(text, &ms))
        return;
    /* Years 0000 to 9999 format back to a text that parses to the same
     * second. */
    if (ms < 0 || ms >= INT64_C(253402300800000))
        return;
    route_time_format(ms, formatted);
    if (!route_time_parse(formatted, &again) || again != ms - ms % 1000) {
        fprintf(stderr, "time %s -> %s does not round-trip\n", text,
                formatted);
        abort();
    }
}

static void check_query(const struct route_request *req)
{
    static const struct {
        const char *name;
        uint64_t dflt, max;
    } params[] = {
        {"limit", 50, 1000},
        {"before", UINT64_MAX, UINT64_MAX},
        {"since", 0, UINT64_MAX},
        {"wait", 0, 60},
    };
    struct blobd_error err;

    for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
        uint64_t v = 0;
        int rc = route_query_uint(req, params[i].name, params[i].dflt,
                                  params[i].max, &v, &err);

        if (rc == BLOBD_OK && v > params[i].max)
            abort();
        if (rc == BLOBD_OK && !route_query_get(req, params[i].name) &&
            v != params[i].dflt)
            abort();
        if (rc != BLOBD_OK && rc != BLOBD_EINVAL)
            abort();
    }
}

static void check_range(const char *header, const char *size_text)
{
    uint64_t size = strtoull(size_text, NULL, 10);
    uint64_t first = 0, last = 0;

    if (route_range_parse(header, size, &first, &last) != RANGE_ONE)
        return;
    if (first > last || last >= size) {
        fprintf(stderr, "range %s of %llu bytes gives %llu-%llu\n", header,
                (unsigned long long)size, (unsigned long long)first,
                (unsigned long long)last);
        abort();
    }
}

static void reply_release(struct route_reply *rep)
{
    json_decref(rep->json);
    free(rep->text);
    if (rep->fd >= 0)
        close(rep->fd);
    memset(rep, 0, sizeof(*rep));
    rep->fd = -1;
}

/* Run one handler and abort when it returns a server error. */
static void run_handler(route_fn fn, struct route_request *req,
                        const char *name)
{
    struct route_reply rep;

    memset(&rep, 0, sizeof(rep));
    rep.fd = -1;
    fn(req, &rep);
    if (rep.park) {
        reply_release(&rep);
        return;
    }
    if ((rep.status == 0 && http_error_status(rep.err.code) >= 500 &&
         rep.err.code != BLOBD_EOVERLOAD) || rep.status >= 500) {
        fprintf(stderr, "%s: server error %u: %s\n", name,
                rep.status ? rep.status : http_error_status(rep.err.code),
                rep.err.message);
        abort();
    }
    reply_release(&rep);
}

/* Keep the group's membership as Initialize made it, so that message
 * posts keep reaching the checks behind the membership test. */
static void restore_members(void)
{
    const char *members[1] = {fz.uid};

    chat_group_set_members(fz.contract, fz.gid, members, 1, NULL, NULL);
}

static void check_body(struct route_request *req, const struct input *in)
{
    static const struct {
        route_fn fn;
        const char *name;
    } handlers[] = {
        {routes_contracts_create, "contracts_create"},
        {routes_contracts_update, "contracts_update"},
        {routes_chat_purge, "chat_purge"},
        {routes_chat_message_post, "chat_message_post"},
        {routes_chat_group_create, "chat_group_create"},
        {routes_chat_group_members, "chat_group_members"},
    };
    size_t n = sizeof(handlers) / sizeof(handlers[0]);
    size_t pick = in->selector % n;
    json_error_t jerr;

    req->body = json_loadb(in->body, in->body_len, JSON_REJECT_DUPLICATES,
                           &jerr);
    if (!req->body)
        return;
    if (handlers[pick].fn == routes_chat_message_post) {
        req->params[0] = fz.gid;
    } else if (handlers[pick].fn == routes_chat_group_members) {
        req->params[0] = "fz";
        req->params[1] = fz.gid;
    } else {
        req->params[0] = "fz";
    }
    run_handler(handlers[pick].fn, req, handlers[pick].name);
    if (handlers[pick].fn == routes_chat_group_members)
        restore_members();
    json_decref(req->body);
    req->body = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct route_request req;
    struct input in;

    input_split(&in, data, size);
    memset(&req, 0, sizeof(req));
    req.app = &fz.app;
    req.method = "POST";
    req.path = "/fuzz";
    req.client_addr = "127.0.0.1";
    req.request_id = "fuzz";
    req.caller.kind = CALLER_USER;
    req.caller.contract = fz.contract;
    req.caller.admin = true;
    snprintf(req.caller.uid, sizeof(req.caller.uid), "%s", fz.uid);

    check_time(in.part[0]);
    query_fill(&req, in.part[1]);
    check_query(&req);
    check_range(in.part[2], in.part[3]);
    check_body(&req, &in);

    /* The query handlers of the message API, with the same query. */
    req.params[0] = fz.gid;
    if (in.selector & 0x80)
        run_handler(routes_chat_history, &req, "chat_history");
    else
        run_handler(routes_chat_sync, &req, "chat_sync");

    input_free(&in);
    return 0;
}

/*
 * Operator routes: contracts, the usage report, health and metrics.
 */
#include "http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "quota.h"

static json_t *contract_view(const struct store_contract_info *info)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I}",
                     "id", info->id, "name", info->name, "plan", info->plan,
                     "licences", (json_int_t)info->licences,
                     "quota_bytes", (json_int_t)info->quota_bytes,
                     "used_bytes", (json_int_t)info->used_bytes,
                     "blob_count", (json_int_t)info->blob_count,
                     "message_count", (json_int_t)info->message_count);
}

void routes_health(struct route_request *req, struct route_reply *rep)
{
    (void)req;
    route_reply_json(rep, 200, json_pack("{s:s}", "status", "ok"));
}

void routes_metrics(struct route_request *req, struct route_reply *rep)
{
    rep->text = http_metrics_render(req->app, &rep->text_len);
    rep->text_type = "text/plain; version=0.0.4; charset=utf-8";
    rep->status = 200;
}

/* Read an optional string field; BLOBD_EINVAL when present but not a
 * string. */
static int field_string(json_t *body, const char *name, const char **out,
                        struct blobd_error *err)
{
    json_t *v = json_object_get(body, name);

    *out = NULL;
    if (!v || json_is_null(v))
        return BLOBD_OK;
    if (!json_is_string(v))
        return blobd_fail(err, BLOBD_EINVAL, "invalid %s: a string expected",
                          name);
    *out = json_string_value(v);
    return BLOBD_OK;
}

/* Read an optional licences field: an integer from 1 to 1,000,000. */
static int field_licences(json_t *body, uint32_t *out,
                          struct blobd_error *err)
{
    json_t *v = json_object_get(body, "licences");
    json_int_t n;

    *out = 0;
    if (!v)
        return BLOBD_OK;
    if (!json_is_integer(v))
        return blobd_fail(err, BLOBD_EINVAL,
                          "invalid licences: an integer from 1 to 1000000 "
                          "expected");
    n = json_integer_value(v);
    if (n < 1 || n > STORE_LICENCES_MAX)
        return blobd_fail(err, BLOBD_EINVAL,
                          "invalid licences: an integer from 1 to 1000000 "
                          "expected");
    *out = (uint32_t)n;
    return BLOBD_OK;
}

void routes_contracts_create(struct route_request *req,
                             struct route_reply *rep)
{
    struct store_contract_info info;
    struct blobd_error err;
    const char *id, *name, *plan;
    uint32_t licences;

    if (!json_is_object(req->body)) {
        route_reply_fail(rep, BLOBD_EINVAL, "a JSON object body is expected");
        return;
    }
    if (field_string(req->body, "id", &id, &err) != BLOBD_OK ||
        field_string(req->body, "name", &name, &err) != BLOBD_OK ||
        field_string(req->body, "plan", &plan, &err) != BLOBD_OK ||
        field_licences(req->body, &licences, &err) != BLOBD_OK) {
        route_reply_error(rep, &err);
        return;
    }
    if (!id || !name || !plan || licences == 0) {
        route_reply_fail(rep, BLOBD_EINVAL, "missing field: %s",
                         !id ? "id" : !name ? "name" : !plan ? "plan"
                                                             : "licences");
        return;
    }
    if (store_contract_create(req->app->store, id, name, plan, licences,
                              &info, &err) != BLOBD_OK) {
        route_reply_error(rep, &err);
        return;
    }
    route_reply_json(rep, 201, contract_view(&info));
}

static int add_contract(const struct store_contract_info *info, void *arg)
{
    json_array_append_new(arg, contract_view(info));
    return 0;
}

void routes_contracts_list(struct route_request *req, struct route_reply *rep)
{
    json_t *list = json_array();
    struct blobd_error err;

    if (store_contract_foreach(req->app->store, add_contract, list,
                               &err) != BLOBD_OK) {
        json_decref(list);
        route_reply_error(rep, &err);
        return;
    }
    route_reply_json(rep, 200, json_pack("{s:o}", "contracts", list));
}

void routes_contracts_get(struct route_request *req, struct route_reply *rep)
{
    struct store_contract_info info;

    store_contract_info(req->caller.contract, &info);
    route_reply_json(rep, 200, contract_view(&info));
}

void routes_contracts_update(struct route_request *req,
                             struct route_reply *rep)
{
    struct store_contract_info info;
    struct blobd_error err;
    const char *plan;
    uint32_t licences;

    if (!json_is_object(req->body)) {
        route_reply_fail(rep, BLOBD_EINVAL, "a JSON object body is expected");
        return;
    }
    if (field_string(req->body, "plan", &plan, &err) != BLOBD_OK ||
        field_licences(req->body, &licences, &err) != BLOBD_OK) {
        route_reply_error(rep, &err);
        return;
    }
    if (json_object_get(req->body, "name") || json_object_get(req->body, "id")) {
        route_reply_fail(rep, BLOBD_EINVAL,
                         "invalid field: only plan and licences can change");
        return;
    }
    if (!plan && licences == 0) {
        route_reply_fail(rep, BLOBD_EINVAL,
                         "missing field: plan or licences expected");
        return;
    }
    if (store_contract_update(req->app->store,
                              store_contract_id(req->caller.contract), plan,
                              licences, &info, &err) != BLOBD_OK) {
        route_reply_error(rep, &err);
        return;
    }
    route_reply_json(rep, 200, contract_view(&info));
}

static int add_csv_row(const struct store_contract_info *info, void *arg)
{
    struct quota_usage row = {
        .contract = info->id,
        .plan = info->plan,
        .licences = info->licences,
        .quota_bytes = info->quota_bytes,
        .used_bytes = info->used_bytes,
        .blob_count = info->blob_count,
    };

    return quota_usage_csv_row(arg, &row);
}

void routes_usage(struct route_request *req, struct route_reply *rep)
{
    const char *format = route_query_get(req, "format");
    struct blobd_error err;
    size_t size = 0;
    char *text = NULL;
    FILE *out;

    if (!format || strcmp(format, "json") == 0) {
        routes_contracts_list(req, rep);
        return;
    }
    if (strcmp(format, "csv") != 0) {
        route_reply_fail(rep, BLOBD_EINVAL,
                         "invalid format: json or csv expected");
        return;
    }
    out = open_memstream(&text, &size);
    if (!out) {
        route_reply_fail(rep, BLOBD_ENOMEM, "out of memory");
        return;
    }
    fputs(quota_usage_csv_header(), out);
    if (store_contract_foreach(req->app->store, add_csv_row, out,
                               &err) != BLOBD_OK) {
        fclose(out);
        free(text);
        route_reply_error(rep, &err);
        return;
    }
    fclose(out);
    rep->text = text;
    rep->text_len = size;
    rep->text_type = "text/csv; charset=utf-8";
    rep->status = 200;
}

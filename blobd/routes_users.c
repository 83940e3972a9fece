/*
 * Route handlers for users and sessions: create, list and change users,
 * replace chat codes, log in and log out. The HTTP layer has parsed the
 * body and checked the caller's access before these run (see route.h).
 * The handlers turn JSON into calls of accounts.h, and the results into
 * views.
 *
 * The user view is {"id", "username", "role", "valid_until": RFC 3339 or
 * null}. It never holds a password hash or a chat code; only the answers
 * that create a chat code carry it.
 */
#include "accounts.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "app.h"
#include "route.h"

/* A parsed optional "valid_until": absent, null (no end) or a time. */
struct valid_until_field {
    bool present;
    bool has_value;
    int64_t ms;
};

static json_t *user_view(const struct accounts_user *u)
{
    json_t *valid_until = json_null();

    if (u->has_valid_until) {
        char text[32];

        route_time_format(u->valid_until_ms, text);
        json_decref(valid_until);
        valid_until = json_string(text);
    }
    return json_pack("{s:s, s:s, s:s, s:o}", "id", u->id,
                     "username", u->username,
                     "role", u->admin ? "admin" : "user",
                     "valid_until", valid_until);
}

static bool body_is_object(struct route_request *req, struct route_reply *rep)
{
    if (json_is_object(req->body))
        return true;
    route_reply_fail(rep, BLOBD_EINVAL, "request body must be a JSON object");
    return false;
}

/* Read an optional string field; false (reply filled) when it is present
 * but not a string. *value stays NULL when the field is absent or null. */
static bool field_string(struct route_request *req, struct route_reply *rep,
                         const char *name, const char **value, size_t *len)
{
    json_t *v = json_object_get(req->body, name);

    *value = NULL;
    if (len)
        *len = 0;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v)) {
        route_reply_fail(rep, BLOBD_EINVAL, "invalid field \"%s\": "
                         "expected a string", name);
        return false;
    }
    *value = json_string_value(v);
    if (len) {
        *len = json_string_length(v);
        return true;
    }
    /* Only passwords are used with their length; for every other field
     * an embedded NUL would silently cut the value short. */
    if (strlen(*value) != json_string_length(v)) {
        route_reply_fail(rep, BLOBD_EINVAL, "invalid field \"%s\": "
                         "contains a NUL character", name);
        return false;
    }
    return true;
}

/* Read a required string field. */
static bool field_required(struct route_request *req, struct route_reply *rep,
                           const char *name, const char **value, size_t *len)
{
    if (!field_string(req, rep, name, value, len))
        return false;
    if (*value)
        return true;
    route_reply_fail(rep, BLOBD_EINVAL, "missing field \"%s\"", name);
    return false;
}

/* Read "role"; *set is true when it was given. */
static bool field_role(struct route_request *req, struct route_reply *rep,
                       bool *set, bool *admin)
{
    const char *role;

    *set = false;
    if (!field_string(req, rep, "role", &role, NULL))
        return false;
    if (!role)
        return true;
    if (strcmp(role, "admin") != 0 && strcmp(role, "user") != 0) {
        route_reply_fail(rep, BLOBD_EINVAL, "invalid field \"role\": use "
                         "\"user\" or \"admin\"");
        return false;
    }
    *set = true;
    *admin = strcmp(role, "admin") == 0;
    return true;
}

static bool field_valid_until(struct route_request *req,
                              struct route_reply *rep,
                              struct valid_until_field *out)
{
    json_t *v = json_object_get(req->body, "valid_until");

    memset(out, 0, sizeof(*out));
    if (!v)
        return true;
    out->present = true;
    if (json_is_null(v))
        return true;
    if (!json_is_string(v) || !route_time_parse(json_string_value(v),
                                                &out->ms)) {
        route_reply_fail(rep, BLOBD_EINVAL, "invalid field \"valid_until\": "
                         "use an RFC 3339 time such as "
                         "\"2027-06-30T00:00:00Z\" or null");
        return false;
    }
    out->has_value = true;
    return true;
}

void routes_users_create(struct route_request *req, struct route_reply *rep)
{
    struct store_contract *c = req->caller.contract;
    char chat_code[ACCOUNTS_CHAT_CODE_LEN + 1];
    struct valid_until_field valid_until;
    struct accounts_user user;
    struct blobd_error err;
    const char *username, *password;
    size_t password_len;
    bool role_set, admin = false;
    json_t *view;

    if (!body_is_object(req, rep) ||
        !field_required(req, rep, "username", &username, NULL) ||
        !field_required(req, rep, "password", &password, &password_len) ||
        !field_role(req, rep, &role_set, &admin) ||
        !field_valid_until(req, rep, &valid_until))
        return;

    blobd_error_clear(&err);
    if (accounts_user_create(c, username, password, password_len, admin,
                             valid_until.has_value, valid_until.ms,
                             store_now_ms(), &user, chat_code,
                             &err) != BLOBD_OK) {
        route_reply_error(rep, &err);
        return;
    }
    view = user_view(&user);
    json_object_set_new(view, "chat_code", json_string(chat_code));
    route_reply_json(rep, 201, view);
}

void routes_users_list(struct route_request *req, struct route_reply *rep)
{
    struct accounts_user *users = NULL;
    struct blobd_error err;
    size_t count = 0;
    json_t *list;

    blobd_error_clear(&err);
    if (accounts_user_list(req->caller.contract, &users, &count,
                           &err) != BLOBD_OK) {
        route_reply_error(rep, &err);
        return;
    }
    list = json_array();
    for (size_t i = 0; i < count; i++)
        json_array_append_new(list, user_view(&users[i]));
    free(users);
    route_reply_json(rep, 200, json_pack("{s:o}", "users", list));
}

void routes_users_update(struct route_request *req, struct route_reply *rep)
{
    struct store_contract *c = req->caller.contract;
    struct accounts_user_patch patch;
    struct valid_until_field valid_until;
    struct accounts_user user;
    struct blobd_error err;

    memset(&patch, 0, sizeof(patch));
    if (!body_is_object(req, rep) ||
        !field_string(req, rep, "password", &patch.password,
                      &patch.password_len) ||
        !field_role(req, rep, &patch.set_role, &patch.admin) ||
        !field_valid_until(req, rep, &valid_until))
        return;
    if (!patch.password && json_object_get(req->body, "password")) {
        route_reply_fail(rep, BLOBD_EINVAL, "invalid field \"password\": "
                         "expected a string");
        return;
    }
    patch.set_valid_until = valid_until.present;
    patch.has_valid_until = valid_until.has_value;
    patch.valid_until_ms = valid_until.ms;
    {
        /* A field that cannot change (username, id) or a misspelt one
         * would otherwise be ignored with a 200. */
        const char *key;
        json_t *value;

        json_object_foreach(req->body, key, value) {
            (void)value;
            if (strcmp(key, "password") != 0 && strcmp(key, "role") != 0 &&
                strcmp(key, "valid_until") != 0) {
                route_reply_fail(rep, BLOBD_EINVAL,
                                 "invalid field \"%.64s\": only password, "
                                 "role and valid_until can change", key);
                return;
            }
        }
    }

    blobd_error_clear(&err);
    if (accounts_user_update(c, req->params[1], &patch, &user,
                             &err) != BLOBD_OK) {
        route_reply_error(rep, &err);
        return;
    }
    /* A changed role or end date applies to parked sync requests too. */
    route_wake_contract(req->app, store_contract_id(c));
    route_reply_json(rep, 200, user_view(&user));
}

void routes_users_chat_code(struct route_request *req,
                            struct route_reply *rep)
{
    struct store_contract *c = req->caller.contract;
    char chat_code[ACCOUNTS_CHAT_CODE_LEN + 1];
    struct blobd_error err;

    blobd_error_clear(&err);
    if (accounts_chat_code_replace(c, req->params[1], chat_code,
                                   &err) != BLOBD_OK) {
        route_reply_error(rep, &err);
        return;
    }
    /* Parked requests re-authenticate and get session_revoked. */
    route_wake_contract(req->app, store_contract_id(c));
    route_reply_json(rep, 200, json_pack("{s:s}", "chat_code", chat_code));
}

void routes_users_login(struct route_request *req, struct route_reply *rep)
{
    struct accounts_login in;
    char token[ACCOUNTS_TOKEN_SIZE];
    char uid[ACCOUNTS_UID_LEN + 1];
    struct blobd_error err;

    memset(&in, 0, sizeof(in));
    if (!body_is_object(req, rep) ||
        !field_required(req, rep, "contract", &in.contract, NULL) ||
        !field_required(req, rep, "username", &in.username, NULL) ||
        !field_required(req, rep, "password", &in.password,
                        &in.password_len) ||
        !field_required(req, rep, "chat_code", &in.chat_code, NULL) ||
        !field_string(req, rep, "device", &in.device, NULL))
        return;
    in.client_addr = req->client_addr;

    blobd_error_clear(&err);
    if (accounts_login(req->app->accounts, req->app->store, &in,
                       store_now_ms(), token, uid, &err) != BLOBD_OK) {
        route_reply_error(rep, &err);
        return;
    }
    route_reply_json(rep, 201, json_pack("{s:s, s:s}", "token", token,
                                         "user_id", uid));
    memset(token, 0, sizeof(token));
}

void routes_users_logout(struct route_request *req, struct route_reply *rep)
{
    struct store_contract *c = req->caller.contract;
    struct blobd_error err;

    blobd_error_clear(&err);
    if (accounts_session_delete(c, req->caller.session_id,
                                &err) != BLOBD_OK) {
        route_reply_error(rep, &err);
        return;
    }
    /* Sync requests parked with this session re-authenticate and end. */
    route_wake_contract(req->app, store_contract_id(c));
    route_reply_empty(rep, 204);
}

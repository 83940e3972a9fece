/*
 * Route handlers of the message API: JSON in, calls of chat.h, views out.
 * The HTTP layer has authenticated the caller and checked the route's
 * access rule (see routes_chat.h) before a handler runs. Every change
 * that devices must learn of wakes the contract's parked sync requests.
 *
 * Views: group {"id", "name", "members"}; message {"id", "seq",
 * "conversation", "sender", "sent_at", "text", "attachments": [{"blob",
 * "filename", "size", "media_type"}]}, with "filename" null when the
 * poster gave none.
 */
#include "routes_chat.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "app.h"
#include "chat.h"

#define HISTORY_LIMIT_DEFAULT 50
#define SYNC_LIMIT_DEFAULT 100
#define SYNC_WAIT_MAX 60        /* seconds */

static json_t *group_view(const struct chat_group *g)
{
    json_t *members = json_array();

    for (size_t i = 0; i < g->nmembers; i++)
        json_array_append_new(members, json_string(g->members[i]));
    return json_pack("{s:s, s:s, s:o}", "id", g->id, "name", g->name,
                     "members", members);
}

static json_t *message_view(const struct chat_message *m)
{
    char hex[2 * STORE_DIGEST_LEN + 1], sent[32];
    json_t *atts = json_array();

    for (size_t i = 0; i < m->nattachments; i++) {
        const struct chat_attachment *a = &m->attachments[i];

        store_digest_hex(a->blob, hex);
        json_array_append_new(atts, json_pack(
            "{s:s, s:o, s:I, s:s}", "blob", hex,
            "filename", a->filename ? json_string(a->filename) : json_null(),
            "size", (json_int_t)a->size, "media_type", a->media_type));
    }
    route_time_format(m->sent_at_ms, sent);
    return json_pack("{s:s, s:I, s:s, s:s, s:s, s:s%, s:o}",
                     "id", m->id, "seq", (json_int_t)m->seq,
                     "conversation", m->conversation, "sender", m->sender,
                     "sent_at", sent, "text", m->text, m->text_len,
                     "attachments", atts);
}

static json_t *page_view(const struct chat_page *p)
{
    json_t *list = json_array();

    for (size_t i = 0; i < p->nmessages; i++)
        json_array_append_new(list, message_view(&p->messages[i]));
    return list;
}

static bool body_is_object(struct route_request *req, struct route_reply *rep)
{
    if (json_is_object(req->body))
        return true;
    route_reply_fail(rep, BLOBD_EINVAL, "request body must be a JSON object");
    return false;
}

/* Read "members" as an array of strings into a malloc'd array of borrowed
 * pointers (free only the array). Absent gives an empty list when
 * `required` is false. */
static bool field_members(struct route_request *req, struct route_reply *rep,
                          bool required, const char ***out, size_t *n)
{
    json_t *v = json_object_get(req->body, "members");
    size_t i;
    json_t *m;

    *out = NULL;
    *n = 0;
    if (!v && !required)
        return true;
    if (!json_is_array(v)) {
        route_reply_fail(rep, BLOBD_EINVAL, v ? "invalid field \"members\": "
                         "expected an array of user ids"
                         : "missing field \"members\"");
        return false;
    }
    *out = calloc(json_array_size(v) + 1, sizeof(**out));
    if (!*out) {
        route_reply_fail(rep, BLOBD_ENOMEM, "out of memory");
        return false;
    }
    json_array_foreach(v, i, m) {
        if (!json_is_string(m) || strlen(json_string_value(m)) !=
                                      json_string_length(m)) {
            route_reply_fail(rep, BLOBD_EINVAL, "invalid field \"members\": "
                             "element %zu is not a user id", i);
            free(*out);
            *out = NULL;
            return false;
        }
        (*out)[(*n)++] = json_string_value(m);
    }
    return true;
}

static void wake(struct route_request *req)
{
    route_wake_contract(req->app, store_contract_id(req->caller.contract));
}

/* A post concerns only the conversation's members: waking the other
 * waiting syncs of the contract would only make them look and park again. */
static void wake_members(struct route_request *req, const char *gid)
{
    struct chat_group g;

    if (chat_group_get(req->caller.contract, gid, &g, NULL) != BLOBD_OK) {
        wake(req);
        return;
    }
    route_wake_users(req->app, store_contract_id(req->caller.contract),
                     g.members, g.nmembers);
    chat_group_clear(&g);
}

static void reply_group(struct route_reply *rep, unsigned status, int rc,
                        struct chat_group *g, const struct blobd_error *err)
{
    if (rc != BLOBD_OK) {
        route_reply_error(rep, err);
        return;
    }
    route_reply_json(rep, status, group_view(g));
    chat_group_clear(g);
}

void routes_chat_group_create(struct route_request *req,
                              struct route_reply *rep)
{
    struct chat_group g;
    struct blobd_error err;
    const char **members = NULL;
    json_t *name;
    size_t n;
    int rc;

    if (!body_is_object(req, rep))
        return;
    name = json_object_get(req->body, "name");
    if (!json_is_string(name)) {
        route_reply_fail(rep, BLOBD_EINVAL, name ? "invalid field \"name\": "
                         "expected a string" : "missing field \"name\"");
        return;
    }
    if (!field_members(req, rep, false, &members, &n))
        return;
    blobd_error_clear(&err);
    rc = chat_group_create(req->caller.contract, json_string_value(name),
                           members, n, &g, &err);
    free(members);
    if (rc == BLOBD_OK)
        wake(req);
    reply_group(rep, 201, rc, &g, &err);
}

void routes_chat_group_list(struct route_request *req,
                            struct route_reply *rep)
{
    struct chat_group *groups;
    struct blobd_error err;
    size_t n;
    json_t *list;

    blobd_error_clear(&err);
    if (chat_groups_list(req->caller.contract, NULL, &groups, &n,
                         &err) != BLOBD_OK) {
        route_reply_error(rep, &err);
        return;
    }
    list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, group_view(&groups[i]));
    chat_groups_free(groups, n);
    route_reply_json(rep, 200, json_pack("{s:o}", "groups", list));
}

void routes_chat_group_get(struct route_request *req,
                           struct route_reply *rep)
{
    struct chat_group g;
    struct blobd_error err;
    int rc;

    blobd_error_clear(&err);
    rc = chat_group_get(req->caller.contract, req->params[1], &g, &err);
    reply_group(rep, 200, rc, &g, &err);
}

void routes_chat_group_members(struct route_request *req,
                               struct route_reply *rep)
{
    struct chat_group g;
    struct blobd_error err;
    const char **members = NULL;
    size_t n;
    int rc;

    if (!body_is_object(req, rep) ||
        !field_members(req, rep, true, &members, &n))
        return;
    blobd_error_clear(&err);
    rc = chat_group_set_members(req->caller.contract, req->params[1],
                                members, n, &g, &err);
    free(members);
    if (rc == BLOBD_OK)
        wake(req);
    reply_group(rep, 200, rc, &g, &err);
}

void routes_chat_group_delete(struct route_request *req,
                              struct route_reply *rep)
{
    struct blobd_error err;

    blobd_error_clear(&err);
    if (chat_group_delete(req->caller.contract, req->params[1],
                          &err) != BLOBD_OK) {
        route_reply_error(rep, &err);
        return;
    }
    wake(req);
    route_reply_empty(rep, 204);
}

void routes_chat_purge(struct route_request *req, struct route_reply *rep)
{
    struct chat_purge_result res;
    struct blobd_error err;
    json_t *before, *dry;
    int64_t before_ms;

    if (!body_is_object(req, rep))
        return;
    before = json_object_get(req->body, "before");
    dry = json_object_get(req->body, "dry_run");
    if (!json_is_string(before) ||
        !route_time_parse(json_string_value(before), &before_ms)) {
        route_reply_fail(rep, BLOBD_EINVAL, before ? "invalid field "
                         "\"before\": use an RFC 3339 time such as "
                         "\"2026-01-01T00:00:00Z\""
                         : "missing field \"before\"");
        return;
    }
    if (dry && !json_is_boolean(dry) && !json_is_null(dry)) {
        route_reply_fail(rep, BLOBD_EINVAL,
                         "invalid field \"dry_run\": expected true or false");
        return;
    }
    blobd_error_clear(&err);
    if (chat_purge(req->caller.contract, before_ms, json_is_true(dry), &res,
                   &err) != BLOBD_OK) {
        route_reply_error(rep, &err);
        return;
    }
    if (!json_is_true(dry))
        wake(req);
    route_reply_json(rep, 200, json_pack(
        "{s:I, s:I, s:I}", "messages_deleted",
        (json_int_t)res.messages_deleted, "blobs_deleted",
        (json_int_t)res.blobs_deleted, "bytes_freed",
        (json_int_t)res.bytes_freed));
}

void routes_chat_conversations(struct route_request *req,
                               struct route_reply *rep)
{
    struct chat_group *groups;
    struct blobd_error err;
    size_t n;
    json_t *list;

    blobd_error_clear(&err);
    if (chat_groups_list(req->caller.contract, req->caller.uid, &groups, &n,
                         &err) != BLOBD_OK) {
        route_reply_error(rep, &err);
        return;
    }
    list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, group_view(&groups[i]));
    chat_groups_free(groups, n);
    route_reply_json(rep, 200, json_pack("{s:o}", "conversations", list));
}

/* Parse "attachments" into `refs` (at most CHAT_ATTACHMENTS_MAX + 1 are
 * read, so that chat_message_post reports the excess). */
static bool field_attachments(struct route_request *req,
                              struct route_reply *rep,
                              struct chat_attachment_ref *refs, size_t *n)
{
    json_t *v = json_object_get(req->body, "attachments");
    size_t i;
    json_t *a;

    *n = 0;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_array(v)) {
        route_reply_fail(rep, BLOBD_EINVAL, "invalid field \"attachments\": "
                         "expected an array");
        return false;
    }
    json_array_foreach(v, i, a) {
        json_t *blob = json_object_get(a, "blob");
        json_t *name = json_object_get(a, "filename");

        if (*n > CHAT_ATTACHMENTS_MAX)
            break;
        if (!json_is_string(blob) || (name && !json_is_null(name) &&
                                      !json_is_string(name))) {
            route_reply_fail(rep, BLOBD_EINVAL, "invalid attachment %zu: "
                             "expected {\"blob\": id, \"filename\": name}",
                             i);
            return false;
        }
        /* A malformed id names no blob: the same 404 as a missing one. */
        if (!store_digest_parse(json_string_value(blob), refs[*n].blob)) {
            route_reply_fail(rep, BLOBD_ENOTFOUND, "blob %.64s not found",
                             json_string_value(blob));
            return false;
        }
        refs[*n].filename = json_is_string(name) ? json_string_value(name)
                                                 : NULL;
        if (refs[*n].filename &&
            strlen(refs[*n].filename) != json_string_length(name)) {
            route_reply_fail(rep, BLOBD_EINVAL, "invalid attachment %zu: "
                             "filename contains NUL", i);
            return false;
        }
        (*n)++;
    }
    return true;
}

void routes_chat_message_post(struct route_request *req,
                              struct route_reply *rep)
{
    struct chat_attachment_ref refs[CHAT_ATTACHMENTS_MAX + 1];
    struct chat_post p = { .gid = req->params[0] };
    struct chat_message m;
    struct blobd_error err;
    json_t *text;

    if (!body_is_object(req, rep))
        return;
    text = json_object_get(req->body, "text");
    if (text && !json_is_null(text) && !json_is_string(text)) {
        route_reply_fail(rep, BLOBD_EINVAL,
                         "invalid field \"text\": expected a string");
        return;
    }
    if (!field_attachments(req, rep, refs, &p.nattachments))
        return;
    p.sender = req->caller.uid;
    p.text = json_is_string(text) ? json_string_value(text) : "";
    p.text_len = json_is_string(text) ? json_string_length(text) : 0;
    p.attachments = refs;
    p.max_text_bytes = req->app->cfg->limits.max_text_bytes;

    blobd_error_clear(&err);
    if (chat_message_post(req->caller.contract, &p, &m, &err) != BLOBD_OK) {
        route_reply_error(rep, &err);
        return;
    }
    wake_members(req, p.gid);
    route_reply_json(rep, 201, message_view(&m));
    chat_message_clear(&m);
}

void routes_chat_history(struct route_request *req, struct route_reply *rep)
{
    struct chat_page page;
    struct blobd_error err;
    uint64_t before, limit;
    json_t *next;

    blobd_error_clear(&err);
    if (route_query_uint(req, "before", UINT64_MAX, UINT64_MAX, &before,
                         &err) != BLOBD_OK ||
        route_query_uint(req, "limit", HISTORY_LIMIT_DEFAULT, CHAT_PAGE_MAX,
                         &limit, &err) != BLOBD_OK ||
        chat_history(req->caller.contract, req->params[0], req->caller.uid,
                     before, (size_t)limit, &page, &err) != BLOBD_OK) {
        route_reply_error(rep, &err);
        return;
    }
    next = page.more && page.nmessages > 0
               ? json_integer((json_int_t)
                              page.messages[page.nmessages - 1].seq)
               : json_null();
    route_reply_json(rep, 200, json_pack("{s:o, s:o}",
                                         "messages", page_view(&page),
                                         "next_before", next));
    chat_page_clear(&page);
}

void routes_chat_message_delete(struct route_request *req,
                                struct route_reply *rep)
{
    struct blobd_error err;

    blobd_error_clear(&err);
    if (chat_message_delete(req->caller.contract, req->params[0],
                            req->caller.uid, req->caller.admin,
                            &err) != BLOBD_OK) {
        route_reply_error(rep, &err);
        return;
    }
    wake(req);
    route_reply_empty(rep, 204);
}

static json_t *sync_view(const struct chat_sync *s)
{
    json_t *deleted = json_array();
    json_t *purged = json_null();
    char text[32];

    for (size_t i = 0; i < s->ndeleted; i++)
        json_array_append_new(deleted, json_string(s->deleted[i]));
    if (s->purged) {
        route_time_format(s->purged_before_ms, text);
        json_decref(purged);
        purged = json_string(text);
    }
    return json_pack("{s:o, s:o, s:o, s:I}", "messages",
                     page_view(&s->page), "deleted", deleted,
                     "purged_before", purged,
                     "next_since", (json_int_t)s->next_since);
}

/*
 * Long poll: with nothing new and wait > 0, the request parks until the
 * contract's seq moves past what this answer saw, or its deadline passes.
 * The deadline is set on the first run only; a later run is a wake-up or
 * the timeout.
 */
void routes_chat_sync(struct route_request *req, struct route_reply *rep)
{
    struct chat_sync s;
    struct blobd_error err;
    uint64_t since, wait, limit;
    int64_t now;

    blobd_error_clear(&err);
    /* JSON integers are signed 64-bit, so a larger since could neither be
     * answered back nor moved past: it is clamped to that maximum. */
    if (route_query_uint(req, "since", 0, INT64_MAX, &since,
                         &err) != BLOBD_OK ||
        route_query_uint(req, "wait", 0, SYNC_WAIT_MAX, &wait,
                         &err) != BLOBD_OK ||
        route_query_uint(req, "limit", SYNC_LIMIT_DEFAULT, CHAT_PAGE_MAX,
                         &limit, &err) != BLOBD_OK ||
        chat_sync(req->caller.contract, req->caller.uid, since,
                  (size_t)limit, &s, &err) != BLOBD_OK) {
        route_reply_error(rep, &err);
        return;
    }
    now = store_now_ms();
    if (!s.changed && wait > 0) {
        if (req->deadline_ms == 0)
            req->deadline_ms = now + (int64_t)wait * 1000;
        if (now < req->deadline_ms) {
            rep->park = true;
            rep->park_seq = s.seen_seq;
            chat_sync_clear(&s);
            return;
        }
    }
    route_reply_json(rep, 200, sync_view(&s));
    chat_sync_clear(&s);
}

/*
 * Plans table and the quota arithmetic. The table is filled at start-up
 * and read-only afterwards, so lookups need no lock.
 */
#include "quota.h"

#include <stdlib.h>
#include <string.h>

struct quota_plan {
    char name[QUOTA_PLAN_NAME_MAX + 1];
    uint64_t bytes_per_licence;
};

struct quota_plans {
    struct quota_plan plan[QUOTA_PLANS_MAX];
    size_t count;
};

struct quota_plans *quota_plans_new(void)
{
    return calloc(1, sizeof(struct quota_plans));
}

struct quota_plans *quota_plans_new_default(void)
{
    struct quota_plans *plans = quota_plans_new();

    if (!plans)
        return NULL;
    quota_plans_set(plans, "basic", QUOTA_DEFAULT_BASIC);
    quota_plans_set(plans, "pro", QUOTA_DEFAULT_PRO);
    return plans;
}

void quota_plans_free(struct quota_plans *plans)
{
    free(plans);
}

bool quota_plan_name_valid(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > QUOTA_PLAN_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

static struct quota_plan *plan_find(const struct quota_plans *plans,
                                    const char *name)
{
    for (size_t i = 0; i < plans->count; i++) {
        if (strcmp(plans->plan[i].name, name) == 0)
            return (struct quota_plan *)&plans->plan[i];
    }
    return NULL;
}

enum quota_status quota_plans_set(struct quota_plans *plans, const char *name,
                                  uint64_t bytes_per_licence)
{
    struct quota_plan *plan;

    if (!quota_plan_name_valid(name))
        return QUOTA_EINVAL;
    plan = plan_find(plans, name);
    if (!plan) {
        if (plans->count == QUOTA_PLANS_MAX)
            return QUOTA_EFULL;
        plan = &plans->plan[plans->count++];
        memcpy(plan->name, name, strlen(name) + 1);
    }
    plan->bytes_per_licence = bytes_per_licence;
    return QUOTA_OK;
}

bool quota_plan_lookup(const struct quota_plans *plans, const char *name,
                       uint64_t *bytes_per_licence)
{
    const struct quota_plan *plan = plan_find(plans, name);

    if (!plan)
        return false;
    if (bytes_per_licence)
        *bytes_per_licence = plan->bytes_per_licence;
    return true;
}

size_t quota_plans_count(const struct quota_plans *plans)
{
    return plans->count;
}

enum quota_status quota_for(const struct quota_plans *plans, const char *plan,
                            uint64_t licences, uint64_t *quota_bytes)
{
    uint64_t per_licence;

    if (!quota_plan_lookup(plans, plan, &per_licence))
        return QUOTA_EINVAL;
    if (__builtin_mul_overflow(per_licence, licences, quota_bytes))
        return QUOTA_EINVAL;
    return QUOTA_OK;
}

enum quota_status quota_check(uint64_t quota_bytes, uint64_t used_bytes,
                              uint64_t needed_bytes)
{
    uint64_t total;

    if (needed_bytes == 0)
        return QUOTA_OK;
    if (__builtin_add_overflow(used_bytes, needed_bytes, &total))
        return QUOTA_EXCEEDED;
    return total <= quota_bytes ? QUOTA_OK : QUOTA_EXCEEDED;
}

const char *quota_usage_csv_header(void)
{
    return "contract,plan,licences,quota_bytes,used_bytes,blob_count\n";
}

/* Contract ids and plan names are restricted to [a-z0-9_-], so no field
 * needs quoting today; quote anyway if that ever changes. */
static int csv_field(FILE *out, const char *text)
{
    if (strpbrk(text, ",\"\r\n") == NULL)
        return fputs(text, out) < 0 ? -1 : 0;
    if (fputc('"', out) == EOF)
        return -1;
    for (const char *p = text; *p; p++) {
        if (*p == '"' && fputc('"', out) == EOF)
            return -1;
        if (fputc(*p, out) == EOF)
            return -1;
    }
    return fputc('"', out) == EOF ? -1 : 0;
}

int quota_usage_csv_row(FILE *out, const struct quota_usage *row)
{
    if (csv_field(out, row->contract) < 0 || fputc(',', out) == EOF)
        return -1;
    if (csv_field(out, row->plan) < 0)
        return -1;
    if (fprintf(out, ",%llu,%llu,%llu,%llu\n",
                (unsigned long long)row->licences,
                (unsigned long long)row->quota_bytes,
                (unsigned long long)row->used_bytes,
                (unsigned long long)row->blob_count) < 0)
        return -1;
    return 0;
}

const char *quota_strerror(enum quota_status status)
{
    switch (status) {
    case QUOTA_OK:
        return "ok";
    case QUOTA_EXCEEDED:
        return "quota exceeded";
    case QUOTA_EINVAL:
        return "invalid plan or value";
    case QUOTA_EFULL:
        return "too many plans";
    case QUOTA_ENOMEM:
        return "out of memory";
    }
    return "unknown quota status";
}

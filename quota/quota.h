/*
 * quota: plans, licences and the quota decision.
 *
 * A contract's quota is licences x the per-licence bytes of its plan and is
 * pooled over all its users. Every distinct stored blob counts once by its
 * stored size; message text never counts. This module only computes: it
 * knows nothing of HTTP, files or databases, and the caller serialises the
 * decision with the commit that follows it (the store holds the contract
 * lock across both).
 *
 * Invariants the store keeps with these functions:
 *   1. used_bytes <= quota_bytes after every accepted upload;
 *   2. an upload that ends exactly at the quota is accepted;
 *   3. a duplicate (needed = 0) is always accepted;
 *   4. sums never wrap: a sum above UINT64_MAX is refused, not truncated.
 *
 * Limits: at most QUOTA_PLANS_MAX plans; plan names are 1..64 bytes of
 * [a-z0-9_-].
 */
#ifndef QUOTA_QUOTA_H
#define QUOTA_QUOTA_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define QUOTA_PLANS_MAX 64
#define QUOTA_PLAN_NAME_MAX 64
#define QUOTA_DEFAULT_BASIC 5000000000ULL
#define QUOTA_DEFAULT_PRO 10000000000ULL

struct quota_plans;

enum quota_status {
    QUOTA_OK = 0,
    QUOTA_EXCEEDED,       /* used + needed > quota */
    QUOTA_EINVAL,         /* bad plan name or value, or a sum overflows */
    QUOTA_EFULL,          /* more than QUOTA_PLANS_MAX plans */
    QUOTA_ENOMEM,
};

/* A table with the default plans (basic, pro). NULL when out of memory. */
struct quota_plans *quota_plans_new_default(void);
/* An empty table, for a configuration that lists its own plans. */
struct quota_plans *quota_plans_new(void);
void quota_plans_free(struct quota_plans *plans);
/* Add or replace a plan. */
enum quota_status quota_plans_set(struct quota_plans *plans, const char *name,
                                  uint64_t bytes_per_licence);
/* Bytes per licence of `name`; false when the plan is unknown. */
bool quota_plan_lookup(const struct quota_plans *plans, const char *name,
                       uint64_t *bytes_per_licence);
size_t quota_plans_count(const struct quota_plans *plans);
bool quota_plan_name_valid(const char *name);

/* licences x per-licence bytes; QUOTA_EINVAL on an unknown plan or when
 * the product does not fit 64 bits. */
enum quota_status quota_for(const struct quota_plans *plans, const char *plan,
                            uint64_t licences, uint64_t *quota_bytes);

/* May a contract at `used` of `quota` take `needed` more bytes? */
enum quota_status quota_check(uint64_t quota_bytes, uint64_t used_bytes,
                              uint64_t needed_bytes);

/* One row of the usage report. */
struct quota_usage {
    const char *contract;
    const char *plan;
    uint64_t licences;
    uint64_t quota_bytes;
    uint64_t used_bytes;
    uint64_t blob_count;
};

/* The CSV header line of the usage report, with its newline. */
const char *quota_usage_csv_header(void);
/* Write one CSV row (RFC 4180 quoting) to `out`; returns -1 on failure. */
int quota_usage_csv_row(FILE *out, const struct quota_usage *row);

const char *quota_strerror(enum quota_status status);

#endif

/* Unit tests of quota/: plans, the quota product and the decision. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quota.h"

static void test_default_plans(void **state)
{
    struct quota_plans *plans = quota_plans_new_default();
    uint64_t bytes = 0;

    (void)state;
    assert_non_null(plans);
    assert_true(quota_plan_lookup(plans, "basic", &bytes));
    assert_int_equal(bytes, 5000000000ULL);
    assert_true(quota_plan_lookup(plans, "pro", &bytes));
    assert_int_equal(bytes, 10000000000ULL);
    assert_false(quota_plan_lookup(plans, "gold", &bytes));
    assert_int_equal(quota_plans_count(plans), 2);
    quota_plans_free(plans);
}

static void test_quota_product(void **state)
{
    struct quota_plans *plans = quota_plans_new_default();
    uint64_t quota = 0;

    (void)state;
    assert_int_equal(quota_for(plans, "basic", 10, &quota), QUOTA_OK);
    assert_int_equal(quota, 50000000000ULL);
    assert_int_equal(quota_for(plans, "nope", 10, &quota), QUOTA_EINVAL);
    quota_plans_free(plans);
}

static void test_quota_product_overflow(void **state)
{
    struct quota_plans *plans = quota_plans_new();
    uint64_t quota = 0;

    (void)state;
    assert_int_equal(quota_plans_set(plans, "huge", UINT64_MAX / 2),
                     QUOTA_OK);
    assert_int_equal(quota_for(plans, "huge", 3, &quota), QUOTA_EINVAL);
    quota_plans_free(plans);
}

static void test_check_boundary(void **state)
{
    (void)state;
    /* Ending exactly at the quota is accepted, one byte more is not. */
    assert_int_equal(quota_check(1000, 400, 600), QUOTA_OK);
    assert_int_equal(quota_check(1000, 400, 601), QUOTA_EXCEEDED);
    assert_int_equal(quota_check(1000, 1000, 1), QUOTA_EXCEEDED);
}

static void test_check_duplicate_always_fits(void **state)
{
    (void)state;
    assert_int_equal(quota_check(1000, 1000, 0), QUOTA_OK);
    /* Even a contract above its quota (after a plan change) may
     * deduplicate. */
    assert_int_equal(quota_check(10, 1000, 0), QUOTA_OK);
}

static void test_check_no_wraparound(void **state)
{
    (void)state;
    assert_int_equal(quota_check(UINT64_MAX, UINT64_MAX - 1, 2),
                     QUOTA_EXCEEDED);
    assert_int_equal(quota_check(UINT64_MAX, UINT64_MAX - 1, 1), QUOTA_OK);
}

static void test_plan_names(void **state)
{
    struct quota_plans *plans = quota_plans_new();
    char name[QUOTA_PLAN_NAME_MAX + 2];

    (void)state;
    assert_true(quota_plan_name_valid("team-2_x"));
    assert_false(quota_plan_name_valid(""));
    assert_false(quota_plan_name_valid("Gold"));
    assert_false(quota_plan_name_valid("a b"));
    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    assert_false(quota_plan_name_valid(name));
    assert_int_equal(quota_plans_set(plans, "a b", 1), QUOTA_EINVAL);
    quota_plans_free(plans);
}

static void test_plans_table_full(void **state)
{
    struct quota_plans *plans = quota_plans_new();
    char name[16];

    (void)state;
    for (int i = 0; i < QUOTA_PLANS_MAX; i++) {
        snprintf(name, sizeof(name), "p%d", i);
        assert_int_equal(quota_plans_set(plans, name, 1), QUOTA_OK);
    }
    assert_int_equal(quota_plans_set(plans, "one-more", 1), QUOTA_EFULL);
    /* Replacing an existing plan still works when the table is full. */
    assert_int_equal(quota_plans_set(plans, "p0", 7), QUOTA_OK);
    quota_plans_free(plans);
}

static void test_usage_csv(void **state)
{
    struct quota_usage row = {"acme", "basic", 10, 50000000000ULL, 1234, 3};
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    (void)state;
    assert_non_null(out);
    fputs(quota_usage_csv_header(), out);
    assert_int_equal(quota_usage_csv_row(out, &row), 0);
    fclose(out);
    assert_string_equal(text,
                        "contract,plan,licences,quota_bytes,used_bytes,"
                        "blob_count\nacme,basic,10,50000000000,1234,3\n");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_plans),
        cmocka_unit_test(test_quota_product),
        cmocka_unit_test(test_quota_product_overflow),
        cmocka_unit_test(test_check_boundary),
        cmocka_unit_test(test_check_duplicate_always_fits),
        cmocka_unit_test(test_check_no_wraparound),
        cmocka_unit_test(test_plan_names),
        cmocka_unit_test(test_plans_table_full),
        cmocka_unit_test(test_usage_csv),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

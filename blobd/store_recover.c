/*
 * Start-up recovery. For every contract of the registry: remove what is
 * left in tmp/ (uploads that never committed), remove files under blobs/
 * that have no record (a crash between rename and commit), and rewrite
 * the registry's copy of the usage figures from the contract database.
 *
 * A record whose file is missing cannot be repaired here; `blobd check`
 * reports it. The commit order makes it impossible short of disk damage.
 */
#include "store_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static void clear_tmp(struct store_contract *c, uint64_t *removed)
{
    char path[PATH_MAX];
    struct dirent *ent;
    DIR *dir;

    snprintf(path, sizeof(path), "%s/tmp", c->dir);
    dir = opendir(path);
    if (!dir)
        return;
    while ((ent = readdir(dir)) != NULL) {
        if (ent->d_name[0] == '.')
            continue;
        if (unlinkat(dirfd(dir), ent->d_name, 0) == 0)
            (*removed)++;
    }
    closedir(dir);
}

static bool has_record(struct store_contract *c, const char *name)
{
    unsigned char key[1 + STORE_DIGEST_LEN];

    key[0] = 'b';
    if (!store_digest_parse(name, key + 1))
        return false;
    return store_exists(c, key, sizeof(key));
}

/* Walk blobs/ab/cd/ and unlink each file without a record. */
static void clear_orphans(struct store_contract *c, uint64_t *removed)
{
    char top[PATH_MAX], mid[PATH_MAX], leaf[PATH_MAX];
    struct dirent *e1, *e2, *e3;
    DIR *d1, *d2, *d3;

    snprintf(top, sizeof(top), "%s/blobs", c->dir);
    d1 = opendir(top);
    if (!d1)
        return;
    while ((e1 = readdir(d1)) != NULL) {
        if (e1->d_name[0] == '.')
            continue;
        snprintf(mid, sizeof(mid), "%s/%s", top, e1->d_name);
        d2 = opendir(mid);
        if (!d2)
            continue;
        while ((e2 = readdir(d2)) != NULL) {
            if (e2->d_name[0] == '.')
                continue;
            snprintf(leaf, sizeof(leaf), "%s/%s", mid, e2->d_name);
            d3 = opendir(leaf);
            if (!d3)
                continue;
            while ((e3 = readdir(d3)) != NULL) {
                if (e3->d_name[0] == '.' || has_record(c, e3->d_name))
                    continue;
                if (unlinkat(dirfd(d3), e3->d_name, 0) == 0) {
                    (*removed)++;
                    log_info("store", "orphan_removed",
                             "contract=%s file=%s", c->id, e3->d_name);
                }
            }
            closedir(d3);
        }
        closedir(d2);
    }
    closedir(d1);
}

static void recover_contract(struct store_contract *c, void *arg)
{
    uint64_t tmp_removed = 0, orphans = 0;

    (void)arg;
    clear_tmp(c, &tmp_removed);
    clear_orphans(c, &orphans);
    store_registry_refresh(c);
    /* The first sweep pass visits every contract: work left by the
     * previous run (expired blobs, cut-short group deletions) is found
     * there. */
    store_contract_mark(c);
    if (tmp_removed || orphans)
        log_info("store", "recovered", "contract=%s tmp_removed=%llu "
                 "orphans_removed=%llu", c->id,
                 (unsigned long long)tmp_removed,
                 (unsigned long long)orphans);
}

int store_recover_all(struct store *st, struct blobd_error *err)
{
    (void)err;
    store_contract_each(st, recover_contract, NULL);
    return BLOBD_OK;
}

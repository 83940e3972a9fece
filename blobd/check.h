/*
 * `blobd check`: an offline consistency check of a stopped server's data
 * directory. For every contract of the registry it verifies:
 *
 *   - every blob record has its file, with the recorded size and SHA-256;
 *   - every file under blobs/ has a record, and tmp/ is empty;
 *   - each blob's `refs` and each 'r' counter equal the messages that
 *     reference the blob;
 *   - used_bytes, blob_count and message_count equal what is stored;
 *   - the message indexes and the membership index match their records.
 *
 * Limits: every blob file is read in full to hash it, so the check takes
 * as long as reading the whole data directory.
 */
#ifndef BLOBD_CHECK_H
#define BLOBD_CHECK_H

#include <stdio.h>

struct quota_plans;

/*
 * Check the data directory `data_dir`. Writes each problem as one line to
 * `report` and returns the number of problems, so 0 means consistent. A
 * data directory that cannot be opened counts as one problem. `plans` is
 * not used: the store is opened without plans, so that a contract whose
 * plan the configuration lacks is still checked.
 */
int check_run(const char *data_dir, const struct quota_plans *plans,
              FILE *report);

#endif

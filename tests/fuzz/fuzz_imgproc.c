/*
 * libFuzzer target for img_process: the input bytes go into a memfd, as an
 * upload's temporary file would, and the output into another. Limits are
 * lowered (4 Mpx, 64 MiB) so that every run stays fast; the code paths are
 * the same as with the defaults. Built and run by tests/fuzz/run.sh.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "img.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct img_limits limits;
    struct img_result result;
    struct img_error err;
    int in_fd, out_fd;

    if (img_sniff(data, size) == IMG_FORMAT_NONE)
        return 0;
    in_fd = memfd_create("fuzz-in", 0);
    out_fd = memfd_create("fuzz-out", 0);
    if (in_fd < 0 || out_fd < 0)
        abort();
    if (write(in_fd, data, size) != (ssize_t)size)
        abort();
    img_limits_init(&limits);
    limits.max_pixels = 4000000;
    limits.max_memory_bytes = (uint64_t)64 << 20;
    img_process(in_fd, out_fd, &limits, &result, &err);
    close(in_fd);
    close(out_fd);
    return 0;
}

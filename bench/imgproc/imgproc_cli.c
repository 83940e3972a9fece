/*
 * imgproc_cli: run img_process on one file, for benchmarks and for looking
 * at results by hand. Usage: imgproc_cli INPUT OUTPUT. Prints the stored
 * size and whether the image was re-encoded; exits 1 on any error.
 */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "img.h"

int main(int argc, char **argv)
{
    struct img_limits limits;
    struct img_result result;
    struct img_error err;
    enum img_status status;
    int in_fd, out_fd;

    if (argc != 3) {
        fprintf(stderr, "usage: %s INPUT OUTPUT\n", argv[0]);
        return 2;
    }
    in_fd = open(argv[1], O_RDONLY);
    if (in_fd < 0) {
        perror(argv[1]);
        return 1;
    }
    out_fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out_fd < 0) {
        perror(argv[2]);
        return 1;
    }
    img_limits_init(&limits);
    status = img_process(in_fd, out_fd, &limits, &result, &err);
    close(in_fd);
    if (close(out_fd) != 0 && status == IMG_OK) {
        perror(argv[2]);
        return 1;
    }
    if (status != IMG_OK) {
        fprintf(stderr, "%s: %s: %s\n", argv[1], img_strerror(status),
                err.message);
        return 1;
    }
    printf("%ux%u %s\n", (unsigned)result.width, (unsigned)result.height,
           result.reencoded ? "reencoded" : "copied");
    return 0;
}

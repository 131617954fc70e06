/* fuzz_queue_trailer.c - a spool file's trailer and footer as read back at
 * recovery: arbitrary file contents are parsed or refused, never misread. */
#include "core/core.h"
#include "queue/queue.h"

#include <fcntl.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/moat-fuzz-trailer-%d", (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    close(fd);
    struct queue_envelope env;
    char err[256];
    if (spool_read_envelope(path, &env, err, sizeof err) == 0) {
        if (env.nrcpts == 0 || !env.sender || env.data_len > size)
            abort();
        queue_envelope_free(&env);
    }
    unlink(path);
    return 0;
}

/*
 * Fuzz target: a daemon configuration file (rnnd serve --config) through
 * rnnd_config_load, read from a temporary file as the daemon reads it. It
 * either loads, with every value in its range, or names the line.
 */
#include "fuzz.h"
#include "daemon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/rnnd-fuzz-config-%d", (int)getpid());
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    rnnd_config c;
    rnnd_config_defaults(&c);
    char err[1024] = "";
    if (rnnd_config_load(&c, path, err, sizeof err) == 0) {
        if (c.port < 0 || c.port > 65535 || c.http_threads < 1 || !memchr(c.listen, 0, sizeof c.listen))
            abort();
    } else if (!err[0]) {
        abort(); /* a refusal names what was wrong */
    }
    unlink(path);
    return 0;
}

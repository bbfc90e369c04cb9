/* rnnd serve: the HTTP/JSON daemon (src/daemon). */
#include "cli.h"

#include <stdio.h>

int cmd_serve(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "rnnd serve: the daemon is not built yet in this version\n");
    return EXIT_FAIL;
}

/* rnnd serve: configuration (file, then flags), then the daemon. */
#include "cli.h"
#include "../daemon/daemon.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fputs("usage: rnnd serve [--config FILE] [--check-config] [--print-config]\n"
          "                  [--port N] [--listen ADDR] [--model-dir DIR] [--KEY VALUE ...]\n"
          "\n"
          "Serves the models of model_dir over HTTP/JSON and runs training jobs. Every key of\n"
          "config/rnnd.conf can be given as --key value (dashes or underscores) or as an\n"
          "environment variable RNND_KEY (RNND_AUTH_TOKEN, RNND_PORT, ...); flags win over the\n"
          "environment, which wins over the file. --check-config checks the configuration and\n"
          "exits (0 good, 2 bad).\n",
          f);
}

int cmd_serve(int argc, char **argv)
{
    rnnd_config cfg;
    rnnd_config_defaults(&cfg);
    const char *file = NULL;
    int check = 0, print = 0;
    char err[1024];
    /* the file first, so flags override it wherever they stand */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return EXIT_OK;
        }
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "rnnd serve: --config needs a file\n");
                return EXIT_USAGE;
            }
            file = argv[++i];
        }
    }
    if ((file && rnnd_config_load(&cfg, file, err, sizeof err)) || rnnd_config_env(&cfg, err, sizeof err)) {
        fprintf(stderr, "rnnd serve: %s\n", err);
        return EXIT_USAGE;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config")) { i++; continue; }
        if (!strcmp(a, "--check-config")) { check = 1; continue; }
        if (!strcmp(a, "--print-config")) { print = 1; continue; }
        if (strncmp(a, "--", 2) || i + 1 >= argc) {
            fprintf(stderr, "rnnd serve: unexpected argument \"%s\"\n", a);
            usage(stderr);
            return EXIT_USAGE;
        }
        char key[64];
        snprintf(key, sizeof key, "%s", a + 2);
        for (char *p = key; *p; p++)
            if (*p == '-') *p = '_';
        if (rnnd_config_set(&cfg, key, argv[++i], err, sizeof err)) {
            fprintf(stderr, "rnnd serve: %s\n", err);
            return EXIT_USAGE;
        }
    }
    if (print)
        rnnd_config_print(&cfg, stdout);
    if (check || print) {
        if (check) fprintf(stderr, "rnnd serve: configuration OK\n");
        return EXIT_OK;
    }
    int rc = rnnd_serve_main(&cfg);
    return rc;
}

/* rnnd keys [SCOPE]: the field table (rnn/fields.h) as the Markdown tables
 * of the docs: every key of the job spec, the prediction request and a
 * model's "rnnd.config", with type, range, default and meaning. `make docs`
 * writes them into docs/ between <!-- keys SCOPE --> markers, and a test
 * checks that the docs hold what the table says. */
#include "cli.h"
#include "../daemon/daemon.h"
#include "rnn/fields.h"

#include <stdio.h>
#include <string.h>

int cmd_keys(int argc, char **argv)
{
    if (argc > 2 || (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))) {
        fputs("usage: rnnd keys [SCOPE]\n\nPrints the keys of SCOPE (all scopes without one) as a "
              "Markdown table. Scopes: serve (the daemon's settings)", argc == 2 ? stdout : stderr);
        for (int i = 0; rnn_field_scopes[i]; i++)
            fprintf(argc == 2 ? stdout : stderr, " %s", rnn_field_scopes[i]);
        fputc('\n', argc == 2 ? stdout : stderr);
        return argc == 2 ? EXIT_OK : EXIT_USAGE;
    }
    if (argc == 2 && !strcmp(argv[1], "serve")) {
        rnnd_config_markdown(stdout);   /* the daemon's table, src/daemon/config.c */
        return EXIT_OK;
    }
    if (argc == 2) {
        if (rnn_fields_markdown(argv[1], stdout)) {
            fprintf(stderr, "rnnd keys: no scope \"%s\" (rnnd keys --help lists them)\n", argv[1]);
            return EXIT_USAGE;
        }
        return EXIT_OK;
    }
    for (int i = 0; rnn_field_scopes[i]; i++) {
        printf("%s### %s\n\n", i ? "\n" : "", rnn_field_scopes[i]);
        rnn_fields_markdown(rnn_field_scopes[i], stdout);
    }
    printf("\n### serve\n\n");
    rnnd_config_markdown(stdout);
    return EXIT_OK;
}

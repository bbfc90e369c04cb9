/*
 * rnnd: one binary, several subcommands. main() only dispatches; each
 * subcommand lives in its own file. Exit status: 0 success, 2 usage or input
 * errors, 1 other failures.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fputs("usage: rnnd COMMAND [OPTIONS]\n"
          "\n"
          "Train and serve recurrent neural networks (RNN, LSTM, GRU).\n"
          "\n"
          "commands:\n"
          "  serve     run the HTTP/JSON daemon\n"
          "  train     train a model from a job spec:   rnnd train --job FILE --out MODEL\n"
          "  predict   run a prediction request:        rnnd predict --model MODEL [--input FILE|-]\n"
          "  generate  generate text with a charlm:     rnnd generate --model MODEL [--prefix TEXT]\n"
          "  info      describe a model file:           rnnd info --model MODEL\n"
          "  probe     check a daemon (exit 0 on 200):  rnnd probe [--url URL]\n"
          "  keys      the keys of job specs, requests and model configs: rnnd keys [SCOPE]\n"
          "\n"
          "`rnnd COMMAND --help` describes each command.\n",
          f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        puts("rnnd " RNND_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "predict")) return cmd_predict(argc - 1, argv + 1);
    if (!strcmp(cmd, "generate")) return cmd_generate(argc - 1, argv + 1);
    if (!strcmp(cmd, "info")) return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve")) return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "probe")) return cmd_probe(argc - 1, argv + 1);
    if (!strcmp(cmd, "keys")) return cmd_keys(argc - 1, argv + 1);
    fprintf(stderr, "rnnd: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
}

/* The subcommands of rnnd and the helpers they share. */
#ifndef RNND_CLI_H
#define RNND_CLI_H

#include "rnn/version.h"

#include <stddef.h>

/* 75 is sysexits.h's EX_TEMPFAIL: a run suspended to a checkpoint, to be resumed */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_SUSPENDED = 75 };

int cmd_train(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_keys(int argc, char **argv);

/* Reads a whole file ("-" is stdin) into a NUL-terminated buffer, at most
 * max bytes; NULL with errno set on failure (EFBIG when too large). */
char *read_file(const char *path, size_t max, size_t *len);

/* The model name of a path: its file name without ".safetensors". */
void model_name_of(const char *path, char *name, size_t size);

#endif

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

/* rnnd train over MPI (dist.c): this process's rank among those a launcher
 * started, and the gradient sums of rnn_train_cfg.allreduce. */
typedef struct dist {
    int rank, ranks;        /* 0 of 1 when no launcher started the process */
    int active;             /* MPI is initialised */
    double reduce_seconds;  /* spent in the sums */
    long reduces;
    float *tmp;             /* a slice received in a ring sum */
    size_t tmp_n;
} dist;
/* Joins the launcher's processes, if one started this one; -1 (printed) if
 * this build has no MPI or MPI fails. */
int dist_init(dist *d, int *argc, char ***argv);
/* rnn_train_cfg.allreduce: sums f and x over the ranks, in place. */
int dist_allreduce(void *ud, float *f, size_t nf, double *x, int nd);
/* Is flag set on any rank? (every rank must ask, at the same point) */
int dist_any(dist *d, int flag);
/* Leaves MPI: finalizes after success or a suspend; after a failure,
 * aborts every rank, which may be waiting for this one. */
void dist_end(dist *d, int rc);

/* Reads a whole file ("-" is stdin) into a NUL-terminated buffer, at most
 * max bytes; NULL with errno set on failure (EFBIG when too large). */
char *read_file(const char *path, size_t max, size_t *len);

/* The model name of a path: its file name without ".safetensors". */
void model_name_of(const char *path, char *name, size_t size);

#endif

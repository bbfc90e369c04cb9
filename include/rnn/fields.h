/*
 * One table of the keys users write: the job spec (POST /train, rnnd
 * train), the prediction request (POST /predict, rnnd predict) and a model
 * file's "rnnd.config". Each key has its scope, type, range, default and a
 * line of description; the parsers read their keys through it (so a limit
 * is written once, and the job spec, the loader and the config check agree),
 * and `rnnd keys` prints it as the reference tables of docs/engine.md and
 * docs/http-api.md. The daemon's own settings are the same kind of table in
 * src/daemon/config.c.
 */
#ifndef RNN_FIELDS_H
#define RNN_FIELDS_H

#include "rnn/rnn.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    RNN_F_INT,      /* a whole number into an int */
    RNN_F_LONG,     /* a whole number into a long (seeds, up to 2^53) */
    RNN_F_NUM,      /* a finite number into a double */
    RNN_F_BOOL,     /* true or false into an int */
    RNN_F_STR,      /* a string: *(const char **) points into the JSON */
    RNN_F_OBJ,      /* an object: *(const cJSON **) */
    RNN_F_ANY,      /* checked by its parser (arrays of sequences, ...) */
} rnn_ftype;

typedef struct rnn_field {
    const char *scope;      /* "job", "init", "optimizer", "data.series", "predict", "rnnd.config", ... */
    const char *key;
    rnn_ftype type;
    double lo, hi;          /* range of numbers (hi NAN: a server limit, given by the caller) */
    const char *def;        /* default, as the docs show it */
    const char *doc;
} rnn_field;

/* The field, or NULL if scope has no such key. */
const rnn_field *rnn_field_find(const char *scope, const char *key);

struct cJSON;
/* obj may hold only keys of scope: -1 naming the first other one
 * ("optimizer.bogus: unknown key"). */
int rnn_fields_only(const struct cJSON *obj, const char *scope, rnn_err *err);
/* Reads key of scope from obj into out (of the field's type): 0 absent (out
 * untouched), 1 read, -1 a wrong type, -2 out of range, with err naming the
 * key and what it must be. rnn_field_get_upto's hi overrides the table's
 * upper bound (a server limit; NAN keeps the table's). */
int rnn_field_get(const struct cJSON *obj, const char *scope, const char *key, void *out,
                  rnn_err *err);
int rnn_field_get_upto(const struct cJSON *obj, const char *scope, const char *key, double hi,
                       void *out, rnn_err *err);
/* The bounds of a number field (the config check and the loader use them). */
void rnn_field_range(const char *scope, const char *key, double *lo, double *hi);

/* The reference table of scope, as Markdown; -1 if no such scope. */
int rnn_fields_markdown(const char *scope, FILE *f);
/* The scopes, NULL-terminated, in the order the docs show them. */
extern const char *const rnn_field_scopes[];

#ifdef __cplusplus
}
#endif
#endif

/* A job spec run as `rnnd train` runs it, for the suites that train one. */
#ifndef TEST_JOBS_H
#define TEST_JOBS_H

#include "rnn/io.h"
#include "rnn/job.h"

/* Parses json, builds its data ({"file": ...} from data_dir; NULL allows
 * none), makes the model from the seed and trains it, with progress(ud)
 * after every step; meta (if not NULL) gets what the model carries (its
 * vocabulary, labels, series). 0, or what rnn_train returns, or -1 with err. */
int train_json(const char *json, const char *data_dir, rnn_model *m, rnn_meta *meta,
               rnn_train_result *res, rnn_progress_fn progress, void *ud, rnn_err *err);

/* A job spec that must be refused: by the parser (at_parse) or, parsed,
 * when its data is built (files from data_dir), with a message holding want. */
void expect_refused(const char *json, const char *data_dir, int at_parse, const char *want);

#endif

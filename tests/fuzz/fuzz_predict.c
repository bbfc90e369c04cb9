/*
 * Fuzz target: a prediction request, as POST /predict receives it, against
 * one model of each kind (regression LSTM of two features on z-scores of a
 * series, classify GRU with labels, character LM, word LM, classify over
 * words), through rnn_predict. The work of one request is bounded
 * (max_predict_work) so that every input runs in milliseconds.
 */
#include "fuzz.h"
#include "internal.h"
#include "rnn/io.h"
#include "rnn/rnn.h"

#include <stdlib.h>
#include <string.h>

typedef struct served { rnn_model m; rnn_meta meta; } served;

#define NMODELS 5
static served models[NMODELS];

/* the word vocabulary of models 3 and 4 */
static void give_words(served *s)
{
    static const char *const w[] = {"<unk>", "<eos>", "i", "love", "rnn", "."};
    s->meta.words.n = 6;
    s->meta.words.lowercase = 1;
    s->meta.words.tok = malloc(6 * sizeof(char *));
    for (int i = 0; i < 6; i++) s->meta.words.tok[i] = strdup(w[i]);
    if (rnn_words_index(&s->meta.words))
        abort();
}

static void make(served *s, rnn_config cfg, const char *vocab)
{
    rnn_err err;
    rnn_rng rng;
    if (rnn_model_init(&s->m, &cfg, &err))
        abort();
    rnn_rng_seed(&rng, 1);
    rnn_model_randomize(&s->m, &rng, RNN_INIT_DEFAULT);
    rnn_meta_init(&s->meta);
    if (vocab) s->meta.vocab = strdup(vocab);
}

static void setup(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    make(&models[0], (rnn_config){.task = RNN_TASK_REGRESSION, .mode = RNN_MODE_MANY_TO_ONE, .cell = RNN_CELL_LSTM, .act = RNN_ACT_TANH,
                   .input_size = 2, .hidden = 8, .layers = 1, .output_size = 2,
                   .embedding = 0, .tokens = 0}, NULL);
    make(&models[1], (rnn_config){.task = RNN_TASK_CLASSIFY, .mode = RNN_MODE_MANY_TO_ONE, .cell = RNN_CELL_GRU, .act = RNN_ACT_TANH,
                   .input_size = 1, .hidden = 6, .layers = 2, .output_size = 3,
                   .embedding = 0, .tokens = 0}, NULL);
    static char *labels[] = {"low", "mid", "high"};
    models[1].meta.nlabels = 3;
    models[1].meta.labels = malloc(3 * sizeof(char *));
    for (int i = 0; i < 3; i++) models[1].meta.labels[i] = strdup(labels[i]);
    make(&models[2], (rnn_config){.task = RNN_TASK_CHARLM, .mode = RNN_MODE_MANY_TO_MANY, .cell = RNN_CELL_RNN, .act = RNN_ACT_TANH,
                   .input_size = 5, .hidden = 8, .layers = 1, .output_size = 5,
                   .embedding = 4, .tokens = 1}, "abcdé");
    /* model 0 reads z-scores of two columns and predicts both */
    rnn_series *sr = &models[0].meta.series;
    sr->ncolumns = sr->ntarget = 2;
    sr->target = malloc(2 * sizeof(int));
    sr->mean = malloc(2 * sizeof(double));
    sr->std = malloc(2 * sizeof(double));
    for (int j = 0; j < 2; j++) {
        sr->target[j] = j;
        sr->mean[j] = 1000 * (j + 1);
        sr->std[j] = 50;
    }
    make(&models[3], (rnn_config){.task = RNN_TASK_CHARLM, .mode = RNN_MODE_MANY_TO_MANY, .cell = RNN_CELL_GRU, .act = RNN_ACT_TANH,
                   .input_size = 6, .hidden = 8, .layers = 1, .output_size = 6,
                   .embedding = 4, .tokens = 1}, NULL);
    give_words(&models[3]);
    make(&models[4], (rnn_config){.task = RNN_TASK_CLASSIFY, .mode = RNN_MODE_MANY_TO_ONE, .cell = RNN_CELL_LSTM, .act = RNN_ACT_TANH,
                   .input_size = 6, .hidden = 8, .layers = 1, .output_size = 2,
                   .embedding = 4, .tokens = 1}, NULL);
    give_words(&models[4]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    rnn_limits lim;
    rnn_limits_default(&lim);
    lim.max_work = 2e6;
    lim.max_sequence_length = 1000;
    lim.max_steps = 1000;
    lim.max_batch = 16;
    for (int k = 0; k < NMODELS; k++) {
        char *reply = NULL;
        int status = 0;
        rnn_err err;
        rnn_predict(&models[k].m, &models[k].meta, "fuzz", 1, (const char *)data, size, &lim, &reply,
                    &status, &err);
        if ((status == 200) != (reply != NULL) || (reply && strstr(reply, ":null")))
            abort(); /* a 200 has a reply of finite numbers; an error has none */
        free(reply);
    }
    return 0;
}

/* Names of cells, activations, tasks and modes, and the checks every model
 * configuration must pass before anything is allocated for it. */
#include "rnn/rnn.h"
#include "rnn/fields.h"
#include "internal.h"

#include <string.h>

static const char *const cell_names[] = {"rnn", "lstm", "gru"};
static const char *const act_names[] = {"tanh", "relu", "sigmoid"};
static const char *const task_names[] = {"regression", "classify", "charlm"};
static const char *const mode_names[] = {"many_to_one", "many_to_many"};

static int lookup(const char *const *names, int n, const char *s)
{
    for (int i = 0; s && i < n; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

const char *rnn_cell_name(rnn_cell_type c) { return (unsigned)c < 3 ? cell_names[c] : "?"; }
const char *rnn_activation_name(rnn_activation a) { return (unsigned)a < 3 ? act_names[a] : "?"; }
const char *rnn_task_name(rnn_task t) { return (unsigned)t < 3 ? task_names[t] : "?"; }
const char *rnn_mode_name(rnn_mode m) { return (unsigned)m < 2 ? mode_names[m] : "?"; }

int rnn_cell_parse(const char *s, rnn_cell_type *out)
{
    int i = lookup(cell_names, 3, s);
    if (i < 0) return -1;
    *out = (rnn_cell_type)i;
    return 0;
}

int rnn_activation_parse(const char *s, rnn_activation *out)
{
    int i = lookup(act_names, 3, s);
    if (i < 0) return -1;
    *out = (rnn_activation)i;
    return 0;
}

int rnn_task_parse(const char *s, rnn_task *out)
{
    /* "lm" is the language model over characters or words; "charlm" its
     * older name, which model files keep */
    int i = s && !strcmp(s, "lm") ? (int)RNN_TASK_CHARLM : lookup(task_names, 3, s);
    if (i < 0) return -1;
    *out = (rnn_task)i;
    return 0;
}

int rnn_mode_parse(const char *s, rnn_mode *out)
{
    int i = lookup(mode_names, 2, s);
    if (i < 0) return -1;
    *out = (rnn_mode)i;
    return 0;
}

int rnn_gates(rnn_cell_type c)
{
    switch (c) {
    case RNN_CELL_LSTM: return 4;
    case RNN_CELL_GRU: return 3;
    default: return 1;
    }
}

/* Sizes are bounded (the "rnnd.config" rows of the field table) so that
 * every product below fits comfortably in size_t and int offsets: a model
 * is at most a few hundred million parameters. */
int rnn_config_check(const rnn_config *c, rnn_err *err)
{
    const struct { const char *key; int v; } sizes[] = {
        {"input_size", c->input_size}, {"hidden", c->hidden}, {"layers", c->layers},
        {"output_size", c->output_size}, {"embedding", c->embedding}};
    if ((unsigned)c->task > RNN_TASK_CHARLM)
        return rnn_fail(err, "task: unknown task");
    if ((unsigned)c->mode > RNN_MODE_MANY_TO_MANY)
        return rnn_fail(err, "mode: unknown mode");
    if ((unsigned)c->cell > RNN_CELL_GRU)
        return rnn_fail(err, "cell: unknown cell type");
    if ((unsigned)c->act > RNN_ACT_SIGMOID)
        return rnn_fail(err, "activation: unknown activation");
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        double lo, hi;
        rnn_field_range("rnnd.config", sizes[i].key, &lo, &hi);
        if (sizes[i].v < lo || sizes[i].v > hi)
            return rnn_fail(err, "%s: must be between %.0f and %.0f, got %d", sizes[i].key, lo, hi,
                            sizes[i].v);
    }
    if (c->task == RNN_TASK_CHARLM) {
        if (c->mode != RNN_MODE_MANY_TO_MANY)
            return rnn_fail(err, "mode: a charlm model is many_to_many");
        if (!rnn_token_input(c))
            return rnn_fail(err, "tokens: a charlm model takes tokens (an embedding, or one-hot)");
        if (c->output_size != c->input_size)
            return rnn_fail(err, "output_size: a charlm model predicts its vocabulary (%d), got %d",
                            c->input_size, c->output_size);
    }
    if (c->task == RNN_TASK_CLASSIFY) {
        if (c->mode != RNN_MODE_MANY_TO_ONE)
            return rnn_fail(err, "mode: a classify model is many_to_one");
        if (c->output_size < 2)
            return rnn_fail(err, "output_size: a classify model needs at least 2 classes");
    }
    if (c->task == RNN_TASK_REGRESSION && rnn_token_input(c))
        return rnn_fail(err, "embedding: regression takes numeric input (embedding 0)");
    if ((unsigned)c->bidirectional > 1)
        return rnn_fail(err, "bidirectional: must be true or false");
    if (c->bidirectional && c->task == RNN_TASK_CHARLM)
        return rnn_fail(err, "bidirectional: a language model predicts from the past only; "
                             "it cannot read the text backwards");
    if (!(c->dropout >= 0 && c->dropout < 1))
        return rnn_fail(err, "dropout: must be at least 0 and below 1, got %g", c->dropout);
    /* per direction: layer 0 G H (X0 + H + 2), each layer above G H (D H + H + 2) */
    size_t G = (size_t)rnn_gates(c->cell), H = (size_t)c->hidden, D = (size_t)rnn_dirs(c);
    size_t xin = (size_t)rnn_layer_in(c, 0);
    size_t n = D * (G * H * (xin + H + 2) + (size_t)(c->layers - 1) * G * H * (D * H + H + 2));
    if (n > ((size_t)1 << 31))
        return rnn_fail(err, "hidden: model too large (%zu recurrent parameters)", n);
    return 0;
}

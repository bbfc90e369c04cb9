/*
 * librnn — the rnnd engine: vanilla RNN, LSTM and GRU layers trained with
 * backpropagation through time. Weights, names and gate order are PyTorch's
 * (torch.nn.RNN / LSTM / GRU with batch_first=False), so a state_dict moves
 * between the two unchanged.
 *
 * Conventions used in every comment below:
 *   T steps, B batch, X input features, E embedding width, V vocabulary,
 *   H hidden, G gates (RNN 1, LSTM 4, GRU 3), O outputs, L layers.
 * Activations are time-major, row-major: x is (T, B, X).
 *
 * The library never prints and never exits. Functions that can fail return
 * 0 on success and -1 on failure, writing a message into an `rnn_err`.
 * Whoever calls a `_new`/`_init` function frees with the matching `_free`.
 */
#ifndef RNN_RNN_H
#define RNN_RNN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RNN_MAX_LAYERS 16
#define RNN_MAX_UNITS (2 * RNN_MAX_LAYERS)   /* layers x directions */
#define RNN_ERR_LEN 512
/* The largest weight magnitude a model file may hold. Trained networks stay
 * many orders below it; with every weight and input under 1e15 and fewer
 * than 1e6 terms in a sum, no pre-activation overflows single precision
 * (1e15 x 1e15 x 1e6 = 1e36 < 3.4e38). */
#define RNN_MAX_WEIGHT 1e15

/* An error message buffer; functions fill it when they return -1. */
typedef struct rnn_err { char msg[RNN_ERR_LEN]; } rnn_err;

typedef enum { RNN_CELL_RNN, RNN_CELL_LSTM, RNN_CELL_GRU } rnn_cell_type;
typedef enum { RNN_ACT_TANH, RNN_ACT_RELU, RNN_ACT_SIGMOID } rnn_activation;
typedef enum { RNN_TASK_REGRESSION, RNN_TASK_CLASSIFY, RNN_TASK_CHARLM } rnn_task;
typedef enum { RNN_MODE_MANY_TO_ONE, RNN_MODE_MANY_TO_MANY } rnn_mode;
typedef enum { RNN_INIT_DEFAULT, RNN_INIT_IDENTITY, RNN_INIT_ORTHOGONAL } rnn_recurrent_init;

/* Architecture and task; the "rnnd.config" of a model file. */
typedef struct rnn_config {
    rnn_task task;
    rnn_mode mode;          /* classify is always many_to_one, charlm many_to_many */
    rnn_cell_type cell;
    rnn_activation act;     /* vanilla RNN only */
    int input_size;         /* X for numeric input; V for token input */
    int hidden;             /* H */
    int layers;             /* L, 1..RNN_MAX_LAYERS */
    int output_size;        /* O; V for charlm; number of classes for classify */
    int embedding;          /* E: token input through an embedding (V, E); 0: none */
    int tokens;             /* 1: token input even without an embedding: one-hot,
                             * layer 0's W_ih is then (G*H, V) (min-char-rnn) */
    int bidirectional;      /* 1: every layer also runs backwards in time (D = 2);
                             * not for charlm */
    double dropout;         /* training only: the probability that an input of layers
                             * 1..L-1 is dropped (PyTorch's "dropout"), [0, 1) */
} rnn_config;

/* Directions D of a layer: 2 for a bidirectional model, else 1. Layer l
 * direction d is unit l D + d of rnn_model.layer, PyTorch's order. */
static inline int rnn_dirs(const rnn_config *c) { return c->bidirectional ? 2 : 1; }

/* Is the input token ids in [0, V = input_size)? With an embedding they are
 * looked up in it; without one each is a one-hot vector of V features. */
static inline int rnn_token_input(const rnn_config *c) { return c->embedding > 0 || c->tokens; }

/* Name <-> enum helpers; the parse functions return -1 for an unknown name. */
const char *rnn_cell_name(rnn_cell_type c);
const char *rnn_activation_name(rnn_activation a);
const char *rnn_task_name(rnn_task t);
const char *rnn_mode_name(rnn_mode m);
int rnn_cell_parse(const char *s, rnn_cell_type *out);
int rnn_activation_parse(const char *s, rnn_activation *out);
int rnn_task_parse(const char *s, rnn_task *out);
int rnn_mode_parse(const char *s, rnn_mode *out);
int rnn_gates(rnn_cell_type c);                 /* G: 1, 4 or 3 */

/* Checks sizes and combinations; names the offending field on failure. */
int rnn_config_check(const rnn_config *cfg, rnn_err *err);

/* ------------------------------------------------------------------ model */

/* One named parameter tensor: a view into the model's flat buffer. */
typedef struct rnn_tensor {
    char name[48];          /* PyTorch state_dict name, e.g. "rnn.weight_hh_l0" */
    int ndim;               /* 1 or 2 */
    int shape[2];
    size_t offset;          /* in floats, into params (and grads, moments) */
    size_t size;            /* elements */
} rnn_tensor;

typedef struct rnn_layer_params {
    float *w_ih;            /* (G*H, X_l): X_l = X or E for layer 0, else D H */
    float *w_hh;            /* (G*H, H) */
    float *b_ih;            /* (G*H) */
    float *b_hh;            /* (G*H) */
} rnn_layer_params;

/* A model: the config and every parameter in one flat buffer, with named
 * pointers into it. Gradients and optimizer moments use the same layout, so
 * clipping, optimizers and file I/O are single loops over `nparams`. */
typedef struct rnn_model {
    rnn_config cfg;
    size_t nparams;
    float *params;                       /* (nparams), owned */
    float *emb;                          /* (V, E) or NULL */
    rnn_layer_params layer[RNN_MAX_UNITS]; /* unit l D + d: layer l, direction d */
    float *head_w;                       /* (O, D H) */
    float *head_b;                       /* (O) */
    int ntensors;
    rnn_tensor tensors[3 + 4 * RNN_MAX_UNITS];
    uint64_t serial;                     /* unique to these weights (rnn_model_init): caches of
                                          * what is made from them compare it, not addresses */
} rnn_model;

/* Named tensors of any buffer laid out as m->params (the gradients, an
 * optimizer moment), as the model names its own parameters. */
typedef struct rnn_view {
    float *emb;                          /* (V, E) or NULL */
    rnn_layer_params layer[RNN_MAX_UNITS];
    float *head_w;                       /* (O, D H) */
    float *head_b;                       /* (O) */
} rnn_view;

void rnn_model_view(const rnn_model *m, float *buf, rnn_view *v);

/* Allocates zeroed parameters for cfg. */
int rnn_model_init(rnn_model *m, const rnn_config *cfg, rnn_err *err);
void rnn_model_free(rnn_model *m);
/* Deep copy into an uninitialised dst. */
int rnn_model_copy(rnn_model *dst, const rnn_model *src, rnn_err *err);
/* The tensor with that state_dict name, or NULL. */
const rnn_tensor *rnn_model_tensor(const rnn_model *m, const char *name);

/* ------------------------------------------------------------------ random */

/* xoshiro256** seeded through splitmix64: every random choice of a job comes
 * from one of these, so one seed gives bit-identical results. */
typedef struct rnn_rng { uint64_t s[4]; } rnn_rng;
void rnn_rng_seed(rnn_rng *r, uint64_t seed);
uint64_t rnn_rng_next(rnn_rng *r);
double rnn_rng_uniform(rnn_rng *r);              /* [0, 1) */
double rnn_rng_normal(rnn_rng *r);               /* N(0, 1) */
uint64_t rnn_rng_below(rnn_rng *r, uint64_t n);  /* [0, n), unbiased */

/* PyTorch's default initialisation: U(-1/sqrt(H), 1/sqrt(H)) for the
 * recurrent layers, U(-1/sqrt(D H), 1/sqrt(D H)) for the head (nn.Linear
 * with fan_in D H), N(0, 1) for the embedding. `rinit` replaces W_hh: identity (each
 * gate block I, IRNN) or orthogonal (each gate block a random orthogonal
 * matrix); identity also zeroes the recurrent biases. */
void rnn_model_randomize(rnn_model *m, rnn_rng *rng, rnn_recurrent_init rinit);

/* ------------------------------------------------------------------ forward / backward */

/* A batch of B sequences of T steps, time-major. Exactly one of x, tok is set.
 * Targets are optional (inference): y for regression, cls for classify/charlm. */
typedef struct rnn_batch {
    int T, B;
    const float *x;         /* (T, B, X) numeric input */
    const int32_t *tok;     /* (T, B) token ids in [0, V) */
    const float *y;         /* regression: (B, O) many_to_one, (T, B, O) many_to_many */
    const int32_t *cls;     /* classify: (B); charlm: (T, B) */
} rnn_batch;

typedef struct rnn_ws rnn_ws;

/* A workspace holds every activation of one forward pass and the scratch of
 * the backward pass, for up to maxT steps and maxB sequences. Nothing is
 * allocated inside the time loop. */
rnn_ws *rnn_ws_new(const rnn_config *cfg, int maxT, int maxB);
/* The same for inference only (rnn_backward does nothing on it): no state is
 * kept for a backward pass, and oneDNN runs its inference primitives. */
rnn_ws *rnn_ws_new_inference(const rnn_config *cfg, int maxT, int maxB);
void rnn_ws_free(rnn_ws *ws);

/* Runs the model over the batch. Returns the mean loss when targets are given
 * (MSE, or softmax cross-entropy; PyTorch's reduction='mean'), else 0.
 * Returns NaN without doing anything if T or B exceed the workspace's size. */
double rnn_forward(const rnn_model *m, rnn_ws *ws, const rnn_batch *b);

/* Head outputs of the last forward: (B, O) for many_to_one, (T, B, O) for
 * many_to_many; logits for classify and charlm. Owned by the workspace. */
const float *rnn_ws_outputs(const rnn_ws *ws);
/* Top layer outputs of the last forward, (T, B, D H): a bidirectional
 * layer's step t is [h_forward(t), h_backward(t)]. */
const float *rnn_ws_hidden(const rnn_ws *ws);

/* Backpropagation through time for the last forward (which must have had
 * targets). Accumulates (+=) into grads, laid out as m->params. dx, if not
 * NULL, receives the gradient of the loss w.r.t. the numeric input,
 * (T, B, X), overwritten. bptt = 0 is full BPTT; k > 0 stops the gradient at
 * every k-th step border (the hidden state still flows forward), as PyTorch
 * does with h.detach() between chunks of k steps. */
void rnn_backward(const rnn_model *m, rnn_ws *ws, const rnn_batch *b, int bptt,
                  float *grads, float *dx);

/* Dropout for the forwards on ws from now on (training; an evaluation
 * leaves it at 0): each input of layers 1..L-1 is kept with probability
 * 1 - p and then scaled by 1 / (1 - p), as PyTorch's training mode does. The
 * mask of row b is drawn from (seed, ids[b], layer, step, unit), ids being
 * the rows' sequence numbers in the dataset (NULL: the row numbers), so a
 * sequence gets the same mask whichever thread or batch row runs it. */
void rnn_ws_dropout(rnn_ws *ws, double p, uint64_t seed, const int *ids);

/* ------------------------------------------------------------------ stepping (inference) */

/* Recurrent state for step-by-step inference: generation and forecasting.
 * rnn_step multiplies by transposed copies of the weights it reads fastest
 * so (for B > 1 all of them, for one row the small ones), made at its first
 * step with that model after rnn_state_init: after changing a model's
 * weights in place, make the state anew. rnn_state_reset keeps the copies,
 * so one state serves many sequences of one model. */
typedef struct rnn_state {
    int B;                  /* rows; may be set lower than the state was made for
                             * (both > 1), then reset or every row set before a step */
    float *h;               /* (L, B, H) */
    float *c;               /* (L, B, H), LSTM only */
    float *scratch;         /* internal */
    float *wt;              /* internal: the weights, transposed */
    uint64_t wt_of;         /* internal: serial of the model wt was made from */
} rnn_state;

int rnn_state_init(rnn_state *s, const rnn_config *cfg, int B);
void rnn_state_reset(rnn_state *s, const rnn_config *cfg);
void rnn_state_free(rnn_state *s);

/* One step for B sequences: input x (B, X) or tokens tok (B); writes the head
 * output (B, O) into out (may be NULL). A bidirectional model reads a
 * sequence whole, so it has no steps: rnn_state_init refuses it (-1), and
 * its predictions run rnn_forward. */
void rnn_step(const rnn_model *m, rnn_state *s, const float *x, const int32_t *tok,
              float *out);

/* ------------------------------------------------------------------ optimizers */

typedef enum { RNN_OPT_SGD, RNN_OPT_ADAM } rnn_opt_kind;

typedef struct rnn_optim_cfg {
    rnn_opt_kind kind;
    double lr;
    double momentum;        /* sgd */
    int nesterov;           /* sgd */
    double beta1, beta2, eps; /* adam */
    double weight_decay;    /* sgd: L2 added to the gradient; adam: decoupled (AdamW) */
} rnn_optim_cfg;

/* Fills PyTorch's defaults for the kind (lr 0.01 for sgd, 0.001 for adam). */
void rnn_optim_defaults(rnn_optim_cfg *c, rnn_opt_kind kind);

typedef struct rnn_optim {
    rnn_optim_cfg cfg;
    size_t n;
    long step;
    float *m;               /* (n) momentum buffer / first moment */
    float *v;               /* (n) second moment (adam) */
} rnn_optim;

int rnn_optim_init(rnn_optim *o, const rnn_optim_cfg *cfg, size_t nparams, rnn_err *err);
void rnn_optim_free(rnn_optim *o);
/* One update of params from grads (grads are not modified). Follows
 * torch.optim.SGD and torch.optim.AdamW. */
void rnn_optim_step(rnn_optim *o, float *params, const float *grads);

/* Global L2 norm of the gradient, in double. */
double rnn_grad_norm(const float *grads, size_t n);
/* Scales grads so the global norm is at most max_norm (as
 * torch.nn.utils.clip_grad_norm_); returns the norm before clipping. */
double rnn_clip_grad(float *grads, size_t n, double max_norm);

/* ------------------------------------------------------------------ datasets */

/* A word vocabulary (words.c): token i is tok[i]; token 0 is "<unk>",
 * token 1 "<eos>". n is 0 for a model over characters or numbers. */
typedef struct rnn_words {
    int n;
    char **tok;             /* (n) */
    int *order;             /* (n) ids sorted by text, for lookups */
    int lowercase;          /* ASCII letters lowercased before lookup */
} rnn_words;

/* The columns of a series a model reads and predicts, and their z-score
 * statistics ("rnnd.series" in a model file): what a model trained on one
 * needs to take requests, and answer, in the data's own units. */
typedef struct rnn_series {
    int ncolumns;           /* X, the input columns; 0: no series */
    char **columns;         /* (ncolumns) names from a CSV header, or NULL */
    int ntarget;            /* O */
    int *target;            /* (ntarget) the predicted columns, indices into the inputs */
    double *mean, *std;     /* (ncolumns) z-score statistics, or NULL: raw units */
} rnn_series;

void rnn_series_free(rnn_series *s);
/* Deep copy into an uninitialised dst; 0 or -1 (out of memory). */
int rnn_series_copy(rnn_series *dst, const rnn_series *src);
/* In place: x = (x - mean) / std on n rows of the ncolumns inputs, and
 * back, y = y std + mean, on n rows of the ntarget outputs. No-ops in raw
 * units. */
void rnn_series_scale(const rnn_series *s, float *x, size_t n);
void rnn_series_unscale(const rnn_series *s, float *y, size_t n);

/* Sequences with their targets, stored sample-major. Sequences may differ in
 * length; batches are formed from sequences of equal length. */
typedef struct rnn_dataset {
    int n;                  /* sequences */
    int X;                  /* features per step (numeric), or 0 for tokens */
    int O;                  /* regression outputs per target */
    rnn_task task;
    rnn_mode mode;
    int *len;               /* (n) steps of each sequence */
    size_t *off;            /* (n) offset of each sequence, in steps */
    float *x;               /* (sum len, X) numeric input */
    int32_t *tok;           /* (sum len) tokens */
    float *y;               /* regression: (n, O) or (sum len, O) */
    int32_t *cls;           /* classify: (n); charlm: (sum len) */
    char *vocab;            /* charlm: UTF-8 string, token i = i-th character */
    int vocab_n;            /* V for charlm */
    int nlabels;
    char **labels;          /* classify: optional label names */
    rnn_words words;        /* lm / classify over words: the vocabulary */
    char warning[256];      /* what the data makes likely to go wrong (a series in
                             * large raw units), or "" */
    int in_time;            /* windows of one series in time order: validation
                             * takes the last ones (see rnn_train_cfg.val_split) */
    rnn_series series;      /* of a series' windows: its columns (and statistics) */
} rnn_dataset;

void rnn_dataset_free(rnn_dataset *d);
/* The bytes a dataset of n sequences and `steps` steps in all takes. */
double rnn_dataset_bytes(double n, double steps, int X, int O, rnn_task task, rnn_mode mode);

/* Windows of a series: each window of T values predicts the next value
 * (many_to_one) or, for many_to_many, the window shifted by one step. */
int rnn_dataset_from_series(rnn_dataset *d, const float *series, size_t n, int window,
                            rnn_mode mode, rnn_err *err);
/* The same for n rows of C columns (row-major): windows of T rows predict
 * the O target columns of the next row (or of each next row). */
int rnn_dataset_from_rows(rnn_dataset *d, const float *rows, size_t n, int C, const int *target,
                          int O, int window, rnn_mode mode, rnn_err *err);
/* The built-in sine wave (seed 000 of the project's notes): `samples`
 * windows of `window` values of sin, predicting the next value. */
int rnn_dataset_sine(rnn_dataset *d, int samples, int window, rnn_mode mode, rnn_err *err);
/* A character-level corpus: the vocabulary is the sorted set of characters
 * (UTF-8 code points) in text, or `vocab` if given; windows of T characters
 * each predicting the next character at every step, stride T. */
int rnn_dataset_from_text(rnn_dataset *d, const char *text, size_t len, int window,
                          const char *vocab, rnn_err *err);

/* UTF-8 helpers for charlm vocabularies. Decode returns the code point count
 * or -1 on malformed UTF-8. */
int rnn_utf8_decode(const char *s, size_t len, uint32_t *out, size_t max);
/* The sorted set of characters of text as a UTF-8 string (a charlm
 * vocabulary); NULL on malformed UTF-8 or no memory. Caller frees. */
char *rnn_vocab_of(const char *text, size_t len);
/* Token id of code point cp in vocab (a UTF-8 string), or -1. */
int rnn_vocab_index(const char *vocab, uint32_t cp);
/* Writes the UTF-8 of vocab's token i, NUL-terminated, into buf (>= 5
 * bytes); returns its length in bytes (0 if i is out of range). */
int rnn_vocab_char(const char *vocab, int i, char *buf);

/* ------------------------------------------------------------------ training controls */

/* Learning-rate schedules, stepped once per epoch with PyTorch's semantics:
 * StepLR, CosineAnnealingLR and ReduceLROnPlateau (mode "min", relative
 * threshold). The rate of an epoch is a function of the base rate and the
 * losses of the epochs before it, so a resumed run recomputes it. */
typedef enum { RNN_SCHED_NONE, RNN_SCHED_STEP, RNN_SCHED_COSINE, RNN_SCHED_PLATEAU } rnn_sched_kind;

typedef struct rnn_sched_cfg {
    rnn_sched_kind kind;
    int step_size;          /* step: epochs per decay */
    double gamma;           /* step: factor per decay */
    int t_max;              /* cosine: epochs of a half period */
    double eta_min;         /* cosine: the lowest rate */
    double factor;          /* plateau: factor per reduction */
    int patience;           /* plateau: epochs without improvement before one */
    double threshold;       /* plateau: improvement must beat best * (1 - threshold) */
    int cooldown;           /* plateau: epochs after a reduction that count no bad epoch */
    double min_lr;          /* plateau: the lowest rate */
} rnn_sched_cfg;

/* Fills PyTorch's defaults for the kind (gamma 0.1; eta_min 0; factor 0.1,
 * patience 10, threshold 1e-4, cooldown 0, min_lr 0). */
void rnn_sched_defaults(rnn_sched_cfg *s, rnn_sched_kind kind);
/* The rate of 0-based epoch e, from base and metric[0..e), the monitored
 * loss of each epoch before it (plateau reads it; the others do not). */
double rnn_sched_lr(const rnn_sched_cfg *s, double base, int e, const double *metric);

/* Early stopping on the monitored loss: an epoch improves when its loss is
 * below best - min_delta; training stops after `patience` epochs without an
 * improvement, and the weights of the best epoch are the ones kept. */
typedef struct rnn_early_cfg {
    int patience;           /* 0: off */
    double min_delta;
} rnn_early_cfg;

/* The 0-based best epoch of metric[0..n) under cfg, and (in *waited) the
 * epochs since it; -1 when n is 0. */
int rnn_early_best(const rnn_early_cfg *cfg, const double *metric, int n, int *waited);

/* ------------------------------------------------------------------ trainer */

typedef struct rnn_progress {
    int epoch, epochs;      /* 1-based epoch */
    long step, steps;       /* optimizer steps so far, and in the whole job */
    double loss;            /* mean loss of this step's batch */
    double epoch_loss;      /* mean train loss of the epoch (at epoch end) */
    double val_loss;        /* validation loss (at epoch end), NaN if none */
    int epoch_end;          /* 1 on the call after the last step of an epoch */
    double elapsed;         /* seconds */
    double lr;              /* the learning rate of this epoch */
    double accuracy;        /* classify, at epoch end: of the training set, else NaN */
    double val_accuracy;    /* classify, at epoch end: of the validation set, else NaN */
    int best_epoch;         /* early stopping: the best epoch so far (1-based), else 0 */
} rnn_progress;

/* Called after every optimizer step and at each epoch end. It returns what
 * the trainer does next: go on, cancel (rnn_train returns 1), write a
 * checkpoint and go on, or write a checkpoint and stop (rnn_train returns 2,
 * "suspended", to be resumed from that checkpoint). */
enum { RNN_TRAIN_GO, RNN_TRAIN_CANCEL, RNN_TRAIN_CHECKPOINT, RNN_TRAIN_SUSPEND };
enum { RNN_VAL_AUTO, RNN_VAL_LAST, RNN_VAL_RANDOM };
typedef int (*rnn_progress_fn)(void *ud, const rnn_progress *p);

/* Where a run stands between two optimizer steps. With the same data, train
 * config and thread count it continues bitwise as if it had never stopped:
 * the epoch is replayed from its generator state (the same shuffles) and
 * resumes after its first `batch` batches. */
typedef struct rnn_train_state {
    uint64_t fingerprint;   /* rnn_train_fingerprint of the run */
    int epoch;              /* the epoch to continue in, 1-based */
    int batch;              /* batches of it done */
    long step;              /* optimizer steps done */
    rnn_rng rng;            /* the trainer's generator at the start of `epoch` */
    double sum, weight;     /* the epoch's weighted loss so far */
    int epochs_done;
    double *loss, *val_loss;/* (epochs_done) per-epoch losses */
    long optim_step;
    size_t nparams;
    float *params;          /* (nparams) the weights */
    float *m, *v;           /* (nparams) optimizer moments; v NULL without Adam */
    float *best;            /* (nparams) early stopping: the best epoch's weights, else NULL */
} rnn_train_state;

/* A checkpoint is written by the progress_ud owner from this state; the
 * buffers are the trainer's own, valid during the call. */
typedef void (*rnn_checkpoint_fn)(void *ud, const rnn_train_state *st);

typedef struct rnn_train_cfg {
    int epochs;
    int batch;
    int shuffle;
    double validation;      /* fraction of sequences held out, [0, 1) */
    int val_split;          /* which: RNN_VAL_AUTO (the last windows of a series in
                             * time, else at random), RNN_VAL_LAST, RNN_VAL_RANDOM */
    rnn_optim_cfg optim;
    double clip;            /* max global L2 norm, 0 = off */
    int bptt;               /* 0 full, k > 0 truncated */
    double dropout;         /* between stacked layers (rnn_ws_dropout), [0, 1); the
                             * trained model's cfg.dropout records it */
    rnn_sched_cfg sched;    /* the learning rate per epoch (optim.lr is the base) */
    rnn_early_cfg early;    /* early stopping */
    /* the monitored loss of schedules and early stopping is the validation
     * loss when there is validation, else the epoch's training loss */
    uint64_t seed;          /* shuffling and the validation split */
    int threads;            /* each batch split over this many threads; <= 0: the
                             * cores this process may run on. Results are
                             * bitwise the same for the same thread count. */
    rnn_progress_fn progress;
    void *progress_ud;
    /* called at every epoch end and when progress asks for a checkpoint */
    rnn_checkpoint_fn checkpoint;
    const rnn_train_state *resume;  /* continue from here, or NULL */
    /* Data parallelism over processes (rnnd train under mpirun): this
     * process is rank `rank` of `ranks` (ranks <= 1: alone). Each step it
     * trains on its share of the global batch, as a thread of a team would,
     * and allreduce sums nf floats and nd doubles in place over the ranks,
     * every rank getting the same sums (0 on success); so every rank takes
     * the same optimizer step. All ranks must run the same job. */
    int rank, ranks;
    int (*allreduce)(void *ud, float *f, size_t nf, double *d, int nd);
    void *allreduce_ud;
} rnn_train_cfg;

typedef struct rnn_train_result {
    int epochs_done;
    long steps_done;
    double final_loss;      /* last epoch's train loss (early stopping: the best epoch's) */
    double final_val_loss;  /* the same for validation; NaN without validation */
    double *loss;           /* (epochs_done) per-epoch train loss, owned */
    double *val_loss;       /* (epochs_done) per-epoch validation loss, owned */
    double *accuracy;       /* classify: (epochs_done) per-epoch training accuracy, owned; else NULL */
    double *val_accuracy;   /* classify: the same for validation (NaN without it) */
    double seconds;
    int threads;            /* threads the batches were split over */
    int best_epoch;         /* early stopping: the epoch whose weights were kept (1-based), else 0 */
    int stopped_early;      /* early stopping ended the run before its last epoch */
} rnn_train_result;

void rnn_train_result_free(rnn_train_result *r);

/* Trains m in place on d (from cfg->resume when set). Returns 0 when done,
 * 1 when cancelled by the progress callback, 2 when suspended after a
 * checkpoint, -1 on error (e.g. a non-finite loss or gradient, named with
 * epoch and step, or a resume state that does not fit); on -1 and 1 m holds
 * the last good weights. */
int rnn_train(rnn_model *m, const rnn_dataset *d, const rnn_train_cfg *cfg,
              rnn_train_result *res, rnn_err *err);

/* Can a model of config c be trained with t? -1 naming the setting that
 * does not fit it: dropout needs stacked layers, and a bidirectional model
 * full BPTT (bptt 0). rnn_train calls it. */
int rnn_train_fits(const rnn_config *c, const rnn_train_cfg *t, rnn_err *err);

/* What a checkpoint must match to be resumed: the data's contents, every
 * train setting but the epoch count, and the thread count. */
uint64_t rnn_train_fingerprint(const rnn_dataset *d, const rnn_train_cfg *cfg, int threads);
/* A checkpoint file: the state with a checksum, written crash-safe. Loading
 * refuses a file that is short, corrupt or of another format, naming it. */
int rnn_train_state_save(const char *path, const rnn_train_state *st, rnn_err *err);
int rnn_train_state_load(const char *path, rnn_train_state *st, rnn_err *err);
void rnn_train_state_free(rnn_train_state *st);

/* Mean loss of m over the given sequences of d (all if idx is NULL). */
double rnn_evaluate(const rnn_model *m, const rnn_dataset *d, const int *idx, int n,
                    int batch);

/* The cores this process may run on (its CPU affinity), at least 1. */
int rnn_cpu_count(void);

/* The threads rnn_train uses for batches of B sequences of T steps with
 * `want` threads asked for (<= 0: rnn_cpu_count()): fewer when the batch is
 * too small to share. */
int rnn_train_threads(const rnn_config *c, int want, int T, int B);

#ifdef __cplusplus
}
#endif
#endif

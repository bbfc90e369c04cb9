/* rnnd train: a job spec in, a trained model file out (atomically), with a
 * progress line per epoch on a terminal and a JSON summary on stdout. With
 * --checkpoint it writes the run's state at every epoch end, every
 * --checkpoint-s seconds and when interrupted; --resume continues from such
 * a file to the same bits an uninterrupted run would have reached. Under
 * mpirun the ranks share each batch (dist.c); rank 0 reports and saves. */
#include "cli.h"
#include "rnn/io.h"
#include "rnn/job.h"

#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* SIGINT and SIGTERM are blocked while training and polled after each
 * step: a handler would run on whichever thread the kernel picked, on top
 * of the stack of a oneDNN kernel, and a signal landing there corrupted the
 * heap (1 run in 10 stopped with SIGTERM aborted at exit). */
static sigset_t stop_signals;
static int interrupted;

static void poll_signals(void)
{
    const struct timespec now = {0, 0};
    if (sigtimedwait(&stop_signals, NULL, &now) > 0)
        interrupted = 1;
}

typedef struct progress {
    int tty;
    long seqs_per_epoch;
    const char *checkpoint;     /* file, or NULL */
    double every, last;         /* checkpoint period and the last one (elapsed s) */
    double now;
    int failed;                 /* a checkpoint could not be written */
    dist *dist;                 /* the ranks; only rank 0 writes */
    int json;                   /* --progress-json: a JSON line per epoch on stdout */
    double printed;             /* elapsed s of the last line */
} progress;

/* --progress-json: one line a launcher (the daemon's train_command) reads,
 * at every epoch end and at most twice a second between. */
static void progress_line(progress *pr, const rnn_progress *p)
{
    if (!p->epoch_end && p->elapsed - pr->printed < 0.5)
        return;
    pr->printed = p->elapsed;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "epoch_end", p->epoch_end);
    cJSON_AddNumberToObject(o, "epoch", p->epoch);
    cJSON_AddNumberToObject(o, "epochs", p->epochs);
    cJSON_AddNumberToObject(o, "step", (double)p->step);
    cJSON_AddNumberToObject(o, "steps", (double)p->steps);
    cJSON_AddNumberToObject(o, "loss", p->epoch_end ? p->epoch_loss : p->loss);
    cJSON_AddNumberToObject(o, "lr", p->lr);
    cJSON_AddNumberToObject(o, "best_epoch", p->best_epoch);
    const double opt[] = {p->val_loss, p->accuracy, p->val_accuracy};
    static const char *const names[] = {"val_loss", "accuracy", "val_accuracy"};
    for (int i = 0; i < 3 && p->epoch_end; i++)
        if (isfinite(opt[i]))
            cJSON_AddNumberToObject(o, names[i], opt[i]);
    char *s = cJSON_PrintUnformatted(o);
    if (s) {
        printf("%s\n", s);
        fflush(stdout);
    }
    free(s);
    cJSON_Delete(o);
}

static void write_checkpoint(void *ud, const rnn_train_state *st)
{
    progress *pr = ud;
    rnn_err err;
    if (!pr->checkpoint || pr->dist->rank != 0)
        return;
    pr->last = pr->now;
    if (rnn_train_state_save(pr->checkpoint, st, &err)) {
        fprintf(stderr, "rnnd train: --checkpoint %s\n", err.msg);
        pr->failed = 1;
    }
}

static int on_progress(void *ud, const rnn_progress *p)
{
    progress *pr = ud;
    pr->now = p->elapsed;
    poll_signals();
    /* every rank stops after the same step, or the others would wait */
    interrupted = dist_any(pr->dist, interrupted);
    if (pr->json)
        progress_line(pr, p);
    if (p->epoch_end && pr->tty) {
        double rate = p->elapsed > 0 ? (double)pr->seqs_per_epoch * p->epoch / p->elapsed : 0;
        double eta = p->epoch > 0 ? p->elapsed / p->epoch * (p->epochs - p->epoch) : 0;
        char val[96] = "";
        if (!isnan(p->val_loss))
            snprintf(val, sizeof val, "  val %.6g", p->val_loss);
        if (!isnan(p->accuracy))
            snprintf(val + strlen(val), sizeof val - strlen(val), "  acc %.3f", p->accuracy);
        if (!isnan(p->val_accuracy))
            snprintf(val + strlen(val), sizeof val - strlen(val), "  val acc %.3f", p->val_accuracy);
        fprintf(stderr, "epoch %d/%d  loss %.6g%s  lr %.3g%s  %.0f seq/s  eta %.0fs\n", p->epoch,
                p->epochs, p->epoch_loss, val, p->lr, p->best_epoch == p->epoch ? "  (best)" : "",
                rate, eta);
    }
    /* interrupted: stop, after a checkpoint when there is a file for one */
    if (interrupted)
        return pr->checkpoint && !pr->failed ? RNN_TRAIN_SUSPEND : RNN_TRAIN_CANCEL;
    if (pr->checkpoint && !p->epoch_end && p->elapsed - pr->last >= pr->every)
        return RNN_TRAIN_CHECKPOINT;
    return RNN_TRAIN_GO;
}

static void usage(FILE *f)
{
    fputs("usage: rnnd train --job FILE [--init MODEL] --out MODEL [--data-dir DIR] [--threads N]\n"
          "                  [--checkpoint FILE [--checkpoint-s S]] [--resume FILE] [--quiet]\n"
          "                  [--progress-json]\n"
          "\n"
          "Trains the model a job spec describes (docs/engine.md; `rnnd keys` lists its keys) and\n"
          "saves it to MODEL (a .safetensors file, written atomically). --init starts from\n"
          "MODEL's weights (fine-tuning), keeping its architecture: a job that asks for another\n"
          "is refused. {\"file\": ...} data is read\n"
          "from --data-dir (default: the job file's folder). --threads splits each batch over\n"
          "N threads (default: every core this process may use); the result is the same for\n"
          "the same N. Prints a progress line per epoch on a terminal and a JSON summary on\n"
          "stdout; --progress-json prints a JSON line per epoch (and at most two a second\n"
          "between) on stdout instead, then the summary on one line, for a launcher to read.\n"
          "\n"
          "--checkpoint FILE writes the run's state (weights, optimizer moments, step, random\n"
          "state, data order) at every epoch end, every S seconds (default 30) and on SIGINT or\n"
          "SIGTERM, which then stop the run with exit status 75. --resume FILE continues such a\n"
          "run: give the same job, --init and --threads, and the model written is bitwise the\n"
          "one an uninterrupted run writes. The checkpoint is removed once the model is saved.\n"
          "\n"
          "Under mpirun (mpirun -np N rnnd train ...) the N processes share each batch and sum\n"
          "their gradients every step; rank 0 alone prints, checkpoints and saves\n"
          "(docs/engine.md, \"Processes\").\n",
          f);
}

int cmd_train(int argc, char **argv)
{
    static const struct option opts[] = {
        {"job", required_argument, 0, 'j'}, {"init", required_argument, 0, 'i'},
        {"out", required_argument, 0, 'o'}, {"data-dir", required_argument, 0, 'd'},
        {"quiet", no_argument, 0, 'q'},     {"help", no_argument, 0, 'h'},
        {"threads", required_argument, 0, 't'}, {"checkpoint", required_argument, 0, 'c'},
        {"checkpoint-s", required_argument, 0, 's'}, {"resume", required_argument, 0, 'r'},
        {"progress-json", no_argument, 0, 'p'},
        {0, 0, 0, 0}};
    const char *jobf = NULL, *init = NULL, *out = NULL, *ddir = NULL, *ckpt = NULL, *resume = NULL;
    int quiet = 0, threads = 0, json = 0, c;
    double every = 30;
    optind = 1;
    while ((c = getopt_long(argc, argv, "j:i:o:d:t:qhc:s:r:p", opts, NULL)) != -1) {
        switch (c) {
        case 'c': ckpt = optarg; break;
        case 'r': resume = optarg; break;
        case 's': {
            char *end;
            every = strtod(optarg, &end);
            if (*optarg == 0 || *end || !(every > 0 && every <= 1e7)) {
                fprintf(stderr, "rnnd train: --checkpoint-s: must be seconds above 0, got \"%s\"\n", optarg);
                return EXIT_USAGE;
            }
            break;
        }
        case 'j': jobf = optarg; break;
        case 'i': init = optarg; break;
        case 'o': out = optarg; break;
        case 'd': ddir = optarg; break;
        case 'q': quiet = 1; break;
        case 'p': json = 1; break;
        case 't': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*optarg == 0 || *end || n < 1 || n > 1024) {
                fprintf(stderr, "rnnd train: --threads: must be a whole number from 1 to 1024, got \"%s\"\n", optarg);
                return EXIT_USAGE;
            }
            threads = (int)n;
            break;
        }
        case 'h': usage(stdout); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (!jobf || !out || optind != argc) {
        fprintf(stderr, "rnnd train: %s\n", !jobf ? "--job is required" : !out ? "--out is required"
                                                                              : "unexpected argument");
        usage(stderr);
        return EXIT_USAGE;
    }
    /* blocked before MPI starts threads of its own, which would otherwise
     * take the signal and die of it */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    dist ranks;
    if (dist_init(&ranks, &argc, &argv))
        return EXIT_FAIL;
    if (ranks.rank > 0) {
        /* rank 0 speaks for all: the others' output would repeat it */
        quiet = 1;
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) {
            dist_end(&ranks, EXIT_FAIL);
            return EXIT_FAIL;
        }
    }
    size_t len;
    const size_t max_job = 64u << 20;
    char *text = read_file(jobf, max_job, &len);
    if (!text) {
        if (errno == EFBIG)
            fprintf(stderr, "rnnd train: %s: larger than %zu MiB, the most a job file may hold\n",
                    jobf, max_job >> 20);
        else
            fprintf(stderr, "rnnd train: %s: %s\n", jobf, strerror(errno));
        dist_end(&ranks, EXIT_USAGE);
        return EXIT_USAGE;
    }
    rnn_job job;
    rnn_err err;
    rnn_train_state from;
    memset(&from, 0, sizeof from);
    rnn_model m, base;
    rnn_meta meta, basemeta;
    rnn_dataset d;
    rnn_train_result res;
    int rc = EXIT_USAGE, have_base = 0, have_model = 0, have_data = 0, have_job = 0;
    memset(&res, 0, sizeof res);
    rnn_meta_init(&meta);
    rnn_meta_init(&basemeta);
    if (rnn_job_parse(&job, text, len, &err)) {
        fprintf(stderr, "rnnd train: %s: %s\n", jobf, err.msg);
        goto out;
    }
    have_job = 1;
    if (resume && rnn_train_state_load(resume, &from, &err)) {
        fprintf(stderr, "rnnd train: --resume %s\n", err.msg);
        goto out;
    }
    if (init) {
        if (rnn_model_load(init, &base, &basemeta, &err)) {
            fprintf(stderr, "rnnd train: --init %s\n", err.msg);
            goto out;
        }
        have_base = 1;
        if (rnn_job_fits(&job, &base.cfg, &err)) {
            fprintf(stderr, "rnnd train: --init %s: %s\n", init, err.msg);
            goto out;
        }
        /* the base model's architecture is the run's */
        job.cfg = base.cfg;
    }
    char *jcopy = strdup(jobf);
    char dirbuf[4096];
    snprintf(dirbuf, sizeof dirbuf, "%s", ddir ? ddir : dirname(jcopy));
    free(jcopy);
    job.base_series = have_base ? &basemeta.series : NULL;
    job.base_words = have_base && basemeta.words.n ? &basemeta.words : NULL;
    if (rnn_job_dataset(&job, have_base ? basemeta.vocab : NULL, dirbuf, &d, &err)) {
        fprintf(stderr, "rnnd train: %s: %s\n", jobf, err.msg);
        goto out;
    }
    have_data = 1;
    if (d.warning[0])
        fprintf(stderr, "rnnd train: warning: %s\n", d.warning);
    if (have_base) {
        const rnn_config *b = &base.cfg;
        if (job.cfg.input_size != b->input_size || job.cfg.output_size != b->output_size) {
            fprintf(stderr, "rnnd train: the data has %d inputs and %d outputs per step, the --init model %d and %d\n",
                    job.cfg.input_size, job.cfg.output_size, b->input_size, b->output_size);
            goto out;
        }
        if (rnn_model_copy(&m, &base, &err)) {
            fprintf(stderr, "rnnd train: %s\n", err.msg);
            rc = EXIT_FAIL;
            goto out;
        }
        if (rnn_meta_copy(&meta, &basemeta)) {
            fprintf(stderr, "rnnd train: out of memory\n");
            rc = EXIT_FAIL;
            goto out;
        }
        /* new weights: the version after the base's, if it had one */
        meta.version = basemeta.version > 0 ? basemeta.version + 1 : 0;
    } else {
        if (rnn_model_init(&m, &job.cfg, &err)) {
            fprintf(stderr, "rnnd train: %s: %s\n", jobf, err.msg);
            goto out;
        }
        rnn_rng rng;
        rnn_rng_seed(&rng, job.seed);
        rnn_model_randomize(&m, &rng, job.rinit);
    }
    have_model = 1;
    if (rnn_meta_take_data(&meta, &d)) {
        fprintf(stderr, "rnnd train: out of memory\n");
        rc = EXIT_FAIL;
        goto out;
    }

    progress pr = {.tty = !quiet && isatty(STDERR_FILENO), .seqs_per_epoch = d.n,
                   .checkpoint = ckpt, .every = every, .dist = &ranks, .json = json};
    job.train.progress = on_progress;
    job.train.checkpoint = write_checkpoint;
    job.train.resume = resume ? &from : NULL;
    job.train.threads = threads;
    job.train.progress_ud = &pr;
    job.train.rank = ranks.rank;
    job.train.ranks = ranks.ranks;
    job.train.allreduce = ranks.ranks > 1 ? dist_allreduce : NULL;
    job.train.allreduce_ud = &ranks;
    int tr = rnn_train(&m, &d, &job.train, &res, &err);
    if (tr < 0) {
        fprintf(stderr, "rnnd train: %s; %s not written\n", err.msg, out);
        rc = EXIT_FAIL;
        goto out;
    }
    if (tr == 2) {
        fprintf(stderr, "rnnd train: interrupted at step %ld; checkpoint in %s, continue with "
                        "--resume %s; %s not written\n", res.steps_done, ckpt, ckpt, out);
        rc = EXIT_SUSPENDED;
        goto out;
    }
    if (tr > 0) {
        fprintf(stderr, "rnnd train: interrupted at step %ld; %s not written\n", res.steps_done, out);
        rc = EXIT_FAIL;
        goto out;
    }
    if (res.stopped_early)
        fprintf(stderr, "rnnd train: early stopping after epoch %d: no improvement since epoch %d, "
                        "whose weights are saved\n", res.epochs_done, res.best_epoch);
    if (ranks.rank > 0) {
        rc = EXIT_OK; /* rank 0 saves the weights every rank holds */
        goto out;
    }
    meta.created[0] = 0;
    meta.epochs += res.epochs_done;
    meta.final_loss = res.final_loss;
    meta.final_val_loss = res.final_val_loss;
    rnn_meta_append(&meta, res.loss, res.val_loss, res.epochs_done, 1000);
    if (rnn_model_save(out, &m, &meta, &err)) {
        fprintf(stderr, "rnnd train: %s\n", err.msg);
        rc = EXIT_FAIL;
        goto out;
    }
    if (ckpt)
        unlink(ckpt);
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "model", out);
    cJSON_AddStringToObject(s, "task", rnn_task_name(m.cfg.task));
    cJSON_AddStringToObject(s, "cell", rnn_cell_name(m.cfg.cell));
    cJSON_AddNumberToObject(s, "parameters", (double)m.nparams);
    cJSON_AddNumberToObject(s, "sequences", d.n);
    cJSON_AddNumberToObject(s, "epochs", res.epochs_done);
    cJSON_AddNumberToObject(s, "steps", (double)res.steps_done);
    cJSON_AddNumberToObject(s, "final_loss", res.final_loss);
    if (isfinite(res.final_val_loss))
        cJSON_AddNumberToObject(s, "final_val_loss", res.final_val_loss);
    else
        cJSON_AddNullToObject(s, "final_val_loss");
    cJSON_AddNumberToObject(s, "seconds", res.seconds);
    cJSON_AddNumberToObject(s, "threads", res.threads);
    if (ranks.ranks > 1) {
        cJSON_AddNumberToObject(s, "ranks", ranks.ranks);
        cJSON_AddNumberToObject(s, "allreduce_seconds", ranks.reduce_seconds);
    }
    if (res.accuracy && res.epochs_done > 0) {
        cJSON *acc = cJSON_AddArrayToObject(s, "accuracy"), *vacc = cJSON_AddArrayToObject(s, "val_accuracy");
        for (int i = 0; i < res.epochs_done; i++) {
            cJSON_AddItemToArray(acc, isfinite(res.accuracy[i]) ? cJSON_CreateNumber(res.accuracy[i]) : cJSON_CreateNull());
            cJSON_AddItemToArray(vacc, isfinite(res.val_accuracy[i]) ? cJSON_CreateNumber(res.val_accuracy[i])
                                                                      : cJSON_CreateNull());
        }
    }
    if (res.best_epoch > 0) {
        cJSON_AddNumberToObject(s, "best_epoch", res.best_epoch);
        cJSON_AddBoolToObject(s, "stopped_early", res.stopped_early);
    }
    cJSON *l = cJSON_AddArrayToObject(s, "loss");
    for (int i = 0; i < res.epochs_done; i++)
        cJSON_AddItemToArray(l, cJSON_CreateNumber(res.loss[i]));
    char *js = json ? cJSON_PrintUnformatted(s) : cJSON_Print(s);
    puts(js);
    free(js);
    cJSON_Delete(s);
    rc = EXIT_OK;
out:
    rnn_train_state_free(&from);
    rnn_train_result_free(&res);
    if (have_model) rnn_model_free(&m);
    if (have_base) rnn_model_free(&base);
    if (have_data) rnn_dataset_free(&d);
    if (have_job) rnn_job_free(&job);
    rnn_meta_free(&meta);
    rnn_meta_free(&basemeta);
    free(text);
    dist_end(&ranks, rc);
    return rc;
}

/* rnnd predict, generate and info: the model file in, JSON or text out.
 * predict takes the request body of POST /predict and prints its reply. */
#include "cli.h"
#include "rnn/io.h"

#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int load(const char *cmd, const char *path, rnn_model *m, rnn_meta *meta)
{
    rnn_err err;
    if (!path) {
        fprintf(stderr, "rnnd %s: --model is required\n", cmd);
        return -1;
    }
    if (rnn_model_load(path, m, meta, &err)) {
        fprintf(stderr, "rnnd %s: %s\n", cmd, err.msg);
        return -1;
    }
    return 0;
}

/* Runs one request through rnn_predict; prints the reply or the error. */
static int run_request(const char *cmd, const char *model, const char *req, size_t len, char **reply)
{
    rnn_model m;
    rnn_meta meta;
    if (load(cmd, model, &m, &meta))
        return EXIT_USAGE;
    char name[256];
    model_name_of(model, name, sizeof name);
    rnn_limits lim;
    rnn_limits_default(&lim);
    lim.max_sequence_length = 1000000;
    lim.max_batch = 1000000;
    lim.max_steps = 1000000;
    int status;
    rnn_err err;
    int rc = rnn_predict(&m, &meta, name, 1, req, len, &lim, reply, &status, &err);
    rnn_model_free(&m);
    rnn_meta_free(&meta);
    if (rc) {
        fprintf(stderr, "rnnd %s: %s\n", cmd, err.msg);
        return status >= 500 ? EXIT_FAIL : EXIT_USAGE;
    }
    return EXIT_OK;
}

int cmd_predict(int argc, char **argv)
{
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"input", required_argument, 0, 'i'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *model = NULL, *input = "-";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:i:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'i': input = optarg; break;
        case 'h':
            puts("usage: rnnd predict --model MODEL [--input FILE|-]\n\n"
                 "Reads a request as for POST /predict ({\"sequence\": [...]}, \"sequences\", \"steps\",\n"
                 "\"return_sequences\"; {\"text\": ..., \"length\": N} for a charlm) from FILE or stdin\n"
                 "and prints the reply JSON.");
            return EXIT_OK;
        default: return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "rnnd predict: unexpected argument \"%s\"\n", argv[optind]);
        return EXIT_USAGE;
    }
    size_t len;
    char *req = read_file(input, 256u << 20, &len);
    if (!req) {
        fprintf(stderr, "rnnd predict: %s: %s\n", input, strerror(errno));
        return EXIT_USAGE;
    }
    char *reply = NULL;
    int rc = run_request("predict", model, req, len, &reply);
    if (rc == EXIT_OK)
        fputs(reply, stdout); /* ends with its newline */
    free(reply);
    free(req);
    return rc;
}

int cmd_generate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},       {"prefix", required_argument, 0, 'p'},
        {"length", required_argument, 0, 'n'},      {"temperature", required_argument, 0, 't'},
        {"seed", required_argument, 0, 's'},        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *model = NULL, *prefix = "";
    long length = 200, seed = -1;
    double temp = 1.0;
    int c;
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:p:n:t:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'p': prefix = optarg; break;
        case 'n':
            length = strtol(optarg, &end, 10);
            if (*end || length < 0 || length > 1000000) {
                fprintf(stderr, "rnnd generate: --length must be a whole number in [0, 1000000]\n");
                return EXIT_USAGE;
            }
            break;
        case 't':
            temp = strtod(optarg, &end);
            if (*end || !(temp >= 0 && temp <= 100)) {
                fprintf(stderr, "rnnd generate: --temperature must be a number in [0, 100]\n");
                return EXIT_USAGE;
            }
            break;
        case 's':
            seed = strtol(optarg, &end, 10);
            if (*end || seed < 0) {
                fprintf(stderr, "rnnd generate: --seed must be a whole number >= 0\n");
                return EXIT_USAGE;
            }
            break;
        case 'h':
            puts("usage: rnnd generate --model MODEL [--prefix TEXT] [--length N] [--temperature F] [--seed N]\n\n"
                 "Prints PREFIX and N generated characters from a charlm model. Temperature 0 is\n"
                 "greedy; the same seed gives the same text.");
            return EXIT_OK;
        default: return EXIT_USAGE;
        }
    }
    cJSON *rq = cJSON_CreateObject();
    cJSON_AddStringToObject(rq, "text", prefix);
    cJSON_AddNumberToObject(rq, "length", (double)length);
    cJSON_AddNumberToObject(rq, "temperature", temp);
    if (seed >= 0)
        cJSON_AddNumberToObject(rq, "seed", (double)seed);
    char *req = cJSON_PrintUnformatted(rq);
    cJSON_Delete(rq);
    char *reply = NULL;
    int rc = run_request("generate", model, req, strlen(req), &reply);
    if (rc == EXIT_OK) {
        cJSON *r = cJSON_Parse(reply);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "text");
        printf("%s%s\n", prefix, cJSON_IsString(t) ? t->valuestring : "");
        cJSON_Delete(r);
    }
    free(reply);
    free(req);
    return rc;
}

int cmd_info(int argc, char **argv)
{
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *model = NULL;
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'j': json = 1; break;
        case 'h':
            puts("usage: rnnd info --model MODEL [--json]\n\n"
                 "Prints the architecture, parameter count, provenance and loss history.");
            return EXIT_OK;
        default: return EXIT_USAGE;
        }
    }
    rnn_model m;
    rnn_meta meta;
    if (load("info", model, &m, &meta))
        return EXIT_USAGE;
    const rnn_config *cfg = &m.cfg;
    if (json) {
        char *cj = rnn_config_json(cfg, &meta);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "config", cJSON_Parse(cj));
        cJSON_AddNumberToObject(o, "parameters", (double)m.nparams);
        cJSON_AddStringToObject(o, "created", meta.created);
        cJSON_AddNumberToObject(o, "epochs", meta.epochs);
        if (isfinite(meta.final_loss)) cJSON_AddNumberToObject(o, "final_loss", meta.final_loss);
        else cJSON_AddNullToObject(o, "final_loss");
        if (isfinite(meta.final_val_loss)) cJSON_AddNumberToObject(o, "final_val_loss", meta.final_val_loss);
        else cJSON_AddNullToObject(o, "final_val_loss");
        cJSON *h = cJSON_AddArrayToObject(o, "loss_history");
        for (int i = 0; i < meta.nhistory; i++) {
            cJSON *p = cJSON_CreateObject();
            cJSON_AddNumberToObject(p, "loss", meta.loss[i]);
            if (isfinite(meta.val_loss[i])) cJSON_AddNumberToObject(p, "val_loss", meta.val_loss[i]);
            else cJSON_AddNullToObject(p, "val_loss");
            cJSON_AddItemToArray(h, p);
        }
        char *s = cJSON_Print(o);
        puts(s);
        free(s);
        free(cj);
        cJSON_Delete(o);
    } else {
        printf("model        %s\n", model);
        printf("task         %s (%s)\n", meta.words.n && cfg->task == RNN_TASK_CHARLM ? "lm, words" : rnn_task_name(cfg->task),
               rnn_mode_name(cfg->mode));
        printf("cell         %s%s%s, %d layer%s, hidden %d\n", rnn_cell_name(cfg->cell),
               cfg->cell == 0 ? " " : "", cfg->cell == 0 ? rnn_activation_name(cfg->act) : "",
               cfg->layers, cfg->layers == 1 ? "" : "s", cfg->hidden);
        if (cfg->embedding)
            printf("input        tokens, vocabulary %d, embedding %d\n", cfg->input_size, cfg->embedding);
        else if (cfg->tokens)
            printf("input        tokens, vocabulary %d, one-hot\n", cfg->input_size);
        else
            printf("input        %d feature%s per step\n", cfg->input_size, cfg->input_size == 1 ? "" : "s");
        printf("output       %d\n", cfg->output_size);
        if (meta.nlabels) {
            printf("labels      ");
            for (int i = 0; i < meta.nlabels; i++) printf(" %s", meta.labels[i]);
            printf("\n");
        }
        printf("parameters   %zu\n", m.nparams);
        for (int i = 0; i < m.ntensors; i++) {
            const rnn_tensor *t = &m.tensors[i];
            if (t->ndim == 2) printf("  %-26s [%d, %d]\n", t->name, t->shape[0], t->shape[1]);
            else printf("  %-26s [%d]\n", t->name, t->shape[0]);
        }
        printf("created      %s\n", meta.created[0] ? meta.created : "unknown");
        printf("epochs       %d\n", meta.epochs);
        if (isfinite(meta.final_loss)) printf("final loss   %.6g\n", meta.final_loss);
        if (isfinite(meta.final_val_loss)) printf("val loss     %.6g\n", meta.final_val_loss);
        if (meta.nhistory) {
            printf("loss history (%d points)\n", meta.nhistory);
            for (int i = 0; i < meta.nhistory; i++) {
                if (isfinite(meta.val_loss[i]))
                    printf("  %4d  %.6g  val %.6g\n", i + 1, meta.loss[i], meta.val_loss[i]);
                else
                    printf("  %4d  %.6g\n", i + 1, meta.loss[i]);
            }
        }
    }
    rnn_model_free(&m);
    rnn_meta_free(&meta);
    return EXIT_OK;
}

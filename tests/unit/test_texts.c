/* Words and sentences: the word tokenizer; a word language model trained
 * on sentences names "networks" after "i love recurrent neural" with its
 * probability, samples with top_k and top_p, counts unknown words, and
 * keeps its vocabulary through a save and a load; a sentiment classifier
 * over words labels unseen sentences (capitals and punctuation included)
 * and reports its accuracy per epoch; bad text data gets errors naming it. */
#include "suites.h"
#include "jobs.h"
#include "internal.h"
#include "rnn/io.h"
#include "rnn/job.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static cJSON *ask(const rnn_model *m, const rnn_meta *meta, const char *req, int want_status)
{
    rnn_predictor *p = rnn_predictor_new();
    cJSON *rq = cJSON_Parse(req);
    char *reply = NULL;
    size_t len;
    int status;
    rnn_err err;
    const int rc = rnn_predict_json(p, m, meta, "m", 1, rq, NULL, &reply, &len, &status, &err);
    ck_assert_msg(status == want_status, "%s: %d %s", req, status, rc ? err.msg : reply);
    cJSON *o = rc ? NULL : cJSON_Parse(reply);
    free(reply);
    cJSON_Delete(rq);
    rnn_predictor_free(p);
    return o;
}

START_TEST(test_word_tokenizer)
{
    char **t;
    int n;
    ck_assert(rnn_words_split("Don't STOP, (it) works!  Über-cool", 1, &t, &n) == 0);
    static const char *const want[] = {"don't", "stop", ",", "(", "it", ")", "works", "!", "Über", "-", "cool"};
    ck_assert_int_eq(n, 11);
    for (int i = 0; i < n; i++) {
        ck_assert_str_eq(t[i], want[i]);
        free(t[i]);
    }
    free(t);
    char buf[128] = "";
    size_t l = 0;
    const char *seq[] = {"it", "works", ",", "(", "really", ")", "."};
    for (int i = 0; i < 7; i++) l = rnn_words_append(buf, l, i ? seq[i - 1] : NULL, seq[i]);
    ck_assert_str_eq(buf, "it works, (really).");
}
END_TEST

#define LM_JOB                                                                                          \
    "{\"task\": \"lm\", \"tokens\": \"words\", \"hidden\": 64, \"embedding\": 16, \"data\": {\"texts\": ["   \
    "\"I love recurrent neural networks.\", \"Recurrent neural networks remember the past.\","            \
    " \"I love long short-term memory.\", \"Neural networks learn from data.\", \"I love learning.\","     \
    " \"We love recurrent neural networks too.\", \"Recurrent networks predict the next word.\"],"        \
    " \"window\": 6}, \"epochs\": 300, \"batch\": 8, \"optimizer\": {\"name\": \"adam\", \"lr\": 0.01}}"

START_TEST(test_word_lm)
{
    rnn_model m;
    rnn_meta meta;
    rnn_train_result r;
    rnn_err err;
    ck_assert_msg(train_json(LM_JOB, NULL, &m, &meta, &r, NULL, NULL, &err) == 0, "%s", err.msg);
    ck_assert(meta.words.n > 10 && !strcmp(meta.words.tok[0], "<unk>") && !strcmp(meta.words.tok[1], "<eos>"));
    cJSON *o = ask(&m, &meta, "{\"text\": \"I love recurrent neural\", \"top\": 3}", 200);
    const cJSON *next = cJSON_GetObjectItem(o, "next");
    ck_assert_int_eq(cJSON_GetArraySize(next), 3);
    const cJSON *first = cJSON_GetArrayItem(next, 0);
    const char *word = cJSON_GetObjectItem(first, "token")->valuestring;
    const double p = cJSON_GetObjectItem(first, "p")->valuedouble;
    printf("  word lm: after \"i love recurrent neural\": \"%s\" p=%.3f (then \"%s\")\n", word, p,
           cJSON_GetObjectItem(cJSON_GetArrayItem(next, 1), "token")->valuestring);
    ck_assert_str_eq(word, "networks");
    ck_assert(p > 0.5 && p <= 1 && cJSON_GetObjectItem(cJSON_GetArrayItem(next, 1), "p")->valuedouble <= p);
    cJSON_Delete(o);
    /* greedy, and sampling held to the likeliest token by top_k 1 or a tiny
     * top_p, all give the same sentence, which ends at <eos> */
    cJSON *g = ask(&m, &meta, "{\"text\": \"i love recurrent\", \"length\": 20, \"temperature\": 0}", 200);
    cJSON *k1 = ask(&m, &meta, "{\"text\": \"i love recurrent\", \"length\": 20, \"top_k\": 1, \"seed\": 3}", 200);
    cJSON *p0 = ask(&m, &meta, "{\"text\": \"i love recurrent\", \"length\": 20, \"top_p\": 1e-9, \"seed\": 3}", 200);
    const char *gt = cJSON_GetObjectItem(g, "text")->valuestring;
    printf("  word lm: \"i love recurrent\" -> \"%s\"\n", gt);
    ck_assert_str_eq(gt, " neural networks."); /* after the prefix: its space first */
    ck_assert_str_eq(cJSON_GetObjectItem(k1, "text")->valuestring, gt);
    ck_assert_str_eq(cJSON_GetObjectItem(p0, "text")->valuestring, gt);
    ck_assert(!cJSON_GetObjectItem(g, "seed") && cJSON_GetObjectItem(k1, "seed"));
    /* a beam of one is the greedy sentence; a wider beam finds one at least as likely */
    cJSON *b1 = ask(&m, &meta, "{\"text\": \"i love\", \"length\": 20, \"beam\": 1}", 200);
    cJSON *b4 = ask(&m, &meta, "{\"text\": \"i love\", \"length\": 20, \"beam\": 4}", 200);
    cJSON *gl = ask(&m, &meta, "{\"text\": \"i love\", \"length\": 20, \"temperature\": 0}", 200);
    ck_assert_str_eq(cJSON_GetObjectItem(b1, "text")->valuestring, cJSON_GetObjectItem(gl, "text")->valuestring);
    const double s1 = cJSON_GetObjectItem(b1, "score")->valuedouble, s4 = cJSON_GetObjectItem(b4, "score")->valuedouble;
    printf("  word lm: beam 4 after \"i love\": \"%s\" (log p %.4f; greedy %.4f)\n",
           cJSON_GetObjectItem(b4, "text")->valuestring, s4, s1);
    ck_assert(s4 >= s1 - 1e-6 && s1 < 0); /* B = 1 and B = 4 steps round apart by ~1e-9 */
    cJSON_Delete(b1); cJSON_Delete(b4); cJSON_Delete(gl);
    ask(&m, &meta, "{\"text\": \"i\", \"beam\": 17}", 422);
    cJSON_Delete(g); cJSON_Delete(k1); cJSON_Delete(p0);
    /* an unknown word is <unk>, and counted */
    o = ask(&m, &meta, "{\"text\": \"I love quantum\", \"top\": 1}", 200);
    ck_assert_int_eq((int)cJSON_GetObjectItem(o, "unknown")->valuedouble, 1);
    cJSON_Delete(o);
    ask(&m, &meta, "{\"text\": \"\", \"top\": 1}", 422);
    /* the vocabulary travels in the file */
    char path[64];
    snprintf(path, sizeof path, "/tmp/rnnd-words-%d.safetensors", (int)getpid());
    ck_assert_msg(rnn_model_save(path, &m, &meta, &err) == 0, "%s", err.msg);
    rnn_model m2;
    rnn_meta meta2;
    ck_assert_msg(rnn_model_load(path, &m2, &meta2, &err) == 0, "%s", err.msg);
    unlink(path);
    ck_assert_int_eq(meta2.words.n, meta.words.n);
    o = ask(&m2, &meta2, "{\"text\": \"i love recurrent\", \"length\": 20, \"temperature\": 0}", 200);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "text")->valuestring, " neural networks.");
    cJSON_Delete(o);
    rnn_model_free(&m2); rnn_meta_free(&meta2);
    rnn_train_result_free(&r);
    rnn_model_free(&m); rnn_meta_free(&meta);
}
END_TEST

#define SENTIMENT_JOB                                                                                    \
    "{\"task\": \"classify\", \"tokens\": \"words\", \"cell\": \"gru\", \"hidden\": 16, \"embedding\": 8,"  \
    " \"data\": {\"texts\": [\"the movie was great\", \"i loved this film\", \"what a wonderful story\","  \
    " \"great acting and a great plot\", \"i really enjoyed it\", \"a delightful and moving film\","       \
    " \"the movie was terrible\", \"i hated this film\", \"what a boring story\","                        \
    " \"awful acting and a dull plot\", \"i really disliked it\", \"a tedious and painful film\"],"        \
    " \"labels\": [\"pos\", \"pos\", \"pos\", \"pos\", \"pos\", \"pos\", \"neg\", \"neg\", \"neg\", \"neg\","  \
    " \"neg\", \"neg\"]}, \"epochs\": 150, \"batch\": 4, \"optimizer\": {\"name\": \"adam\", \"lr\": 0.02}}"

START_TEST(test_word_sentiment)
{
    rnn_model m;
    rnn_meta meta;
    rnn_train_result r;
    rnn_err err;
    ck_assert_msg(train_json(SENTIMENT_JOB, NULL, &m, &meta, &r, NULL, NULL, &err) == 0, "%s", err.msg);
    ck_assert(r.accuracy && r.val_accuracy);
    printf("  sentiment over words: accuracy %.2f after epoch 1, %.2f after %d\n", r.accuracy[0],
           r.accuracy[r.epochs_done - 1], r.epochs_done);
    ck_assert(r.accuracy[r.epochs_done - 1] == 1.0 && isnan(r.val_accuracy[0]));
    ck_assert(meta.nlabels == 2 && !strcmp(meta.labels[0], "neg"));
    cJSON *o = ask(&m, &meta, "{\"texts\": [\"The movie was GREAT!\", \"What a terrible, boring film.\"]}", 200);
    const cJSON *pr = cJSON_GetObjectItem(o, "predictions");
    const cJSON *a = cJSON_GetArrayItem(pr, 0), *b = cJSON_GetArrayItem(pr, 1);
    ck_assert_str_eq(cJSON_GetObjectItem(a, "label")->valuestring, "pos");
    ck_assert_str_eq(cJSON_GetObjectItem(b, "label")->valuestring, "neg");
    const cJSON *probs = cJSON_GetObjectItem(a, "probabilities");
    ck_assert(cJSON_IsObject(probs) && cJSON_GetObjectItem(probs, "pos")->valuedouble > 0.5);
    ck_assert_msg(fabs(cJSON_GetObjectItem(probs, "pos")->valuedouble + cJSON_GetObjectItem(probs, "neg")->valuedouble - 1) < 1e-9,
                  "probabilities do not add up");
    /* "!", "," and "." never came up in training: <unk>, and counted */
    ck_assert_int_eq((int)cJSON_GetObjectItem(o, "unknown")->valuedouble, 3);
    cJSON_Delete(o);
    rnn_train_result_free(&r);
    rnn_model_free(&m); rnn_meta_free(&meta);
}
END_TEST

START_TEST(test_text_errors)
{
    static const struct { const char *job, *want; } bad[] = {
        {"{\"task\": \"classify\", \"data\": {\"texts\": [\"a\", \"b\"], \"labels\": [\"x\"]}}", "data.labels: 1 labels for 2 texts"},
        {"{\"task\": \"classify\", \"data\": {\"texts\": [\"a\", \"\"], \"labels\": [\"x\", \"y\"]}}", "data.texts[1]: must be a non-empty string"},
        {"{\"task\": \"classify\", \"data\": {\"texts\": [\"a\", \"b\"], \"labels\": [\"x\", \"x\"]}}", "at least two classes"},
        {"{\"task\": \"classify\", \"tokens\": \"words\", \"data\": {\"texts\": [\"a\", \"!!\"], \"labels\": [\"x\", 1]}}", "data.labels[1]: must be a non-empty string"},
        {"{\"task\": \"classify\", \"data\": {\"texts\": [\"a\", \"b\"]}}", "data.labels: missing"},
        {"{\"task\": \"lm\", \"tokens\": \"words\", \"data\": {\"texts\": [\"one two\"], \"window\": 5}}", "needs more than window (5) words"},
        {"{\"task\": \"lm\", \"data\": {\"texts\": [\"one two\"]}}", "data.window: missing"},
        {"{\"data\": {\"texts\": [\"one two\"], \"window\": 1}}", "data.texts: needs task lm or classify"},
        {"{\"task\": \"lm\", \"tokens\": \"words\", \"data\": {\"sequences\": [\"ab\"], \"targets\": [1]}}", "tokens: words come as data.texts"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_refused(bad[i].job, NULL, 0, bad[i].want);
    static const struct { const char *job, *want; } refused[] = {
        {"{\"tokens\": \"bytes\", \"data\": {\"generator\": \"sine\", \"window\": 5}}", "tokens: must be chars or words"},
        {"{\"tokens\": \"words\", \"data\": {\"generator\": \"sine\", \"window\": 5}}", "tokens: words are for lm and classify"},
        {"{\"task\": \"lm\", \"max_vocab\": 2, \"data\": {\"text\": \"ab\", \"window\": 1}}", "max_vocab: must be between 3"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        expect_refused(refused[i].job, NULL, 1, refused[i].want);
}
END_TEST

Suite *texts_suite(void)
{
    Suite *s = suite_create("texts");
    TCase *tc = tcase_create("texts");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_word_tokenizer);
    tcase_add_test(tc, test_word_lm);
    tcase_add_test(tc, test_word_sentiment);
    tcase_add_test(tc, test_text_errors);
    suite_add_tcase(s, tc);
    return s;
}

/*
 * DESIGN: a job handed to a launcher (train_command). The daemon runs
 *
 *     /bin/sh -c 'exec TRAIN_COMMAND "$@"' rnnd-train --job SPEC --out MODEL ...
 *
 * (TRAIN_COMMAND being, say, `mpirun -np 8 --hostfile /etc/rnnd/hosts rnnd
 * train`) in a session and process group of its own, with rnnd train's
 * --progress-json lines on a pipe and its stderr in a log file. Each line
 * goes through the same progress callback as an in-process job's, so
 * /train/ID, /admin/loss and the chart look the same. A cancel or a stop of
 * the daemon sends SIGTERM to the whole group (mpirun passes it to its
 * ranks, which checkpoint and stop after the same step), then SIGKILL if it
 * has not ended within KILL_AFTER_S. Whatever the launched processes do,
 * crash included, the daemon only sees a process end: that job fails and
 * serving goes on.
 */
#include "daemon.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define KILL_AFTER_S 10.0
#define MAX_ARGS 24

/* One --progress-json line as the trainer's progress. */
static int parse_progress(const char *line, rnn_progress *p)
{
    cJSON *o = cJSON_Parse(line);
    if (!cJSON_IsObject(o) || !cJSON_HasObjectItem(o, "epoch_end")) {
        cJSON_Delete(o);
        return -1;
    }
    memset(p, 0, sizeof *p);
    p->val_loss = p->accuracy = p->val_accuracy = NAN;
    static const struct { const char *k; size_t off; int kind; } fields[] = {
        {"epoch", offsetof(rnn_progress, epoch), 'i'},   {"epochs", offsetof(rnn_progress, epochs), 'i'},
        {"step", offsetof(rnn_progress, step), 'l'},     {"steps", offsetof(rnn_progress, steps), 'l'},
        {"lr", offsetof(rnn_progress, lr), 'd'},         {"best_epoch", offsetof(rnn_progress, best_epoch), 'i'},
        {"val_loss", offsetof(rnn_progress, val_loss), 'd'},
        {"accuracy", offsetof(rnn_progress, accuracy), 'd'},
        {"val_accuracy", offsetof(rnn_progress, val_accuracy), 'd'},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, fields[i].k);
        if (!cJSON_IsNumber(v))
            continue;
        char *at = (char *)p + fields[i].off;
        if (fields[i].kind == 'i') *(int *)at = (int)v->valuedouble;
        else if (fields[i].kind == 'l') *(long *)at = (long)v->valuedouble;
        else *(double *)at = v->valuedouble;
    }
    const cJSON *loss = cJSON_GetObjectItemCaseSensitive(o, "loss");
    p->epoch_end = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "epoch_end"));
    if (cJSON_IsNumber(loss)) {
        p->loss = loss->valuedouble;
        if (p->epoch_end)
            p->epoch_loss = loss->valuedouble;
    }
    cJSON_Delete(o);
    return 0;
}

/* The last line of the log, where rnnd train says why it stopped. */
static void last_line(const char *path, char *out, size_t n)
{
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[RNN_ERR_LEN];
    while (fgets(line, sizeof line, f))
        if (line[0] && line[0] != '\n') {
            line[strcspn(line, "\n")] = 0;
            snprintf(out, n, "%.*s", (int)(n - 1), line);
        }
    fclose(f);
}

int launch_train(const char *command, const char *const *args, const char *log_path,
                 const launch_hooks *h, rnn_err *err)
{
    /* everything the child needs, made before fork: it may only exec */
    const char *argv[MAX_ARGS + 6];
    int n = 0;
    char script[600];
    snprintf(script, sizeof script, "exec %s \"$@\"", command);
    argv[n++] = "/bin/sh";
    argv[n++] = "-c";
    argv[n++] = script;
    argv[n++] = "rnnd-train";
    for (int i = 0; args[i] && n < MAX_ARGS + 5; i++) argv[n++] = args[i];
    argv[n] = NULL;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC)) {
        snprintf(err->msg, sizeof err->msg, "train_command: cannot make a pipe: %s", strerror(errno));
        return -1;
    }
    const int logfd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const pid_t pid = fork();
    if (pid < 0) {
        snprintf(err->msg, sizeof err->msg, "train_command: cannot start it: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        if (logfd >= 0) close(logfd);
        return -1;
    }
    if (pid == 0) {
        /* its own session and group, so one signal reaches all it starts;
         * the daemon's blocked and ignored signals are not its */
        setsid();
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        const int in = open("/dev/null", O_RDONLY);
        if (in >= 0) dup2(in, 0);
        dup2(fds[1], 1);
        dup2(logfd >= 0 ? logfd : fds[1], 2);
        /* nothing else of the daemon's (sockets, libmicrohttpd's pipes) */
        if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
            for (int fd = 3; fd < 4096; fd++) close(fd);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    if (logfd >= 0) close(logfd);
    if (h->started) h->started(h->ud, (long)pid);

    char buf[8192];
    size_t have = 0;
    int asked = RNN_TRAIN_GO;   /* what the daemon asked of it: cancel or suspend */
    double killed_at = 0, sent_at = 0;
    for (;;) {
        struct pollfd pf = {fds[0], POLLIN, 0};
        const int r = poll(&pf, 1, 200);
        if (r > 0) {
            const ssize_t got = read(fds[0], buf + have, sizeof buf - 1 - have);
            if (got <= 0)
                break;
            have += (size_t)got;
            buf[have] = 0;
            char *start = buf, *nl;
            while ((nl = strchr(start, '\n'))) {
                *nl = 0;
                rnn_progress p;
                if (parse_progress(start, &p) == 0) {
                    const int want = h->progress(h->ud, &p);
                    if ((want == RNN_TRAIN_CANCEL || want == RNN_TRAIN_SUSPEND) && asked == RNN_TRAIN_GO)
                        asked = want;
                }
                start = nl + 1;
            }
            have = strlen(start);
            memmove(buf, start, have + 1);
            if (have == sizeof buf - 1)
                have = 0; /* a line too long to be progress: dropped */
        }
        if (asked == RNN_TRAIN_GO)
            asked = h->stop(h->ud);
        const double now = rnnd_clock();
        if (asked != RNN_TRAIN_GO && sent_at == 0) {
            killpg(pid, SIGTERM);
            sent_at = now;
        }
        if (sent_at > 0 && killed_at == 0 && now - sent_at > KILL_AFTER_S) {
            killpg(pid, SIGKILL);
            killed_at = now;
        }
    }
    close(fds[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    /* what it started may outlive it: the group goes with it */
    killpg(pid, SIGKILL);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && asked == RNN_TRAIN_GO)
        return 0;
    if (asked == RNN_TRAIN_CANCEL)
        return 1;
    /* stopped with the daemon: rnnd train exits 75 after its checkpoint, a
     * launcher with a status of its own (mpirun: 1); either way the job
     * goes on from its checkpoint, or from the start without one, at the
     * next start */
    if (asked == RNN_TRAIN_SUSPEND)
        return 2;
    char why[RNN_ERR_LEN - 120];
    last_line(log_path, why, sizeof why);
    if (WIFSIGNALED(st))
        snprintf(err->msg, sizeof err->msg, "train_command (pid %ld) was killed by signal %d%s%s",
                 (long)pid, WTERMSIG(st), why[0] ? ": " : "", why);
    else
        snprintf(err->msg, sizeof err->msg, "train_command (pid %ld) exited with status %d%s%s", (long)pid,
                 WEXITSTATUS(st), why[0] ? ": " : "", why);
    return -1;
}

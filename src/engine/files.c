/*
 * Crash-safe files. A file is replaced by writing a temp file beside it
 * (NAME.tmp.XXXXXX), fsyncing it, renaming it over NAME and fsyncing the
 * folder: a reader, or the daemon after kill -9, sees the old file or the
 * new one, never part of either. A save holds an flock on its temp file until
 * the rename, so rnn_remove_stale_temps can tell the temps of saves that died
 * from those of saves still writing. Model files and training checkpoints
 * are both written this way. rnn_file_create ends with link() instead of
 * rename(): the file appears whole, and only if no file of that name exists,
 * even when another process (a replica on a shared volume) makes it at the
 * same moment.
 */
#include "rnn/io.h"
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TEMP_TAIL ".tmp.XXXXXX"

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes parts into a temp beside path, then renames it over path, or with
 * exclusive links it to path (1 if path exists). */
static int file_write(const char *path, const rnn_span *parts, int nparts, int exclusive,
                      unsigned long long id[2], rnn_err *err)
{
    char *pcopy = strdup(path), *tmp = malloc(strlen(path) + sizeof TEMP_TAIL);
    int fd = -1, rc = -1;
    if (!pcopy || !tmp) {
        rnn_fail(err, "%s: out of memory", path);
        goto out;
    }
    sprintf(tmp, "%s%s", path, TEMP_TAIL);
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        tmp[0] = 0;
        rnn_fail(err, "%s: cannot create a temp file beside it: %s", path, strerror(errno));
        goto out;
    }
    /* locked until it is renamed: rnn_remove_stale_temps leaves it alone */
    flock(fd, LOCK_EX);
    fchmod(fd, 0644);
    for (int i = 0; i < nparts; i++)
        if (write_all(fd, parts[i].p, parts[i].n)) {
            rnn_fail(err, "%s: write failed: %s", path, strerror(errno));
            goto out;
        }
    if (fsync(fd)) {
        rnn_fail(err, "%s: write failed: %s", path, strerror(errno));
        goto out;
    }
    struct stat st;
    if (id && fstat(fd, &st) == 0) {
        /* the file as it will be at path: a rename keeps both */
        id[0] = (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL + (unsigned long long)st.st_mtim.tv_nsec;
        id[1] = (unsigned long long)st.st_ino;
    }
    if (exclusive) {
        if (link(tmp, path)) {
            if (errno == EEXIST)
                rc = 1;
            else
                rnn_fail(err, "%s: link failed: %s", path, strerror(errno));
            goto out;
        }
        unlink(tmp);
    } else if (rename(tmp, path)) {
        rnn_fail(err, "%s: rename failed: %s", path, strerror(errno));
        goto out;
    }
    tmp[0] = 0;
    const int closed = close(fd); /* the data is on disk already (fsync) */
    fd = -1;
    if (closed) {
        rnn_fail(err, "%s: close failed: %s", path, strerror(errno));
        goto out;
    }
    int dfd = open(dirname(pcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc && tmp && tmp[0])
        unlink(tmp);
    free(tmp);
    free(pcopy);
    return rc;
}

int rnn_file_replace(const char *path, const rnn_span *parts, int nparts, rnn_err *err)
{
    return file_write(path, parts, nparts, 0, NULL, err);
}

int rnn_file_replace_id(const char *path, const rnn_span *parts, int nparts, unsigned long long id[2],
                        rnn_err *err)
{
    return file_write(path, parts, nparts, 0, id, err);
}

int rnn_file_create(const char *path, const rnn_span *parts, int nparts, rnn_err *err)
{
    return file_write(path, parts, nparts, 1, NULL, err);
}

unsigned char *rnn_file_read(const char *path, size_t max, size_t *len, rnn_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rnn_fail(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    unsigned char *buf = NULL;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        rnn_fail(err, "%s: not a regular file", path);
    } else if ((unsigned long long)st.st_size > max) {
        rnn_fail(err, "%s: larger than %zu bytes", path, max);
    } else if (!(buf = malloc((size_t)st.st_size + 1))) {
        rnn_fail(err, "%s: out of memory", path);
    } else {
        size_t got = 0, n = (size_t)st.st_size;
        while (got < n) {
            const ssize_t r = read(fd, buf + got, n - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        if (got != n) {
            rnn_fail(err, "%s: read error", path);
            free(buf);
            buf = NULL;
        } else {
            buf[n] = 0;
            *len = n;
        }
    }
    close(fd);
    return buf;
}

/* Is name a temp file of rnn_file_replace: NAME.tmp. and six characters? */
static int is_temp(const char *name)
{
    const size_t l = strlen(name), tl = strlen(TEMP_TAIL);
    return name[0] != '.' && l > tl && !strncmp(name + l - tl, ".tmp.", 5);
}

/* Temp files of saves that died (a crash or kill -9 between mkostemp and
 * rename): nobody holds them locked (a live save holds its lock until the
 * rename). Their age does not matter: a daemon restarted at once after a
 * kill -9 must find them too. A save caught between its mkostemp and its
 * flock (microseconds) by another process's cleanup loses its temp file and
 * fails at the rename, naming it; the file it replaces is untouched. */
int rnn_remove_stale_temps(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_temp(e->d_name))
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        struct stat st;
        if (fd < 0)
            continue;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0 &&
            unlink(path) == 0)
            removed++;
        close(fd);
    }
    closedir(d);
    return removed;
}

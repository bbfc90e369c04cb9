/*
 * DESIGN: replicas. Daemons that share one model_dir (a volume) serve the
 * versions each other publish: a publish writes the kept file (a number no
 * other replica holds: versions_keep creates it exclusively), then renames
 * the model over model_dir/NAME.safetensors, and every other replica, seeing
 * the file change, loads it with the version number inside it (the bytes of
 * that kept file), so all serve the same number.
 *
 * The main thread calls watch_due every tick. A scan is due when inotify
 * reports a file closed after writing, moved in or deleted in model_dir, and
 * at least every watch_s seconds whatever it reports, for network file
 * systems, where inotify sees only this host's changes. A scan leaves files
 * that changed less than SETTLE_S ago, which a copy may still be writing,
 * and comes back for them once they have held still; a file that does not
 * load waits until it changes. So a half-copied file is never served.
 */
#include "daemon.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define SETTLE_S 0.3

struct watcher {
    int fd;                 /* inotify, or -1 (polling only) */
    double every;           /* watch_s */
    double next;            /* the next scan at the latest (rnnd_clock) */
};

watcher *watch_start(const char *model_dir, int watch_s)
{
    if (watch_s <= 0)
        return NULL;
    watcher *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->every = watch_s;
    w->next = rnnd_clock() + watch_s;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd >= 0 &&
        inotify_add_watch(w->fd, model_dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_CREATE) < 0) {
        close(w->fd);
        w->fd = -1;
    }
    if (w->fd < 0)
        rnnd_log(LOG_WARN, "model_dir %s: no inotify (%s): scanning it every %d s (watch_s)", model_dir,
                 strerror(errno), watch_s);
    return w;
}

void watch_free(watcher *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    free(w);
}

/* Were there events? Reads them all; only that they came matters. */
static int drain_events(watcher *w)
{
    if (w->fd < 0)
        return 0;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int any = 0;
    while (read(w->fd, buf, sizeof buf) > 0)
        any = 1;
    return any;
}

int watch_due(watcher *w, double now)
{
    if (!w)
        return 0;
    const int events = drain_events(w);
    return events || now >= w->next;
}

void watch_scanned(watcher *w, double now, int fresh)
{
    /* files too fresh to load are looked at again once they have settled */
    w->next = now + (fresh > 0 ? SETTLE_S : w->every);
}

double watch_settle_s(void) { return SETTLE_S; }

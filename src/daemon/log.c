/* One-line logs to stderr: time, level, message. Callers go through the
 * rnnd_log macro, which checks the level before formatting anything. */
#include "daemon.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int rnnd_log_level = LOG_INFO;

int rnnd_log_parse(const char *s)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

void rnnd_log_(int level, const char *fmt, ...)
{
    static const char *const names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    char msg[2048], ts[32];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* one fprintf per line so lines from threads do not interleave */
    fprintf(stderr, "%s.%03ldZ %-5s %s\n", ts, now.tv_nsec / 1000000, names[level], msg);
}

/* Preloaded into the broker by it56: every fdatasync and fsync first
 * sleeps RK_SLOW_SYNC_MS milliseconds, so that a commit is still syncing
 * when the test sends its signal. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

static void nap(void)
{
    const char *s = getenv("RK_SLOW_SYNC_MS");
    long ms = s ? atol(s) : 1000;
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0)
        ;
}

int fdatasync(int fd)
{
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    nap();
    return real(fd);
}

int fsync(int fd)
{
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    nap();
    return real(fd);
}

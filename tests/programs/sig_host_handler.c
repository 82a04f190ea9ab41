/* Host signals with handlers (issue #7): prints "ready", then, by argv[1]:
 *   spin     spins until a SIGINT/SIGTERM handler has run (bounded by argv[2] ms),
 *   read     blocks in read() on stdin with a handler installed without SA_RESTART (EINTR),
 *   restart  the same with SA_RESTART: the read goes on and returns what is written later.
 * The handler counts its calls with write(2) (async-signal-safe). Run alone (stdin /dev/null,
 * nobody signalling) it ends by itself: the spin times out, the reads see EOF. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got;

static void on_signal(int sig) {
    const char *m = sig == SIGINT ? "handler: SIGINT\n" : "handler: other\n";
    write(1, m, strlen(m));
    got++;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "spin";
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = strcmp(mode, "restart") == 0 ? SA_RESTART : 0;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    printf("ready\n");
    fflush(stdout);
    if (strcmp(mode, "spin") == 0) {
        double limit = argc > 2 ? atof(argv[2]) : 200;
        double end = now_ms() + limit;
        while (!got && now_ms() < end) {
        }
        printf("spin ended: %s\n", got ? "by the handler" : "no signal");
    } else {
        char buf[64];
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0)
            printf("read: %s after %d handler call(s)\n", errno == EINTR ? "EINTR" : "error",
                   (int)got);
        else
            printf("read: %zd bytes after %d handler call(s)\n", n, (int)got);
    }
    return 0;
}

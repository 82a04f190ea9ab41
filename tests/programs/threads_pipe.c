/* Offloaded calls of two threads on two vCPUs that depend on each other: a thread blocked on the
 * host in read() of an empty pipe must not stop the other thread's offloaded write that would
 * wake it (before concurrent offloads, one blocked offload held the VMM's only offload lock and
 * this program deadlocked). Then a ping-pong over two pipes, a reader blocked in poll(), and a
 * reader that sees EOF when the other thread closes the write end. */
// lwk-vmm: --cpus 2
// args: 200
#include "check.h"
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int ping[2], pong[2];
static int rounds;

static void pause_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

static void *echo(void *arg)
{
    (void)arg;
    char c;
    long sum = 0;
    /* Blocks on the host until the main thread writes (it sleeps first). */
    for (int i = 0; i < rounds; i++) {
        if (read(ping[0], &c, 1) != 1)
            return (void *)-1L;
        sum += c;
        c++;
        if (write(pong[1], &c, 1) != 1)
            return (void *)-2L;
    }
    /* Blocks in poll() until the main thread writes once more. */
    struct pollfd p = {ping[0], POLLIN, 0};
    int n = poll(&p, 1, -1);
    if (n != 1 || !(p.revents & POLLIN))
        return (void *)-3L;
    if (read(ping[0], &c, 1) != 1)
        return (void *)-4L;
    /* Blocks until the main thread closes the write end: EOF. */
    if (read(ping[0], &c, 1) != 0)
        return (void *)-5L;
    return (void *)sum;
}

int main(int argc, char **argv)
{
    rounds = argc > 1 ? atoi(argv[1]) : 10;
    TRY("pipe ping", pipe(ping));
    TRY("pipe pong", pipe(pong));
    pthread_t t;
    if (pthread_create(&t, NULL, echo, NULL) != 0) {
        printf("pthread_create failed\n");
        return 1;
    }
    pause_ms(50);
    long got = 0;
    for (int i = 0; i < rounds; i++) {
        char c = (char)(i % 100);
        if (write(ping[1], &c, 1) != 1 || read(pong[0], &c, 1) != 1) {
            printf("round %d failed\n", i);
            return 1;
        }
        got += c;
    }
    printf("ping-pong rounds: %d, replies sum %ld\n", rounds, got);
    pause_ms(20);
    VAL("wake the poller", write(ping[1], "x", 1));
    pause_ms(20);
    TRY("close write end", close(ping[1]));
    void *ret;
    pthread_join(t, &ret);
    printf("echo thread result: %ld\n", (long)ret);
    return 0;
}

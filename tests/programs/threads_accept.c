/* A thread blocked on the host in accept() while the other thread (another vCPU) connects, and a
 * thread blocked in recv() on a socketpair while the other sends: each needs the other thread's
 * offloaded call to run while its own blocks on the host. */
// lwk-vmm: --cpus 2
#include "check.h"
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int listener, pair[2];

static void pause_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

static void *server(void *arg)
{
    (void)arg;
    int c = accept(listener, NULL, NULL);
    if (c < 0)
        return (void *)-1L;
    char buf[16] = {0};
    if (read(c, buf, 5) != 5)
        return (void *)-2L;
    if (write(c, "world", 5) != 5)
        return (void *)-3L;
    close(c);
    /* Blocks in recv() until the main thread sends. */
    if (recv(pair[1], buf, sizeof buf, 0) != 4)
        return (void *)-4L;
    return (void *)(long)buf[0];
}

int main(void)
{
    /* A Unix socket: no network needed (the real-KVM tier's guest has no loopback). */
    listener = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "/tmp/lwk-threads-accept-%d.sock", (int)getpid());
    unlink(a.sun_path);
    TRY("bind", bind(listener, (struct sockaddr *)&a, sizeof a));
    TRY("listen", listen(listener, 1));
    TRY("socketpair", socketpair(AF_UNIX, SOCK_STREAM, 0, pair));
    pthread_t t;
    if (pthread_create(&t, NULL, server, NULL) != 0) {
        printf("pthread_create failed\n");
        return 1;
    }
    /* Let the server block in accept() first. */
    pause_ms(50);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    TRY("connect", connect(s, (struct sockaddr *)&a, sizeof a));
    VAL("send", write(s, "hello", 5));
    char buf[16] = {0};
    VAL("reply", read(s, buf, 5));
    printf("reply: %s\n", buf);
    close(s);
    pause_ms(20);
    VAL("send on pair", send(pair[0], "ping", 4, 0));
    void *ret;
    pthread_join(t, &ret);
    printf("server result: %ld\n", (long)ret);
    unlink(a.sun_path);
    return 0;
}

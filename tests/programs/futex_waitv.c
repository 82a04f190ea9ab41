/* futex_waitv(2): argument checks, a value that changed (EAGAIN), an absolute timeout on
 * either clock (ETIMEDOUT), and a wake-up through the third of three futexes (returns its
 * index), with the waker on another thread. */
// lwk-vmm: --cpus 2
#include "check.h"
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

#define SYS_waitv 449
#define SIZE_U32 0x02
#define PRIV 128

struct waitv {
    uint64_t val;
    uint64_t uaddr;
    uint32_t flags;
    uint32_t reserved;
};

static uint32_t f[3];
static struct waitv w[3];

static long waitv(struct waitv *v, unsigned n, unsigned flags, struct timespec *t, int clock)
{
    return syscall(SYS_waitv, v, n, flags, t, clock);
}

static void setup(void)
{
    for (int i = 0; i < 3; i++) {
        w[i].val = f[i];
        w[i].uaddr = (uintptr_t)&f[i];
        w[i].flags = SIZE_U32 | (i == 1 ? 0 : PRIV);
        w[i].reserved = 0;
    }
}

static struct timespec in_ms(int clock, long ms)
{
    struct timespec t;
    clock_gettime(clock, &t);
    t.tv_nsec += ms * 1000000;
    t.tv_sec += t.tv_nsec / 1000000000;
    t.tv_nsec %= 1000000000;
    return t;
}

static long waker_woke;

static void *waker(void *arg)
{
    (void)arg;
    usleep(50000);
    __atomic_store_n(&f[2], 1, __ATOMIC_SEQ_CST);
    long n = syscall(SYS_futex, &f[2], 129 /* FUTEX_WAKE_PRIVATE */, 1, NULL, NULL, 0);
    waker_woke = n;
    return NULL;
}

int main(void)
{
    long r;
    setvbuf(stdout, NULL, _IONBF, 0);
    setup();
    r = waitv(w, 3, 1, NULL, 0);
    report("flags", r, errno);
    r = waitv(w, 0, 0, NULL, 0);
    report("zero futexes", r, errno);
    r = waitv(w, 129, 0, NULL, 0);
    report("129 futexes", r, errno);
    w[0].flags = PRIV;
    r = waitv(w, 3, 0, NULL, 0);
    report("no size", r, errno);
    setup();
    w[1].reserved = 1;
    r = waitv(w, 3, 0, NULL, 0);
    report("reserved", r, errno);
    setup();
    w[2].uaddr += 1;
    r = waitv(w, 3, 0, NULL, 0);
    report("misaligned", r, errno);
    /* (A value wider than 32 bits is EINVAL since Linux 6.7; older kernels truncate it and
     * wait, so it is left out.) */
    setup();
    struct timespec t = in_ms(CLOCK_MONOTONIC, 20);
    r = waitv(w, 3, 0, &t, CLOCK_PROCESS_CPUTIME_ID);
    report("bad clock", r, errno);
    w[1].val = 7;
    r = waitv(w, 3, 0, NULL, 0);
    report("changed value", r, errno);
    setup();
    t = in_ms(CLOCK_MONOTONIC, 20);
    r = waitv(w, 3, 0, &t, CLOCK_MONOTONIC);
    report("monotonic timeout", r, errno);
    t = in_ms(CLOCK_REALTIME, 20);
    r = waitv(w, 3, 0, &t, CLOCK_REALTIME);
    report("realtime timeout", r, errno);
    pthread_t th;
    pthread_create(&th, NULL, waker, NULL);
    r = waitv(w, 3, 0, NULL, 0);
    printf("woken through futex %ld\n", r);
    pthread_join(th, NULL);
    printf("waker woke %ld\n", waker_woke);
    return 0;
}

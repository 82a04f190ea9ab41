/* Raw futex semantics: EAGAIN on a changed word, ETIMEDOUT on relative and absolute timeouts,
 * WAKE with nobody waiting, bitset validation, requeue counts; nanosleep and clock_nanosleep. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* From <linux/futex.h> (not shipped with musl-gcc). */
#define FUTEX_WAIT 0
#define FUTEX_WAKE 1
#define FUTEX_CMP_REQUEUE 4
#define FUTEX_WAIT_BITSET 9
#define FUTEX_PRIVATE_FLAG 128
#define FUTEX_WAIT_PRIVATE (FUTEX_WAIT | FUTEX_PRIVATE_FLAG)
#define FUTEX_WAKE_PRIVATE (FUTEX_WAKE | FUTEX_PRIVATE_FLAG)
#define FUTEX_CMP_REQUEUE_PRIVATE (FUTEX_CMP_REQUEUE | FUTEX_PRIVATE_FLAG)
#define FUTEX_WAIT_BITSET_PRIVATE (FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG)
#define FUTEX_BITSET_MATCH_ANY 0xffffffff

static long fx(uint32_t *u, int op, uint32_t v, const struct timespec *t, uint32_t *u2, uint32_t v3)
{
    return syscall(SYS_futex, u, op, v, t, u2, v3);
}

static const char *res(long r)
{
    static char buf[32];
    if (r >= 0) {
        snprintf(buf, sizeof buf, "%ld", r);
        return buf;
    }
    return errno == EAGAIN ? "EAGAIN" : errno == ETIMEDOUT ? "ETIMEDOUT" : errno == EINVAL ? "EINVAL" : errno == EFAULT ? "EFAULT" : "other";
}

int main(void)
{
    static uint32_t word = 5, other = 0;
    struct timespec rel = {0, 20 * 1000 * 1000};
    printf("wait changed: %s\n", res(fx(&word, FUTEX_WAIT_PRIVATE, 4, NULL, NULL, 0)));
    printf("wait timeout: %s\n", res(fx(&word, FUTEX_WAIT_PRIVATE, 5, &rel, NULL, 0)));
    struct timespec now, abs;
    clock_gettime(CLOCK_MONOTONIC, &now);
    abs = now;
    abs.tv_nsec += 20 * 1000 * 1000;
    if (abs.tv_nsec >= 1000000000) {
        abs.tv_sec++;
        abs.tv_nsec -= 1000000000;
    }
    printf("bitset abs timeout: %s\n", res(fx(&word, FUTEX_WAIT_BITSET_PRIVATE, 5, &abs, NULL, FUTEX_BITSET_MATCH_ANY)));
    struct timespec after;
    clock_gettime(CLOCK_MONOTONIC, &after);
    long waited_ms = (after.tv_sec - now.tv_sec) * 1000 + (after.tv_nsec - now.tv_nsec) / 1000000;
    printf("waited >= 19 ms: %s\n", waited_ms >= 19 ? "yes" : "no");
    printf("bitset 0: %s\n", res(fx(&word, FUTEX_WAIT_BITSET_PRIVATE, 5, NULL, NULL, 0)));
    printf("wake nobody: %s\n", res(fx(&word, FUTEX_WAKE_PRIVATE, 10, NULL, NULL, 0)));
    printf("cmp_requeue mismatch: %s\n", res(fx(&word, FUTEX_CMP_REQUEUE_PRIVATE, 1, (void *)1, &other, 9)));
    printf("cmp_requeue match: %s\n", res(fx(&word, FUTEX_CMP_REQUEUE_PRIVATE, 1, (void *)1, &other, 5)));
    printf("misaligned: %s\n", res(fx((uint32_t *)((char *)&word + 1), FUTEX_WAKE, 1, NULL, NULL, 0)));
    printf("bad address: %s\n", res(fx((uint32_t *)16, FUTEX_WAIT, 0, NULL, NULL, 0)));
    struct timespec s = {0, 10 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &now);
    nanosleep(&s, NULL);
    clock_gettime(CLOCK_MONOTONIC, &after);
    waited_ms = (after.tv_sec - now.tv_sec) * 1000 + (after.tv_nsec - now.tv_nsec) / 1000000;
    printf("nanosleep >= 9 ms: %s\n", waited_ms >= 9 ? "yes" : "no");
    clock_gettime(CLOCK_REALTIME, &abs);
    abs.tv_nsec += 10 * 1000 * 1000;
    if (abs.tv_nsec >= 1000000000) {
        abs.tv_sec++;
        abs.tv_nsec -= 1000000000;
    }
    printf("clock_nanosleep abs: %d\n", clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &abs, NULL));
    clock_gettime(CLOCK_REALTIME, &after);
    printf("after deadline: %s\n", (after.tv_sec > abs.tv_sec || (after.tv_sec == abs.tv_sec && after.tv_nsec >= abs.tv_nsec)) ? "yes" : "no");
    return 0;
}

/* Offloaded pipe calls: pipe/pipe2, reads and writes, EOF and EPIPE, O_NONBLOCK, FIONREAD,
 * pipe sizes, splice/tee, eventfd. */
#define _GNU_SOURCE
#include "check.h"
#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <stdint.h>
#include <unistd.h>

int main(void)
{
    /* Natively a write to a pipe without readers raises SIGPIPE; the LWK has no signals yet,
     * so ask for EPIPE in both worlds (the call itself may fail under lwk-vmm). */
    signal(SIGPIPE, SIG_IGN);
    int p[2], q[2];
    TRY("pipe", pipe(p));
    printf("pipe fds distinct and low: %s\n", p[0] != p[1] && p[0] < 10 && p[1] < 10 ? "yes" : "no");
    char buf[70000];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)(i % 251);
    VAL("write", write(p[1], buf, 1000));
    int n = 0;
    TRY("FIONREAD", ioctl(p[0], FIONREAD, &n));
    printf("FIONREAD: %d\n", n);
    char in[70000];
    VAL("read part", read(p[0], in, 300));
    VAL("read rest", read(p[0], in + 300, sizeof in - 300));
    printf("checksum: %lx\n", fnv(in, 1000));
    struct iovec iov[2] = {{buf, 10}, {buf + 10, 20}};
    VAL("writev", writev(p[1], iov, 2));
    struct iovec riov[2] = {{in, 5}, {in + 5, 100}};
    VAL("readv", readv(p[0], riov, 2));
    printf("readv checksum: %lx\n", fnv(in, 30));
    VAL("lseek on pipe", lseek(p[0], 0, SEEK_SET));
    VAL("pread on pipe", pread(p[0], in, 1, 0));
    VAL("write to read end", write(p[0], "x", 1));
    VAL("read EFAULT keeps data", (write(p[1], "abc", 3), syscall(SYS_read, p[0], 8L, 3)));
    VAL("data still there", read(p[0], in, 3));

    TRY("pipe2 nonblock cloexec", pipe2(q, O_NONBLOCK | O_CLOEXEC));
    VAL("GETFD", fcntl(q[0], F_GETFD));
    VAL("GETFL nonblock", (fcntl(q[0], F_GETFL) & O_NONBLOCK) != 0);
    VAL("read empty nonblock", read(q[0], in, 10));
    VAL("GETPIPE_SZ", fcntl(q[1], F_GETPIPE_SZ));
    VAL("SETPIPE_SZ", fcntl(q[1], F_SETPIPE_SZ, 4096));
    VAL("fill", write(q[1], buf, sizeof buf));
    VAL("write full nonblock", write(q[1], buf, 10));
    TRY("pipe2 bad flags", pipe2(q, 0x4000000));
    TRY("pipe EFAULT", syscall(SYS_pipe, 8L));

    /* splice and tee between pipes */
    int r[2];
    pipe(r);
    write(p[1], "spliced data", 12);
    VAL("tee", tee(p[0], r[1], 100, 0));
    VAL("splice", splice(p[0], NULL, r[1], NULL, 100, 0));
    VAL("read both", read(r[0], in, 100));
    printf("tee+splice: %.24s\n", in);

    /* EOF and EPIPE */
    close(p[1]);
    VAL("read at EOF", read(p[0], in, 10));
    close(r[0]);
    VAL("write without reader", write(r[1], "x", 1));

    /* eventfd */
    int e = TRY("eventfd", eventfd(5, EFD_NONBLOCK));
    uint64_t v = 3;
    VAL("eventfd write", write(e, &v, 8));
    VAL("eventfd read", read(e, &v, 8));
    printf("eventfd value: %llu\n", (unsigned long long)v);
    VAL("eventfd read empty", read(e, &v, 8));
    VAL("eventfd short read", read(e, &v, 4));
    int s = TRY("eventfd semaphore", eventfd(2, EFD_SEMAPHORE | EFD_CLOEXEC));
    read(s, &v, 8);
    printf("semaphore read: %llu\n", (unsigned long long)v);
    VAL("eventfd GETFD", fcntl(s, F_GETFD));
    TRY("eventfd bad flags", eventfd(0, 0x40));
    return 0;
}

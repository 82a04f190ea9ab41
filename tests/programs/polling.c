/* Offloaded readiness calls: poll, ppoll, select, pselect6 and epoll on pipes, socket pairs
 * and eventfds, with POLLNVAL, EBADF and timeouts (short, never printed). */
#define _GNU_SOURCE
#include "check.h"
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void)
{
    int p[2], sv[2];
    pipe(p);
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    struct pollfd f[4] = {{p[0], POLLIN, 0}, {p[1], POLLOUT, 0}, {-1, POLLIN, 0}, {77, POLLIN, 0}};
    VAL("poll", poll(f, 4, 0));
    printf("revents: %x %x %x %x\n", f[0].revents, f[1].revents, f[2].revents, f[3].revents);
    VAL("poll empty pipe, 10 ms", poll(f, 1, 10));
    write(p[1], "x", 1);
    VAL("poll readable", poll(f, 1, -1));
    printf("revents: %x\n", f[0].revents);
    VAL("poll EFAULT", syscall(SYS_poll, 8L, 1L, 0L));
    VAL("poll nfds huge", syscall(SYS_poll, f, 1L << 30, 0L));
    struct timespec ts = {0, 5000000};
    f[0].fd = sv[0];
    VAL("ppoll timeout", ppoll(f, 1, &ts, NULL));
    send(sv[1], "y", 1, 0);
    VAL("ppoll socket", ppoll(f, 1, NULL, NULL));
    close(sv[1]);
    f[0].events = POLLIN | POLLRDHUP;
    VAL("ppoll after peer close", ppoll(f, 1, NULL, NULL));
    printf("revents hup/rdhup: %s\n", (f[0].revents & POLLRDHUP) ? "yes" : "no");

    fd_set r, w;
    FD_ZERO(&r);
    FD_ZERO(&w);
    FD_SET(p[0], &r);
    FD_SET(p[1], &w);
    struct timeval tv = {0, 0};
    VAL("select", select(p[1] + 1, &r, &w, NULL, &tv));
    printf("readable %d writable %d\n", FD_ISSET(p[0], &r) != 0, FD_ISSET(p[1], &w) != 0);
    char c;
    read(p[0], &c, 1);
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    tv.tv_usec = 10000;
    VAL("select timeout", select(p[0] + 1, &r, NULL, NULL, &tv));
    printf("set cleared: %s\n", FD_ISSET(p[0], &r) ? "no" : "yes");
    FD_ZERO(&r);
    FD_SET(60, &r);
    tv.tv_usec = 0;
    VAL("select EBADF", select(61, &r, NULL, NULL, &tv));
    tv.tv_usec = 2000000;
    VAL("select bad timeout", select(1, NULL, NULL, NULL, &tv));
    VAL("select nfds negative", select(-1, NULL, NULL, NULL, NULL));
    FD_ZERO(&w);
    FD_SET(p[1], &w);
    struct timespec pts = {1, 0};
    VAL("pselect", pselect(p[1] + 1, NULL, &w, NULL, &pts, NULL));

    int ep = TRY("epoll_create1", epoll_create1(EPOLL_CLOEXEC));
    VAL("epoll GETFD", fcntl(ep, F_GETFD));
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0x1122334455667788ULL};
    TRY("epoll_ctl add", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
    TRY("epoll_ctl add twice", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
    TRY("epoll_ctl mod missing", epoll_ctl(ep, EPOLL_CTL_MOD, p[1], &ev));
    TRY("epoll_ctl add self", epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev));
    TRY("epoll_ctl bad fd", epoll_ctl(ep, EPOLL_CTL_ADD, 88, &ev));
    struct epoll_event out[8];
    VAL("epoll_wait none", epoll_wait(ep, out, 8, 0));
    VAL("epoll_wait 10 ms", epoll_wait(ep, out, 8, 10));
    write(p[1], "z", 1);
    int e = eventfd(0, 0);
    struct epoll_event ev2 = {.events = EPOLLIN | EPOLLET, .data.u32 = 42};
    TRY("epoll_ctl add eventfd", epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev2));
    uint64_t one = 1;
    write(e, &one, 8);
    int n = VAL("epoll_wait", epoll_wait(ep, out, 8, -1));
    unsigned long long seen = 0;
    for (int i = 0; i < n; i++)
        seen ^= out[i].data.u64 * (out[i].events | 1);
    printf("events data: %llx\n", seen);
    VAL("epoll_wait edge-triggered again", epoll_wait(ep, out, 8, 0));
    VAL("epoll_pwait", epoll_pwait(ep, out, 8, 0, NULL));
    VAL("epoll_wait bad max", epoll_wait(ep, out, 0, 0));
    VAL("epoll_wait EFAULT", syscall(SYS_epoll_wait, ep, 8L, 8L, 0L));
    TRY("epoll_ctl del", epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL));
    VAL("epoll_wait after del", epoll_wait(ep, out, 8, 0));
    TRY("epoll_create bad", epoll_create(0));
    TRY("epoll_create1 bad", epoll_create1(1));
    return 0;
}

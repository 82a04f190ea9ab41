/* Offloaded socket calls: socketpair (stream, datagram), fd passing with SCM_RIGHTS,
 * AF_UNIX sockets bound to paths (in a directory of its own under /tmp), loopback TCP and
 * UDP, socket options, sendmmsg/recvmmsg. Loopback may be down (the real-KVM tier's
 * initramfs): then both runs print the same errno and skip the rest of that part. */
#define _GNU_SOURCE
#include "check.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

static int send_fd(int sock, int fd, const char *msg)
{
    char cbuf[CMSG_SPACE(sizeof(int))] = {0};
    struct iovec iov = {(void *)msg, strlen(msg)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                       .msg_controllen = sizeof cbuf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    return sendmsg(sock, &m, 0);
}

static int recv_fd(int sock, char *msg, size_t len, int flags)
{
    char cbuf[CMSG_SPACE(sizeof(int) * 4)];
    struct iovec iov = {msg, len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                       .msg_controllen = sizeof cbuf};
    ssize_t n = recvmsg(sock, &m, flags);
    if (n < 0)
        return -1;
    msg[n] = 0;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (!c || c->cmsg_type != SCM_RIGHTS)
        return -2;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return fd;
}

static void unix_paths(void)
{
    char dir[64], path[128];
    snprintf(dir, sizeof dir, "/tmp/lwk-sock-%d", getpid());
    TRY("mkdir", mkdir(dir, 0755));
    TRY("chdir", chdir(dir));
    int l = TRY("socket unix", socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s/srv", dir);
    TRY("bind", bind(l, (struct sockaddr *)&a, sizeof a));
    TRY("bind again", bind(socket(AF_UNIX, SOCK_STREAM, 0), (struct sockaddr *)&a, sizeof a));
    TRY("listen", listen(l, 4));
    struct stat st;
    TRY("stat socket", stat("srv", &st));
    printf("is socket: %s\n", S_ISSOCK(st.st_mode) ? "yes" : "no");
    struct sockaddr_un got;
    socklen_t gl = sizeof got;
    TRY("getsockname", getsockname(l, (struct sockaddr *)&got, &gl));
    printf("name is bound path: %s\n", strcmp(got.sun_path, a.sun_path) == 0 ? "yes" : "no");
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un rel = {.sun_family = AF_UNIX};
    strcpy(rel.sun_path, "srv"); /* relative to the cwd */
    TRY("connect relative", connect(c, (struct sockaddr *)&rel, sizeof rel));
    gl = sizeof got;
    int s = TRY("accept", accept(l, (struct sockaddr *)&got, &gl));
    printf("accepted peer unnamed: %s\n", gl == sizeof(sa_family_t) ? "yes" : "no");
    gl = sizeof got;
    TRY("getpeername", getpeername(c, (struct sockaddr *)&got, &gl));
    printf("peer is bound path: %s\n", strcmp(got.sun_path, a.sun_path) == 0 ? "yes" : "no");
    VAL("send", send(c, "ping", 4, 0));
    char buf[64] = {0};
    VAL("recv", recv(s, buf, sizeof buf, 0));
    printf("got: %s\n", buf);
    struct sockaddr_un missing = {.sun_family = AF_UNIX};
    strcpy(missing.sun_path, "nobody");
    TRY("connect missing", connect(socket(AF_UNIX, SOCK_STREAM, 0), (struct sockaddr *)&missing, sizeof missing));
    strcpy(missing.sun_path, "/");
    TRY("bind root", bind(socket(AF_UNIX, SOCK_STREAM, 0), (struct sockaddr *)&missing, sizeof missing));
    struct sockaddr_un ab = {.sun_family = AF_UNIX};
    snprintf(ab.sun_path + 1, sizeof ab.sun_path - 1, "lwk-abstract-%d", getpid());
    socklen_t al = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(ab.sun_path + 1);
    int ad = socket(AF_UNIX, SOCK_DGRAM, 0);
    TRY("bind abstract", bind(ad, (struct sockaddr *)&ab, al));
    VAL("sendto abstract", sendto(socket(AF_UNIX, SOCK_DGRAM, 0), "abs", 3, 0, (struct sockaddr *)&ab, al));
    VAL("recv abstract", recv(ad, buf, sizeof buf, 0));
    close(s);
    close(c);
    close(l);
    snprintf(path, sizeof path, "%s/srv", dir);
    TRY("unlink socket", unlink(path));
    TRY("chdir /", chdir("/"));
    TRY("rmdir", rmdir(dir));
}

static void loopback(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    TRY("SO_REUSEADDR", setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (TRY("tcp bind", bind(l, (struct sockaddr *)&a, sizeof a)) < 0)
        return;
    TRY("tcp listen", listen(l, 1));
    socklen_t len = sizeof a;
    TRY("getsockname", getsockname(l, (struct sockaddr *)&a, &len));
    printf("port assigned: %s len %u\n", a.sin_port != 0 ? "yes" : "no", (unsigned)len);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (TRY("tcp connect", connect(c, (struct sockaddr *)&a, sizeof a)) < 0)
        return;
    struct sockaddr_in peer;
    len = sizeof peer;
    int s = TRY("accept4", accept4(l, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC));
    printf("peer is loopback: %s\n", peer.sin_addr.s_addr == htonl(INADDR_LOOPBACK) ? "yes" : "no");
    VAL("accepted GETFD", fcntl(s, F_GETFD));
    TRY("TCP_NODELAY", setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    int v = 0;
    len = sizeof v;
    TRY("get TCP_NODELAY", getsockopt(c, IPPROTO_TCP, TCP_NODELAY, &v, &len));
    printf("nodelay: %d len %u\n", v != 0, (unsigned)len);
    len = sizeof v;
    TRY("SO_TYPE", getsockopt(c, SOL_SOCKET, SO_TYPE, &v, &len));
    printf("type stream: %s\n", v == SOCK_STREAM ? "yes" : "no");
    static char big[200000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 13);
    size_t sent = 0, got = 0;
    static char rb[200000];
    while (got < sizeof big) {
        if (sent < sizeof big) {
            ssize_t n = send(c, big + sent, sizeof big - sent, MSG_DONTWAIT);
            if (n > 0)
                sent += n;
        }
        ssize_t n = recv(s, rb + got, sizeof rb - got, MSG_DONTWAIT);
        if (n > 0)
            got += n;
    }
    printf("tcp transfer: %zu bytes, checksum %s\n", got, fnv(rb, got) == fnv(big, sizeof big) ? "equal" : "differs");
    TRY("shutdown", shutdown(c, SHUT_WR));
    char b[8];
    VAL("recv after shutdown", recv(s, b, sizeof b, 0));
    VAL("send after shutdown", send(c, "x", 1, MSG_NOSIGNAL));
    printf("SO_ATTACH_FILTER with a bad value refused: %s\n", setsockopt(c, SOL_SOCKET, SO_ATTACH_FILTER, b, sizeof b) < 0 ? "yes" : "no");
    close(c);
    close(s);
    close(l);

    int u1 = socket(AF_INET, SOCK_DGRAM, 0), u2 = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in ua = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    TRY("udp bind", bind(u1, (struct sockaddr *)&ua, sizeof ua));
    len = sizeof ua;
    getsockname(u1, (struct sockaddr *)&ua, &len);
    VAL("udp sendto", sendto(u2, "datagram!", 9, 0, (struct sockaddr *)&ua, sizeof ua));
    struct sockaddr_in from;
    len = sizeof from;
    char d[4];
    VAL("udp recvfrom truncated", recvfrom(u1, d, sizeof d, MSG_TRUNC, (struct sockaddr *)&from, &len));
    printf("from loopback: %s len %u\n", from.sin_addr.s_addr == htonl(INADDR_LOOPBACK) ? "yes" : "no", (unsigned)len);
    struct mmsghdr mm[3];
    struct iovec iv[3];
    char bufs[3][16];
    for (int i = 0; i < 3; i++) {
        snprintf(bufs[i], sizeof bufs[i], "mmsg-%d", i);
        iv[i].iov_base = bufs[i];
        iv[i].iov_len = strlen(bufs[i]);
        memset(&mm[i], 0, sizeof mm[i]);
        mm[i].msg_hdr.msg_iov = &iv[i];
        mm[i].msg_hdr.msg_iovlen = 1;
        mm[i].msg_hdr.msg_name = &ua;
        mm[i].msg_hdr.msg_namelen = sizeof ua;
    }
    VAL("sendmmsg", sendmmsg(u2, mm, 3, 0));
    for (int i = 0; i < 3; i++) {
        memset(bufs[i], 0, sizeof bufs[i]);
        iv[i].iov_len = sizeof bufs[i];
        mm[i].msg_hdr.msg_name = NULL;
        mm[i].msg_hdr.msg_namelen = 0;
    }
    VAL("recvmmsg", recvmmsg(u1, mm, 3, MSG_WAITFORONE, NULL));
    printf("mmsg: %s %s %s lens %u %u %u\n", bufs[0], bufs[1], bufs[2], mm[0].msg_len, mm[1].msg_len, mm[2].msg_len);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    int sv[2];
    TRY("socketpair", socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    VAL("send", send(sv[0], "hello", 5, 0));
    char buf[128] = {0};
    VAL("recv peek", recv(sv[1], buf, sizeof buf, MSG_PEEK));
    VAL("recv", recv(sv[1], buf, sizeof buf, 0));
    printf("got: %s\n", buf);
    VAL("recv nonblock empty", recv(sv[1], buf, sizeof buf, MSG_DONTWAIT));
    VAL("send EFAULT", syscall(SYS_sendto, sv[0], 8L, 5L, 0L, 0L, 0L));
    VAL("recv on pipe", ({ int p[2]; pipe(p); recv(p[0], buf, 1, 0); }));
    VAL("socket bad family", socket(12345, SOCK_STREAM, 0));

    /* Pass a pipe's read end and a file through the socket pair. */
    int p[2];
    pipe(p);
    write(p[1], "through the fd", 14);
    VAL("sendmsg SCM_RIGHTS", send_fd(sv[0], p[0], "fd1"));
    int fd = recv_fd(sv[1], buf, sizeof buf, MSG_CMSG_CLOEXEC);
    printf("received fd: %s, message %s\n", fd >= 0 ? "yes" : "no", buf);
    VAL("received GETFD", fcntl(fd, F_GETFD));
    char t[32] = {0};
    VAL("read through received fd", read(fd, t, sizeof t));
    printf("read: %s\n", t);
    printf("received fd is lowest free: %s\n", fd == p[1] + 1 ? "yes" : "no");
    VAL("sendmsg bad fd", send_fd(sv[0], 99, "bad"));
    int dsv[2];
    TRY("socketpair dgram", socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, dsv));
    VAL("dgram send", send(dsv[0], "0123456789", 10, 0));
    struct iovec iov = {buf, 4};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    VAL("recvmsg truncated", recvmsg(dsv[1], &m, 0));
    printf("MSG_TRUNC: %s\n", (m.msg_flags & MSG_TRUNC) ? "yes" : "no");
    VAL("recvmsg empty", recvmsg(dsv[1], &m, 0));
    int v;
    socklen_t len = sizeof v;
    TRY("SO_TYPE", getsockopt(dsv[0], SOL_SOCKET, SO_TYPE, &v, &len));
    printf("type dgram: %s\n", v == SOCK_DGRAM ? "yes" : "no");
    len = sizeof v;
    TRY("SO_ERROR", getsockopt(dsv[0], SOL_SOCKET, SO_ERROR, &v, &len));
    TRY("getsockopt bad level", getsockopt(dsv[0], 9999, 1, &v, &len));
    unix_paths();
    loopback();
    return 0;
}

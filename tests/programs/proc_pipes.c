/* Parent and child over pipes: 1 MiB each way with checksums, EOF when the last writer exits,
 * EPIPE and death by SIGPIPE when the last reader has gone, a file offset shared through an
 * inherited fd, close-on-exec against a plain fd across execve (the program re-executes itself
 * through argv[0] with a mode argument), and a child whose stdin and stdout are pipes dup2'ed
 * into place before execve. Prints checksums and relations, never pids or fd numbers. */
// lwk-vmm: --cpus 2 --oversubscribe timeslice
#define _GNU_SOURCE
#include "check.h"
#include <ctype.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define BIG (1 << 20)

static int read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += r;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t n)
{
    size_t put = 0;
    while (put < n) {
        ssize_t r = write(fd, (const char *)buf + put, n - put);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        put += r;
    }
    return 0;
}

/* Modes of the re-executed image. */
static int exec_mode(int argc, char **argv)
{
    if (!strcmp(argv[1], "fds") && argc == 4) {
        int cloexec_fd = atoi(argv[2]), keep_fd = atoi(argv[3]);
        errno = 0;
        int r = fcntl(cloexec_fd, F_GETFD);
        printf("exec'd image: O_CLOEXEC fd %s\n", r < 0 ? ename(errno) : "still open");
        r = fcntl(keep_fd, F_GETFD);
        printf("exec'd image: plain fd open: %s, FD_CLOEXEC clear: %s\n", yes(r >= 0),
               yes(r >= 0 && !(r & FD_CLOEXEC)));
        char buf[64] = {0};
        ssize_t n = read(keep_fd, buf, sizeof buf - 1);
        printf("exec'd image read from the plain fd: %zd bytes \"%s\"\n", n, n > 0 ? buf : "");
        return 0;
    }
    if (!strcmp(argv[1], "upper") && argc == 3) {
        /* stdin and stdout are pipes set up by the parent. */
        printf("%s:", argv[2]);
        int c;
        while ((c = getchar()) != EOF)
            putchar(toupper(c));
        return 5;
    }
    fprintf(stderr, "bad mode\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return exec_mode(argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    int st;

    /* 1 MiB each way. */
    int down[2], up[2];
    if (pipe(down) || pipe(up))
        return 1;
    unsigned char *buf = malloc(BIG);
    for (int i = 0; i < BIG; i++)
        buf[i] = (unsigned char)(i * 31 + (i >> 9));
    unsigned long sum_sent = fnv(buf, BIG);
    pid_t pid = fork_flushed();
    if (pid == 0) {
        close(down[1]);
        close(up[0]);
        unsigned char *in = malloc(BIG);
        if (read_full(down[0], in, BIG))
            _exit(10);
        unsigned long sum = fnv(in, BIG);
        char extra;
        ssize_t eof = read(down[0], &extra, 1);
        for (int i = 0; i < BIG; i++)
            in[i] ^= 0x5a;
        if (write_full(up[1], &sum, sizeof sum) || write_full(up[1], in, BIG))
            _exit(11);
        _exit(eof == 0 ? 0 : 12);
    }
    close(down[0]);
    close(up[1]);
    if (write_full(down[1], buf, BIG))
        return 1;
    close(down[1]);
    unsigned long child_sum = 0;
    unsigned char *back = malloc(BIG);
    int ok = read_full(up[0], &child_sum, sizeof child_sum) == 0 && read_full(up[0], back, BIG) == 0;
    for (int i = 0; i < BIG; i++)
        buf[i] ^= 0x5a;
    printf("1 MiB down: child's checksum matches: %s\n", yes(ok && child_sum == sum_sent));
    printf("1 MiB up: contents match: %s (checksum %016lx)\n", yes(ok && !memcmp(buf, back, BIG)),
           fnv(back, BIG));
    char c;
    printf("read after the child exits: %zd (EOF)\n", read(up[0], &c, 1));
    close(up[0]);
    waitpid(pid, &st, 0);
    print_status("transfer child", st);

    /* No reader left: EPIPE with SIGPIPE ignored, death by SIGPIPE by default. */
    int p[2];
    if (pipe(p))
        return 1;
    close(p[0]);
    pid = fork_flushed();
    if (pid == 0) {
        signal(SIGPIPE, SIG_IGN);
        errno = 0;
        ssize_t r = write(p[1], "x", 1);
        _exit(r < 0 && errno == EPIPE ? 0 : 1);
    }
    waitpid(pid, &st, 0);
    print_status("write with no reader, SIGPIPE ignored (0 = EPIPE)", st);
    pid = fork_flushed();
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        write(p[1], "x", 1);
        _exit(0);
    }
    waitpid(pid, &st, 0);
    print_status("write with no reader, SIGPIPE default", st);
    close(p[1]);

    /* An inherited fd shares its file offset with the parent. */
    char path[64];
    snprintf(path, sizeof path, "/tmp/lwk-proc-pipes-%d", (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return 1;
    write(fd, "abc", 3);
    pid = fork_flushed();
    if (pid == 0)
        _exit(write(fd, "def", 3) == 3 ? 0 : 1);
    waitpid(pid, &st, 0);
    write(fd, "ghi", 3);
    char file[16] = {0};
    pread(fd, file, sizeof file - 1, 0);
    printf("file written by parent, child, parent through one fd: \"%s\"\n", file);
    printf("offset after: %ld\n", (long)lseek(fd, 0, SEEK_CUR));
    close(fd);
    unlink(path);

    /* Close-on-exec across execve. */
    int cx[2], keep[2];
    if (pipe2(cx, O_CLOEXEC) || pipe(keep))
        return 1;
    write(keep[1], "kept across exec", 16);
    close(keep[1]);
    pid = fork_flushed();
    if (pid == 0) {
        char a[16], b[16];
        snprintf(a, sizeof a, "%d", cx[0]);
        snprintf(b, sizeof b, "%d", keep[0]);
        char *args[] = {argv[0], "fds", a, b, NULL};
        execv(argv[0], args);
        _exit(127);
    }
    waitpid(pid, &st, 0);
    print_status("fds child", st);
    close(cx[0]);
    close(cx[1]);
    close(keep[0]);

    /* stdin and stdout of an exec'd child are pipes. */
    int in[2], out[2];
    if (pipe(in) || pipe(out))
        return 1;
    pid = fork_flushed();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        char *args[] = {argv[0], "upper", "child says", NULL};
        execv(argv[0], args);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    const char *msg = "through two pipes\n";
    write(in[1], msg, strlen(msg));
    close(in[1]);
    char got[128] = {0};
    size_t n = 0;
    ssize_t r;
    while (n < sizeof got - 1 && (r = read(out[0], got + n, sizeof got - 1 - n)) > 0)
        n += r;
    close(out[0]);
    printf("parent read from the child's stdout: %s", got);
    waitpid(pid, &st, 0);
    print_status("upper child", st);
    printf("done\n");
    return 0;
}

/* File-backed mmap: MAP_PRIVATE read and copy-on-write (writes stay private), offsets,
 * MAP_FIXED over an anonymous mapping, the zero tail of the last page, MAP_SHARED read-only,
 * mprotect on a file mapping, and the errors (EBADF, EACCES for a write-only fd, ENODEV for
 * pipes and directories, EINVAL for an unaligned offset). Prints checksums and errnos. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096
#define SIZE (5 * PAGE + 123) /* not a page multiple: the last page has a zero tail */

static unsigned long sum(const unsigned char *p, size_t n) {
    unsigned long s = 0;
    for (size_t i = 0; i < n; i++) s = s * 31 + p[i];
    return s;
}

static const char *errname(int e) {
    switch (e) {
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EACCES: return "EACCES";
    case ENODEV: return "ENODEV";
    default: return "other";
    }
}

static void try_map(const char *what, int fd, int prot, int flags, off_t off) {
    errno = 0;
    void *p = mmap(NULL, PAGE, prot, flags, fd, off);
    if (p == MAP_FAILED) {
        printf("%s: %s\n", what, errname(errno));
    } else {
        printf("%s: ok\n", what);
        munmap(p, PAGE);
    }
}

int main(void) {
    char path[] = "/tmp/lwk-mm-file-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) { perror("mkstemp"); return 1; }
    unsigned char *data = malloc(SIZE);
    for (int i = 0; i < SIZE; i++) data[i] = (unsigned char)(i * 7 + i / PAGE);
    if (write(fd, data, SIZE) != SIZE) { perror("write"); return 1; }

    /* Whole file, private, read-only. */
    unsigned char *p = mmap(NULL, 6 * PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) { perror("mmap"); return 1; }
    printf("private: contents %s\n", memcmp(p, data, SIZE) == 0 ? "match" : "DIFFER");
    int tail_zero = 1;
    for (int i = SIZE; i < 6 * PAGE; i++) tail_zero &= p[i] == 0;
    printf("tail of the last page zero: %d\n", tail_zero);
    printf("checksum %lx\n", sum(p, SIZE));
    /* mprotect to writable: the writes stay private. */
    printf("mprotect rw: %d\n", mprotect(p, 6 * PAGE, PROT_READ | PROT_WRITE));
    memset(p + PAGE, 0xab, 100);
    unsigned char back[100];
    pread(fd, back, 100, PAGE);
    printf("file unchanged by private write: %d\n", memcmp(back, data + PAGE, 100) == 0);
    munmap(p, 6 * PAGE);

    /* An offset mapping. */
    p = mmap(NULL, 2 * PAGE, PROT_READ, MAP_PRIVATE, fd, 2 * PAGE);
    printf("offset 2 pages: %s\n",
           p != MAP_FAILED && memcmp(p, data + 2 * PAGE, 2 * PAGE) == 0 ? "match" : "DIFFER");
    munmap(p, 2 * PAGE);

    /* MAP_FIXED over part of an anonymous mapping. */
    unsigned char *a = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(a, 0x5a, 4 * PAGE);
    p = mmap(a + PAGE, 2 * PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 3 * PAGE);
    printf("fixed: at the address %d, contents %s, neighbours kept %d\n", p == a + PAGE,
           memcmp(p, data + 3 * PAGE, 2 * PAGE) == 0 ? "match" : "DIFFER",
           a[0] == 0x5a && a[3 * PAGE] == 0x5a);
    munmap(a, 4 * PAGE);

    /* Shared, read-only. */
    p = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, fd, 0);
    printf("shared read-only: %s\n",
           p != MAP_FAILED && memcmp(p, data, SIZE) == 0 ? "match" : "DIFFER");
    munmap(p, SIZE);

    /* Errors. */
    try_map("bad fd", 12345, PROT_READ, MAP_PRIVATE, 0);
    try_map("unaligned offset", fd, PROT_READ, MAP_PRIVATE, 100);
    int wfd = open(path, O_WRONLY);
    try_map("write-only fd", wfd, PROT_READ, MAP_PRIVATE, 0);
    close(wfd);
    int pfd[2];
    if (pipe(pfd) == 0) try_map("pipe", pfd[0], PROT_READ, MAP_PRIVATE, 0);
    int dfd = open("/tmp", O_RDONLY | O_DIRECTORY);
    try_map("directory", dfd, PROT_READ, MAP_PRIVATE, 0);
    int zfd = open("/dev/zero", O_RDONLY);
    if (zfd >= 0) {
        p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, zfd, 0);
        printf("/dev/zero private: %s\n", p != MAP_FAILED && p[0] == 0 && p[PAGE - 1] == 0
                                               ? "zero" : "WRONG");
    }
    unlink(path);
    return 0;
}

/* Run under lwk-vmm only (tests/integration/process.rs): read-only mappings of the same file
 * share the LWK's page cache, also between processes that opened and mapped the file on their
 * own, and the cache never shows anything but the file's current bytes.
 *
 *   page_cache OLD_FILE SCRATCH_DIR
 *
 * OLD_FILE is a file unchanged for a while (a system library); SCRATCH_DIR a writable
 * directory. Prints one "<case>: ok" line per case, or what went wrong. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

static long free_kib(void)
{
    struct sysinfo s;
    sysinfo(&s);
    return (long)(s.freeram * s.mem_unit / 1024);
}

static void *map_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    struct stat st;
    fstat(fd, &st);
    *len = st.st_size;
    void *m = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    return m == MAP_FAILED ? NULL : m;
}

static char *read_whole(const char *path, size_t len)
{
    char *b = malloc(len);
    int fd = open(path, O_RDONLY);
    size_t got = 0;
    while (fd >= 0 && got < len) {
        ssize_t r = read(fd, b + got, len - got);
        if (r <= 0)
            break;
        got += r;
    }
    if (fd >= 0)
        close(fd);
    return got == len ? b : NULL;
}

static int result(const char *name, int ok, const char *why)
{
    if (ok)
        printf("%s: ok\n", name);
    else
        printf("%s: FAILED (%s)\n", name, why);
    fflush(stdout);
    return ok;
}

/* Exit status of a child running f. */
static int in_child(int (*f)(const char *), const char *arg)
{
    fflush(stdout);
    pid_t p = fork();
    if (p == 0)
        _exit(f(arg) ? 0 : 1);
    int st = 0;
    return waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static const char *old_file;
static size_t old_len;
static char *old_bytes;

/* A process that opens and maps the file on its own takes (almost) no memory for it. */
static int independent_map(const char *unused)
{
    (void)unused;
    long before = free_kib();
    size_t len;
    char *m = map_file(old_file, &len);
    long used = before - free_kib();
    if (!m || len != old_len)
        return result("independent mapping", 0, "mmap failed");
    if (memcmp(m, old_bytes, len) != 0)
        return result("independent mapping", 0, "contents differ from read()");
    if (used > (long)(len / 1024) / 4) {
        char why[96];
        snprintf(why, sizeof why, "mapping %zu KiB took %ld KiB", len / 1024, used);
        return result("independent mapping", 0, why);
    }
    return result("independent mapping", 1, "");
}

/* A private copy made writable and written never reaches the cache. */
static int write_own_copy(const char *unused)
{
    (void)unused;
    size_t len;
    char *m = map_file(old_file, &len);
    if (!m || mprotect(m, len, PROT_READ | PROT_WRITE) != 0)
        return 0;
    memset(m, 0x5a, len);
    return 1;
}

/* A read-only mapping cannot be a read()'s buffer. */
static int read_into_mapping(const char *unused)
{
    (void)unused;
    size_t len;
    char *m = map_file(old_file, &len);
    int fd = open("/dev/zero", O_RDONLY);
    ssize_t r = read(fd, m, 4096);
    int e = errno;
    close(fd);
    return m && r == -1 && e == EFAULT;
}

static int dontneed(const char *unused)
{
    (void)unused;
    size_t len;
    char *m = map_file(old_file, &len);
    return m && madvise(m, len, MADV_DONTNEED) == 0 && memcmp(m, old_bytes, len) == 0;
}

static int still_the_file(void)
{
    size_t len;
    char *m = map_file(old_file, &len);
    int ok = m && memcmp(m, old_bytes, len) == 0;
    if (m)
        munmap(m, len);
    return ok;
}

/* A file changed after it was cached is mapped with its new bytes. */
static int changed_file(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/page_cache_changing", dir);
    size_t len = 64 * 1024;
    char *a = malloc(len), *b = malloc(len);
    memset(a, 'a', len);
    memset(b, 'b', len);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || pwrite(fd, a, len, 0) != (ssize_t)len)
        return result("changed file", 0, "cannot write the scratch file");
    /* Old enough to be cached (the LWK waits two seconds after a file's last change). */
    sleep(3);
    char *m1 = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    char *m2 = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m1 == MAP_FAILED || m2 == MAP_FAILED || memcmp(m1, a, len) || memcmp(m2, a, len))
        return result("changed file", 0, "first mappings do not hold the file");
    if (pwrite(fd, b, len, 0) != (ssize_t)len)
        return result("changed file", 0, "cannot rewrite the scratch file");
    char *m3 = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int ok = m3 != MAP_FAILED && memcmp(m3, b, len) == 0;
    close(fd);
    unlink(path);
    return result("changed file", ok, "a mapping made after the change shows the old bytes");
}

/* Cached pages count as free and are given back when a program asks for the memory. */
static int memory_back(void)
{
    size_t len;
    char *m = map_file(old_file, &len);
    if (m)
        munmap(m, len);
    /* All but 1 MiB of what sysinfo calls free (room for page tables): more than the job has
     * without the pages cached. */
    long kib = free_kib() - 1024;
    size_t want = (size_t)kib * 1024;
    char *big = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                     -1, 0);
    int ok = big != MAP_FAILED;
    if (ok) {
        for (size_t i = 0; i < want; i += 4096)
            big[i] = 1;
        munmap(big, want);
    }
    return result("memory given back", ok && still_the_file(), "mmap of the free memory failed");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: page_cache OLD_FILE SCRATCH_DIR\n");
        return 2;
    }
    old_file = argv[1];
    size_t len;
    char *first = map_file(old_file, &len);
    old_len = len;
    old_bytes = read_whole(old_file, len);
    if (!first || !old_bytes) {
        printf("cannot map or read %s\n", old_file);
        return 1;
    }
    int ok = result("first mapping", memcmp(first, old_bytes, len) == 0, "contents differ");
    ok &= in_child(independent_map, NULL);
    ok &= result("own copy", in_child(write_own_copy, NULL) && still_the_file() &&
                              memcmp(first, old_bytes, len) == 0,
                 "a written copy changed the file's mappings");
    ok &= result("read() into a read-only mapping", in_child(read_into_mapping, NULL) &&
                                                        still_the_file(),
                 "not EFAULT, or the mapping changed");
    ok &= result("MADV_DONTNEED", in_child(dontneed, NULL) && still_the_file(),
                 "the file's bytes are gone");
    ok &= changed_file(argv[2]);
    munmap(first, len);
    ok &= memory_back();
    return ok ? 0 : 1;
}

/* Offloaded file calls: open family, read/write family, metadata, links, locks, descriptor
 * calls and in-kernel copies, in a directory of its own under /tmp (removed at the end).
 * Prints outcomes, errnos and checksums only. */
#define _GNU_SOURCE
#include "check.h"
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

struct open_how_ { uint64_t flags, mode, resolve; };

int main(void)
{
    char dir[64], path[128], other[128], lnk[128];
    snprintf(dir, sizeof dir, "/tmp/lwk-files-%d", getpid());
    TRY("mkdir", mkdir(dir, 0755));
    TRY("chdir", chdir(dir));
    umask(022);
    printf("umask was 022: %s\n", umask(027) == 022 ? "yes" : "no");

    int fd = TRY("open creat", open("data", O_CREAT | O_RDWR | O_EXCL, 0666));
    struct stat st;
    TRY("fstat", fstat(fd, &st));
    printf("mode after umask 027: %o\n", st.st_mode & 07777);
    TRY("open O_EXCL again", open("data", O_CREAT | O_RDWR | O_EXCL, 0666));
    umask(022);

    char buf[8192];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)(i * 7 + 3);
    VAL("write", write(fd, buf, 5000));
    VAL("pwrite at 6000", pwrite(fd, buf, 100, 6000));
    VAL("lseek end", lseek(fd, 0, SEEK_END));
    VAL("lseek cur", lseek(fd, -10, SEEK_CUR));
    VAL("lseek bad whence", lseek(fd, 0, 42));
    char rd[8192];
    VAL("pread", pread(fd, rd, sizeof rd, 0));
    printf("hole reads zero: %s\n", rd[5500] == 0 && rd[5999] == 0 ? "yes" : "no");
    printf("checksum 0..5000: %lx\n", fnv(rd, 5000));
    struct iovec iov[3] = {{rd, 10}, {rd + 100, 20}, {rd + 200, 30}};
    VAL("preadv", preadv(fd, iov, 3, 1));
    printf("preadv bytes: %lx\n", fnv(rd, 10) ^ fnv(rd + 100, 20) ^ fnv(rd + 200, 30));
    struct iovec wiov[2] = {{"head-", 5}, {"tail", 4}};
    VAL("pwritev", pwritev(fd, wiov, 2, 7000));
    VAL("preadv2 at -1", syscall(SYS_preadv2, fd, iov, 1, -1L, 0L, 0));
    VAL("pread negative", pread(fd, rd, 1, -1));
    VAL("readv bad iovcnt", syscall(SYS_readv, fd, iov, -1));
    VAL("read EFAULT", syscall(SYS_read, fd, 8L, 10));
    VAL("write EFAULT", syscall(SYS_write, fd, 8L, 10));
    VAL("read EBADF", read(97, rd, 1));
    TRY("fsync", fsync(fd));
    TRY("fdatasync", fdatasync(fd));
    TRY("fallocate", fallocate(fd, 0, 0, 16384));
    TRY("fstat", fstat(fd, &st));
    printf("size after fallocate: %lld\n", (long long)st.st_size);
    TRY("ftruncate", ftruncate(fd, 7009));
    TRY("truncate", truncate("data", 7005));
    TRY("stat", stat("data", &st));
    printf("size after truncate: %lld regular: %s\n", (long long)st.st_size,
           S_ISREG(st.st_mode) ? "yes" : "no");
    TRY("truncate dir", truncate(".", 1));
    TRY("truncate negative", truncate("data", -1));

    /* Descriptor calls. */
    int d = VAL("dup is lowest free", dup(fd) > fd);
    (void)d;
    VAL("dup2 to 40", dup2(fd, 40));
    VAL("dup3 cloexec", dup3(fd, 41, O_CLOEXEC));
    VAL("fcntl GETFD 41", fcntl(41, F_GETFD));
    VAL("fcntl GETFD 40", fcntl(40, F_GETFD));
    VAL("fcntl DUPFD >= 50", fcntl(fd, F_DUPFD, 50));
    VAL("fcntl DUPFD_CLOEXEC >= 50", fcntl(fd, F_DUPFD_CLOEXEC, 50));
    VAL("fcntl GETFD 51", fcntl(51, F_GETFD));
    VAL("fcntl GETFL accmode", fcntl(fd, F_GETFL) & O_ACCMODE);
    TRY("fcntl SETFL append", fcntl(fd, F_SETFL, O_APPEND));
    VAL("fcntl GETFL append", (fcntl(fd, F_GETFL) & O_APPEND) != 0);
    VAL("dup3 same fd", dup3(fd, fd, 0));
    VAL("dup2 bad", dup2(fd, -1));
    VAL("close_range 40..60", syscall(SYS_close_range, 40, 60, 0));
    VAL("fcntl GETFD 50 closed", fcntl(50, F_GETFD));
    VAL("close twice", close(40));
    VAL("next open is lowest", open("data", O_RDONLY) < 40);

    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
    TRY("fcntl SETLK", fcntl(fd, F_SETLK, &fl));
    fl.l_type = F_RDLCK;
    TRY("fcntl GETLK", fcntl(fd, F_GETLK, &fl));
    printf("GETLK own lock: %s\n", fl.l_type == F_UNLCK ? "unlocked" : "locked");
    TRY("flock ex", flock(fd, LOCK_EX | LOCK_NB));
    TRY("flock un", flock(fd, LOCK_UN));

    /* Metadata. */
    TRY("chmod", chmod("data", 0640));
    TRY("stat", stat("data", &st));
    printf("mode: %o\n", st.st_mode & 07777);
    TRY("fchmod", fchmod(fd, 0600));
    TRY("fchmodat", fchmodat(AT_FDCWD, "data", 0644, 0));
    TRY("chown to self", chown("data", getuid(), getgid()));
    TRY("fchown to self", fchown(fd, -1, -1));
    struct timespec ts[2] = {{1000000000, 5}, {1200000000, 7}};
    TRY("utimensat", utimensat(AT_FDCWD, "data", ts, 0));
    TRY("stat", stat("data", &st));
    printf("mtime: %lld.%09ld\n", (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    ts[0].tv_nsec = 2000000000;
    TRY("utimensat bad nsec", utimensat(AT_FDCWD, "data", ts, 0));
    TRY("futimens now", futimens(fd, NULL));
    TRY("access R_OK", access("data", R_OK));
    TRY("access missing", access("missing", F_OK));
    TRY("faccessat bad mode", faccessat(AT_FDCWD, "data", 64, 0));
    unsigned char sx[256];
    TRY("statx", syscall(SYS_statx, AT_FDCWD, "data", 0, 0x7ffU, sx));
    uint64_t sxsize;
    memcpy(&sxsize, sx + 40, 8);
    printf("statx size: %llu\n", (unsigned long long)sxsize);
    struct statfs sf1, sf2;
    TRY("statfs", statfs(".", &sf1));
    TRY("fstatfs", fstatfs(fd, &sf2));
    printf("statfs type agrees: %s\n", sf1.f_type == sf2.f_type ? "yes" : "no");

    /* Names. */
    TRY("link", link("data", "hard"));
    TRY("stat", stat("hard", &st));
    printf("nlink: %ld\n", (long)st.st_nlink);
    TRY("symlink", symlink("data", "soft"));
    TRY("symlink exists", symlink("data", "soft"));
    char t[64] = {0};
    VAL("readlink", readlink("soft", t, sizeof t));
    printf("target: %s\n", t);
    VAL("readlink not link", readlink("data", t, sizeof t));
    TRY("lstat", lstat("soft", &st));
    printf("lstat is link: %s\n", S_ISLNK(st.st_mode) ? "yes" : "no");
    TRY("open O_NOFOLLOW link", open("soft", O_RDONLY | O_NOFOLLOW));
    TRY("rename", rename("hard", "hard2"));
    TRY("renameat2 noreplace", syscall(SYS_renameat2, AT_FDCWD, "hard2", AT_FDCWD, "data", 1));
    TRY("renameat2 exchange", syscall(SYS_renameat2, AT_FDCWD, "hard2", AT_FDCWD, "soft", 2));
    TRY("lstat", lstat("hard2", &st));
    printf("exchanged: %s\n", S_ISLNK(st.st_mode) ? "yes" : "no");
    TRY("open missing", open("nope/x", O_RDONLY));
    TRY("open through file", open("data/x", O_RDONLY));
    TRY("open dir for write", open(".", O_WRONLY));
    TRY("open EFAULT", open((char *)8, O_RDONLY));
    memset(path, 'a', sizeof path);
    char longname[5000];
    memset(longname, 'b', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    TRY("open ENAMETOOLONG", open(longname, O_RDONLY));
    TRY("creat", creat("made", 0600));
    struct open_how_ how = {O_RDONLY, 0, 0x08 /* RESOLVE_BENEATH */};
    TRY("openat2 beneath ..", syscall(SYS_openat2, AT_FDCWD, "../etc", &how, sizeof how));
    TRY("openat2 beneath ok", syscall(SYS_openat2, AT_FDCWD, "data", &how, sizeof how));
    TRY("openat2 bad size", syscall(SYS_openat2, AT_FDCWD, "data", &how, 8));

    /* In-kernel copies. */
    int in = open("data", O_RDONLY), out = open("copy", O_CREAT | O_WRONLY | O_TRUNC, 0644);
    off_t off = 100;
    VAL("sendfile", sendfile(out, in, &off, 1000));
    printf("sendfile offset: %lld\n", (long long)off);
    loff_t oi = 0;
    VAL("copy_file_range", syscall(SYS_copy_file_range, in, &oi, out, NULL, 3000, 0));
    close(out);
    out = open("copy", O_RDONLY);
    VAL("read copy", read(out, rd, sizeof rd));
    printf("copy checksum: %lx\n", fnv(rd, 4000));

    /* Clean up and check what is left. */
    snprintf(other, sizeof other, "%s/data", dir);
    snprintf(lnk, sizeof lnk, "%s/soft", dir);
    TRY("unlink", unlink(other));
    TRY("unlink link", unlink(lnk));
    TRY("unlink missing", unlink(other));
    TRY("unlink dir", unlink("."));
    unlink("hard2");
    unlink("made");
    unlink("copy");
    TRY("chdir /", chdir("/"));
    TRY("rmdir", rmdir(dir));
    (void)path;
    return 0;
}

/* Extended attributes through the offload bridge: set/get/list/remove on a path, the l* forms
 * on a symlink, the f* forms on an fd, size queries, and the errors (ENODATA, ERANGE, EEXIST,
 * EINVAL, EBADF, ENOENT). Prints values and errno names. A file system without user xattrs
 * (tmpfs before Linux 6.6) gives EOPNOTSUPP natively and under lwk-vmm alike. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

static const char *en(int e) {
    switch (e) {
    case 0: return "ok";
    case ENODATA: return "ENODATA";
    case ERANGE: return "ERANGE";
    case EEXIST: return "EEXIST";
    case EINVAL: return "EINVAL";
    case EBADF: return "EBADF";
    case ENOENT: return "ENOENT";
    case EPERM: return "EPERM";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    default: return "other";
    }
}

#define SHOW(what, expr)                                                  \
    do {                                                                  \
        errno = 0;                                                        \
        long r_ = (long)(expr);                                           \
        printf("%-28s %ld %s\n", what, r_, en(r_ < 0 ? errno : 0));       \
    } while (0)

int main(void) {
    char dir[] = "/tmp/lwk-xattr-XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    char file[64], link[64];
    snprintf(file, sizeof file, "%s/f", dir);
    snprintf(link, sizeof link, "%s/l", dir);
    int fd = open(file, O_CREAT | O_RDWR, 0644);
    symlink("f", link);
    char buf[256];

    SHOW("set user.a", setxattr(file, "user.a", "hello", 5, 0));
    SHOW("set user.b via link", setxattr(link, "user.b", "xy", 2, 0));
    SHOW("get size user.a", getxattr(file, "user.a", NULL, 0));
    memset(buf, 0, sizeof buf);
    SHOW("get user.a", getxattr(file, "user.a", buf, sizeof buf));
    printf("  value '%s'\n", buf);
    SHOW("get user.a small buffer", getxattr(file, "user.a", buf, 2));
    SHOW("get missing", getxattr(file, "user.none", buf, sizeof buf));
    SHOW("get empty name", getxattr(file, "", buf, sizeof buf));
    SHOW("lget on the file", lgetxattr(file, "user.b", buf, sizeof buf));
    SHOW("lget on the symlink", lgetxattr(link, "user.b", buf, sizeof buf));
    SHOW("lset user.* on the symlink", lsetxattr(link, "user.c", "z", 1, 0));
    SHOW("fget user.b", fgetxattr(fd, "user.b", buf, sizeof buf));
    SHOW("fset user.c", fsetxattr(fd, "user.c", "123", 3, 0));
    SHOW("create existing", setxattr(file, "user.a", "x", 1, XATTR_CREATE));
    SHOW("replace missing", setxattr(file, "user.q", "x", 1, XATTR_REPLACE));
    SHOW("bad flags", setxattr(file, "user.a", "x", 1, 8));
    long n = listxattr(file, buf, sizeof buf);
    /* Names in the list: count the user.* ones (the order is the file system's). */
    int users = 0;
    for (long i = 0; i < n; i += strlen(buf + i) + 1)
        if (strncmp(buf + i, "user.", 5) == 0) users++;
    printf("list: %d user attributes\n", users);
    SHOW("list size", listxattr(file, NULL, 0) == n);
    SHOW("llist on the symlink", llistxattr(link, buf, sizeof buf) >= 0);
    SHOW("flist", flistxattr(fd, buf, sizeof buf) == n);
    SHOW("remove user.a", removexattr(file, "user.a"));
    SHOW("remove again", removexattr(file, "user.a"));
    SHOW("fremove user.c", fremovexattr(fd, "user.c"));
    SHOW("lremove on the symlink", lremovexattr(link, "user.b"));
    SHOW("get on a bad fd", fgetxattr(999, "user.a", buf, sizeof buf));
    SHOW("get on a missing path", getxattr("/tmp/lwk-no-such-file", "user.a", buf, 10));
    close(fd);
    unlink(link);
    unlink(file);
    rmdir(dir);
    return 0;
}

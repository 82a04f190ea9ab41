/* Offloaded directory calls: mkdir(at), getdents64 (readdir), chdir/fchdir/getcwd, rmdir,
 * unlinkat, renames and the errnos of ".", ".." and non-empty directories, in a directory
 * of its own under /tmp (removed at the end). */
#define _GNU_SOURCE
#include "check.h"
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Prints the sorted entries of a directory with their d_type. */
static void list(const char *label, const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        printf("%s: opendir %s\n", label, ename(errno));
        return;
    }
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64) {
        char *s = malloc(300);
        snprintf(s, 300, "%s(%c)", e->d_name,
                 e->d_type == DT_DIR ? 'd' : e->d_type == DT_REG ? 'f' : e->d_type == DT_LNK ? 'l' : '?');
        names[n++] = s;
    }
    closedir(d);
    qsort(names, n, sizeof names[0], cmp);
    printf("%s:", label);
    for (int i = 0; i < n; i++) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    printf("\n");
}

int main(void)
{
    char base[64], cwd[4096];
    snprintf(base, sizeof base, "/tmp/lwk-dirs-%d", getpid());
    TRY("mkdir base", mkdir(base, 0755));
    TRY("mkdir again", mkdir(base, 0755));
    TRY("chdir", chdir(base));
    TRY("mkdir a", mkdir("a", 0755));
    TRY("mkdir a/b/", mkdir("a/b/", 0700));
    TRY("mkdir missing parent", mkdir("x/y", 0755));
    TRY("mkdir ..", mkdir("a/..", 0755));
    TRY("mkdir .", mkdir(".", 0755));
    int a = TRY("open a", open("a", O_RDONLY | O_DIRECTORY));
    TRY("mkdirat", mkdirat(a, "c", 0755));
    TRY("openat file", close(openat(a, "f", O_CREAT | O_WRONLY, 0644)));
    TRY("symlinkat", symlinkat("b", a, "l"));
    TRY("open file as dir", open("a/f", O_RDONLY | O_DIRECTORY));
    list("a", "a");
    struct stat st;
    TRY("stat a/b", stat("a/b", &st));
    printf("a/b mode: %o dir: %s\n", st.st_mode & 07777, S_ISDIR(st.st_mode) ? "yes" : "no");
    TRY("fstatat via dirfd", fstatat(a, "c", &st, 0));
    TRY("fstatat nofollow", fstatat(a, "l", &st, AT_SYMLINK_NOFOLLOW));
    printf("l is link: %s\n", S_ISLNK(st.st_mode) ? "yes" : "no");
    TRY("fstatat empty path", fstatat(a, "", &st, AT_EMPTY_PATH));
    printf("dirfd is dir: %s\n", S_ISDIR(st.st_mode) ? "yes" : "no");
    TRY("fstatat empty no flag", fstatat(a, "", &st, 0));

    /* cwd */
    TRY("chdir a/b", chdir("a/b"));
    if (getcwd(cwd, sizeof cwd))
        printf("cwd: %s\n", cwd + strlen(base));
    TRY("chdir ../c via ..", chdir("../c"));
    if (getcwd(cwd, sizeof cwd))
        printf("cwd: %s\n", cwd + strlen(base));
    TRY("chdir symlink", chdir("../l"));
    if (getcwd(cwd, sizeof cwd))
        printf("cwd after link: %s\n", cwd + strlen(base));
    TRY("fchdir", fchdir(a));
    if (getcwd(cwd, sizeof cwd))
        printf("cwd after fchdir: %s\n", cwd + strlen(base));
    TRY("getcwd small", getcwd(cwd, 3) ? 0 : -1);
    TRY("chdir file", chdir("f"));
    TRY("chdir missing", chdir("missing"));
    TRY("relative open", close(open("f", O_RDONLY)));
    TRY("chdir base", chdir(base));

    /* removal */
    TRY("rmdir not empty", rmdir("a"));
    TRY("rmdir .", rmdir("a/b/."));
    TRY("rmdir ..", rmdir("a/b/.."));
    TRY("rmdir file", rmdir("a/f"));
    TRY("unlink dir", unlink("a/c"));
    TRY("unlinkat bad flag", unlinkat(a, "c", 0x1));
    TRY("unlinkat removedir", unlinkat(a, "c", AT_REMOVEDIR));
    TRY("unlinkat file", unlinkat(a, "f", 0));
    TRY("unlinkat link", unlinkat(a, "l", 0));
    TRY("rename into own subdir", rename("a", "a/b/z"));
    TRY("rename dir", rename("a/b", "b2"));
    TRY("rename over nonempty", rename("b2", "a"));
    TRY("mkdir t", mkdir("t", 0755));
    TRY("rename over empty dir", rename("b2", "t"));
    TRY("rename file over dir", rename(base, "t"));
    list("base", ".");
    TRY("rmdir t/", rmdir("t/"));
    TRY("rmdir a", rmdir("a"));
    close(a);
    TRY("chdir /", chdir("/"));
    TRY("rmdir base", rmdir(base));
    TRY("rmdir /", rmdir("/"));
    TRY("stat gone", stat(base, &st));
    return 0;
}

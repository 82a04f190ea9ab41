/* Process creation cost, one mode per run, N iterations, each timed on its own:
 *   forkexec fork N                 fork, child _exit(0), waitpid
 *   forkexec exec N PROG [ARGS...]  fork, child execve(PROG) with stdout on /dev/null, waitpid
 *   forkexec spawn N PROG [ARGS...] posix_spawn(PROG) (vfork-style) with stdout on /dev/null, waitpid
 * Prints one line: "<mode> N iterations: median X us, mean Y us, min Z us per iteration".
 * Exits 1 if any child fails, so a broken run is not mistaken for a fast one. */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "fork") && argc < 4)) {
        fprintf(stderr, "usage: forkexec fork|exec|spawn N [PROG ARGS...]\n");
        return 2;
    }
    const char *mode = argv[1];
    int n = atoi(argv[2]);
    char **prog = argv + 3;
    double *t = malloc(sizeof *t * (n > 0 ? n : 1));
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, devnull, 1);
    for (int i = 0; i < n; i++) {
        double t0 = now_us();
        pid_t pid;
        if (!strcmp(mode, "spawn")) {
            if (posix_spawn(&pid, prog[0], &fa, NULL, prog, environ))
                return 1;
        } else {
            pid = fork();
            if (pid < 0)
                return 1;
            if (pid == 0) {
                if (!strcmp(mode, "fork"))
                    _exit(0);
                dup2(devnull, 1);
                execve(prog[0], prog, environ);
                _exit(127);
            }
        }
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "forkexec: child %d failed (status %#x)\n", i, st);
            return 1;
        }
        t[i] = now_us() - t0;
    }
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += t[i];
    qsort(t, n, sizeof *t, cmp);
    printf("%s %d iterations: median %.1f us, mean %.1f us, min %.1f us per iteration\n", mode, n,
           n ? (n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2) : 0.0, n ? sum / n : 0.0,
           n ? t[0] : 0.0);
    return 0;
}

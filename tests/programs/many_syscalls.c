/* Tens of thousands of local syscalls: under lwk-vmm they must not leave the VM. */
#define _GNU_SOURCE
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

int main(void)
{
    long pid = syscall(SYS_getpid);
    int same = 1, monotonic = 1;
    struct timespec prev = {0, 0}, now;
    for (int i = 0; i < 10000; i++) {
        if (syscall(SYS_getpid) != pid)
            same = 0;
        syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &now);
        if (now.tv_sec < prev.tv_sec || (now.tv_sec == prev.tv_sec && now.tv_nsec < prev.tv_nsec))
            monotonic = 0;
        prev = now;
    }
    printf("pid stable: %s\nmonotonic: %s\n", same ? "yes" : "no", monotonic ? "yes" : "no");
    return 0;
}

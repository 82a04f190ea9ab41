/* Process identity without children: process group and session calls by Linux's rules, and
 * wait4/waitid with nothing to wait for (ECHILD after the argument checks). Prints relations
 * (pgid == pid?), never the numbers, so the native and lwk-vmm runs print the same bytes. */
#include "check.h"
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sys/syscall.h>

int main(void)
{
    pid_t pid = getpid();
    pid_t pg = getpgrp(), sid = getsid(0);
    printf("getpgid(0) == getpgrp(): %s\n", yes(getpgid(0) == pg));
    printf("getpgid(pid) == getpgrp(): %s\n", yes(getpgid(pid) == pg));
    printf("getsid(pid) == getsid(0): %s\n", yes(getsid(pid) == sid));
    printf("leads its group: %s, leads its session: %s\n", yes(pg == pid), yes(sid == pid));
    TRY("getpgid(-1)", getpgid(-1));
    TRY("setpgid(-1, 0)", setpgid(-1, 0));
    TRY("setpgid(0, -1)", setpgid(0, -1));
    TRY("setpgid(0, getpgrp())", setpgid(0, pg));
    TRY("setpgid(0, 0)", setpgid(0, 0));
    printf("now leads its group: %s\n", yes(getpgrp() == pid));
    TRY("setsid as group leader", setsid());
    int status = 0;
    TRY("wait4(-1)", wait4(-1, &status, 0, NULL));
    TRY("wait4 WNOHANG", wait4(-1, &status, WNOHANG, NULL));
    TRY("wait4 bad options", wait4(-1, &status, 0x100, NULL));
    TRY("waitpid(pid)", waitpid(pid, &status, 0));
    siginfo_t si;
    TRY("waitid(P_ALL, WEXITED)", waitid(P_ALL, 0, &si, WEXITED));
    TRY("waitid no event", waitid(P_ALL, 0, &si, WNOHANG));
    TRY("waitid P_PID 0", waitid(P_PID, 0, &si, WEXITED));
    TRY("waitid bad idtype", syscall(SYS_waitid, 7, 0, &si, WEXITED, NULL));
    TRY("waitid P_PIDFD", syscall(SYS_waitid, 3, 1, &si, WEXITED, NULL));
    return 0;
}

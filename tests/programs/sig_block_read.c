/* Host signals (issue #7): prints "ready", then blocks in read() on stdin (argv[1] "poll":
 * in poll() on it) and prints what came. Run alone (stdin /dev/null) it sees EOF and ends;
 * the hostsig test keeps an empty pipe as stdin and sends SIGINT, which must interrupt the
 * blocked offloaded call and kill the program. */
#include "check.h"
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    printf("ready\n");
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "poll") == 0) {
        struct pollfd p = {.fd = 0, .events = POLLIN};
        int n = poll(&p, 1, -1);
        printf("poll: %d (%s)\n", n, n < 0 ? strerror(errno) : "ok");
    }
    char buf[64];
    ssize_t n = read(0, buf, sizeof buf);
    if (n < 0)
        printf("read: error %s\n", strerror(errno));
    else
        printf("read: %zd bytes\n", n);
    return 0;
}

/* Host signals (issue #7) with threads: a second thread blocks in read() on stdin while the main
 * thread waits for it in pthread_join (with --cpus 2: the reader on vCPU 1, vCPU 0 idle in the
 * LWK). Run alone (stdin /dev/null) the read sees EOF and it ends; the hostsig test keeps an
 * empty pipe as stdin and sends SIGINT, which must end the job promptly. */
// lwk-vmm: --cpus 2
#include "check.h"
#include <pthread.h>
#include <unistd.h>

static void *reader(void *arg)
{
    (void)arg;
    printf("ready\n");
    fflush(stdout);
    char buf[64];
    ssize_t n = read(0, buf, sizeof buf);
    printf("read: %zd\n", n);
    return NULL;
}

int main(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, reader, NULL) != 0) {
        printf("pthread_create failed\n");
        return 1;
    }
    pthread_join(t, NULL);
    printf("joined\n");
    return 0;
}

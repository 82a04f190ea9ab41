/* MAP_SHARED anonymous memory across fork: parent and child see each other's writes, a
 * process-shared semaphore and a process-shared mutex/condvar (futexes in shared memory) work
 * between them, and private memory stays private. Output is relations only. */
// lwk-vmm: --cpus 2 --oversubscribe timeslice
#define _GNU_SOURCE
#include "check.h"
#include <pthread.h>
#include <string.h>
#include <semaphore.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

struct shared {
    sem_t ping, pong;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int turn;
    long counter;
    char text[64];
};

static int priv_value = 5;

int main(void)
{
    struct shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s == MAP_FAILED)
        return 1;
    sem_init(&s->ping, 1, 0);
    sem_init(&s->pong, 1, 0);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&s->lock, &ma);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
    pthread_cond_init(&s->cond, &ca);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        priv_value = 99;
        snprintf(s->text, sizeof s->text, "written by the child");
        /* Semaphore ping-pong: 200 rounds. */
        for (int i = 0; i < 200; i++) {
            sem_wait(&s->ping);
            s->counter++;
            sem_post(&s->pong);
        }
        /* Condition variable hand-over: 50 turns. */
        for (int i = 0; i < 50; i++) {
            pthread_mutex_lock(&s->lock);
            while (s->turn != 1)
                pthread_cond_wait(&s->cond, &s->lock);
            s->counter += 1000;
            s->turn = 0;
            pthread_cond_broadcast(&s->cond);
            pthread_mutex_unlock(&s->lock);
        }
        _exit(7);
    }
    for (int i = 0; i < 200; i++) {
        sem_post(&s->ping);
        sem_wait(&s->pong);
    }
    printf("semaphore rounds seen by the parent: %ld\n", s->counter);
    for (int i = 0; i < 50; i++) {
        pthread_mutex_lock(&s->lock);
        s->turn = 1;
        pthread_cond_broadcast(&s->cond);
        while (s->turn != 0)
            pthread_cond_wait(&s->cond, &s->lock);
        pthread_mutex_unlock(&s->lock);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    printf("child exit: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    printf("counter after the condvar turns: %ld\n", s->counter);
    printf("text from the child: %s\n", s->text);
    printf("private global unchanged: %s\n", priv_value == 5 ? "yes" : "no");
    /* Read-only private memory (shared between the processes until one makes it writable):
     * the child sees the parent's bytes, writes its own copy after mprotect, and the parent's
     * stays; program text (read-only too) keeps working in both. */
    char *ro = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ro == MAP_FAILED)
        return 1;
    snprintf(ro, 64, "original");
    snprintf(ro + 8192, 64, "third page");
    mprotect(ro, 3 * 4096, PROT_READ);
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        int ok = strcmp(ro, "original") == 0;
        if (mprotect(ro, 4096, PROT_READ | PROT_WRITE) != 0)
            _exit(1);
        snprintf(ro, 64, "child wrote here");
        ok = ok && strcmp(ro, "child wrote here") == 0 && strcmp(ro + 8192, "third page") == 0;
        _exit(ok ? 0 : 2);
    }
    st = 0;
    waitpid(pid, &st, 0);
    printf("child saw, then privately changed, read-only memory: %s\n",
           WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "yes" : "no");
    printf("parent's read-only memory after the child: %s / %s\n", ro, ro + 8192);
    mprotect(ro, 3 * 4096, PROT_READ | PROT_WRITE);
    snprintf(ro, 64, "parent writes too");
    printf("parent's own write: %s\n", ro);
    printf("munmap read-only area: %d\n", munmap(ro, 3 * 4096));
    /* The shared area survives the child's exit and can be unmapped. */
    printf("munmap: %d\n", munmap(s, sizeof *s));
    return 0;
}

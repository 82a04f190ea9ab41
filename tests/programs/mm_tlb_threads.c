/* Memory changes made by one thread are seen by another thread running on another CPU (TLB
 * shootdown). The reader keeps reading a page, so its CPU caches the translation; the writer
 * then replaces the page (munmap + MAP_FIXED mmap of fresh memory, and mprotect + a remap by
 * mremap), and the reader must see the new page's contents, not the old frame's, within a
 * bounded time. Without a shootdown the reader on the other vCPU keeps using the stale
 * translation and prints "stale". Needs 2 CPUs. */
// lwk-vmm: --cpus 2
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define ROUNDS 8

static volatile long *page;
static atomic_int phase;  /* even: writer's turn to replace; odd: reader may look */
static atomic_int seen;   /* round the reader last confirmed */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* Reads *page until it equals `want` (bounded by a few seconds); returns whether it did. */
static int wait_value(long want) {
    double deadline = now() + 20.0;
    for (;;) {
        for (int i = 0; i < 100000; i++)
            if (page[0] == want) return 1;
        if (now() > deadline) return 0;
    }
}

static void *reader(void *arg) {
    (void)arg;
    int stale = 0;
    for (int r = 1; r <= ROUNDS; r++) {
        while (atomic_load(&phase) != 2 * r - 1) { }
        if (!wait_value(r)) {
            stale++;
            printf("round %d: stale (read %ld, want %d)\n", r, page[0], r);
        }
        atomic_store(&seen, r);
    }
    return (void *)(long)stale;
}

int main(void) {
    long *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); return 1; }
    page = p;
    pthread_t t;
    if (pthread_create(&t, NULL, reader, NULL)) { puts("pthread_create failed"); return 1; }
    for (int r = 1; r <= ROUNDS; r++) {
        if (r > 1) {
            /* The reader has the old page in its TLB: it just read it in a loop. */
            if (r % 2 == 0) {
                if (munmap((void *)page, 4096)) { perror("munmap"); return 1; }
                long *q = mmap((void *)page, 4096, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
                if (q != page) { perror("mmap fixed"); return 1; }
                if (q[0] != 0) printf("round %d: fresh page not zero\n", r);
            } else {
                /* Move a fresh page over the old one with mremap. */
                long *n = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (n == MAP_FAILED) { perror("mmap"); return 1; }
                if (mremap(n, 4096, 4096, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)page) !=
                    page) {
                    perror("mremap");
                    return 1;
                }
            }
        }
        page[0] = r;
        atomic_store(&phase, 2 * r - 1);
        while (atomic_load(&seen) != r) { }
        atomic_store(&phase, 2 * r);
    }
    void *stale;
    pthread_join(t, &stale);
    printf("%d rounds, %ld stale\n", ROUNDS, (long)stale);
    return stale != NULL;
}

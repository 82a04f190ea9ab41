/* Memory that was used and given back reads zero when it is handed out again: ROUNDS rounds of
 * map MIB MiB, check zero, fill, unmap; the same through calloc/free; many small blocks. The
 * memory test target runs it in a small guest, where the rounds together need more memory than
 * the guest has, so frames are reused (the default arguments keep the other tiers quick). */
// args: 3 64
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int is_zero(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i += 64)
        if (p[i])
            return 0;
    return 1;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 6;
    size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 256;
    size_t len = mib << 20;
    int zero = 0;
    for (int r = 0; r < rounds; r++) {
        unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            printf("round %d: mmap failed\n", r);
            return 1;
        }
        zero += is_zero(p, len);
        memset(p, 0xa5 + r, len);
        munmap(p, len);
    }
    printf("mmap rounds reading zero: %d of %d\n", zero, rounds);

    zero = 0;
    for (int r = 0; r < rounds; r++) {
        unsigned char *p = calloc(len / 2, 1);
        if (!p) {
            printf("round %d: calloc failed\n", r);
            return 1;
        }
        zero += is_zero(p, len / 2);
        memset(p, 0x5a + r, len / 2);
        free(p);
    }
    printf("calloc rounds reading zero: %d of %d\n", zero, rounds);

    /* Many small blocks, freed and allocated again. */
    unsigned long sum = 0;
    for (int r = 0; r < 20; r++) {
        char *blocks[200];
        for (int i = 0; i < 200; i++) {
            blocks[i] = calloc(1000 + i * 37, 1);
            sum += (unsigned char)blocks[i][i];
            memset(blocks[i], i, 1000 + i * 37);
        }
        for (int i = 0; i < 200; i++)
            free(blocks[i]);
    }
    printf("small blocks sum: %lu\n", sum);
    return 0;
}

/* Heap through brk and large allocations through anonymous mmap; memory must start zeroed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    unsigned long sum = 0;
    for (int round = 0; round < 4; round++) {
        size_t sizes[] = {16, 1000, 64 * 1024, 1 << 20, 3 << 20};
        for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            unsigned char *p = calloc(sizes[i], 1);
            if (!p) {
                puts("calloc failed");
                return 1;
            }
            for (size_t j = 0; j < sizes[i]; j += 4096)
                sum += p[j];
            memset(p, (int)i + 1, sizes[i]);
            for (size_t j = 0; j < sizes[i]; j += 512)
                sum += p[j];
            free(p);
        }
    }
    printf("sum=%lu\n", sum);
    return 0;
}

/* The address-space layout is Linux's: stack near the top of the user half, mmap areas below
 * it growing down, the heap after the program. Prints relations, never addresses. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static int in_bss[1024];
static int in_data = 7;

int main(void)
{
    int on_stack = 0;
    uintptr_t stack = (uintptr_t)&on_stack;
    uintptr_t text = (uintptr_t)&main;
    uintptr_t heap = (uintptr_t)sbrk(0);
    void *m1 = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *m2 = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *big = mmap(NULL, 64 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("stack in the top 32 GiB of the user half: %d\n", stack > 0x7ff800000000ull);
    printf("mmap below the stack: %d\n", (uintptr_t)m1 < stack && (uintptr_t)big < stack);
    printf("mmap within 2 TiB below the stack: %d\n", stack - (uintptr_t)m1 < (2ull << 40));
    printf("mmap grows down: %d %d\n", (uintptr_t)m2 < (uintptr_t)m1, (uintptr_t)big < (uintptr_t)m2);
    printf("heap below mmap: %d\n", heap < (uintptr_t)m2);
    printf("heap after the program: %d %d %d\n", heap > (uintptr_t)&in_bss[1023],
           (uintptr_t)&in_bss[0] > (uintptr_t)&in_data, (uintptr_t)&in_data > text);
    /* Linux randomises the start of the heap by up to 1 GiB (32 MiB before 6.x). */
    printf("heap within 1 GiB after the program: %d\n",
           heap - (uintptr_t)&in_bss[1023] < (1u << 30) + (16u << 20));
    char *h = malloc(100);
    printf("malloc from the heap: %d\n", (uintptr_t)h >= heap - (1 << 20) && (uintptr_t)h < heap + (64 << 20));
    printf("bss zero, data set: %d %d\n", in_bss[500], in_data);
    return 0;
}

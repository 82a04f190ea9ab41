/* A program killed by a signal: lwk-vmm must end the same way (a shell sees 139). */
#include <string.h>
#include <unistd.h>

int main(void)
{
    const char msg[] = "about to fault\n";
    write(1, msg, strlen(msg));
    volatile unsigned long addr = 8; /* opaque to the compiler */
    *(volatile int *)addr = 1;
    return 0;
}

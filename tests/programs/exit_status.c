/* The exit status of the program must become lwk-vmm's exit status. */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    puts("exiting with 42");
    fflush(stdout);
    exit(42);
}

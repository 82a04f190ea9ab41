/* The smallest real program: stdio through the offload bridge, exit status 0. */
#include <stdio.h>

int main(void)
{
    printf("hello from a static program\n");
    return 0;
}

/* A pure compute loop with no timers and no sleeps: under lwk-vmm it must take no timer
 * interrupt at all (tests/integration/signals.rs checks guest_timer_interrupts == 0). */
#include <stdio.h>

int main(void)
{
    volatile unsigned long x = 1;
    for (unsigned long i = 0; i < 300000000UL; i++)
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    printf("done %d\n", x != 0);
    return 0;
}

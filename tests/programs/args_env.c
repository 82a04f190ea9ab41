/* argv, envp and auxv as Linux lays them out on the initial stack. */
// args: first second-arg 3
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/auxv.h>

int main(int argc, char **argv, char **envp)
{
    printf("argc=%d\n", argc);
    for (int i = 1; i < argc; i++)
        printf("argv[%d]=%s\n", i, argv[i]);
    const char *v = getenv("LWK_TEST_VAR");
    printf("LWK_TEST_VAR=%s\n", v ? v : "(unset)");
    int n = 0;
    for (char **e = envp; *e; e++)
        n++;
    printf("envc>0: %s\n", n > 0 ? "yes" : "no");
    printf("stack aligned: %s\n", ((uintptr_t)__builtin_frame_address(0) & 7) == 0 ? "yes" : "no");
    printf("AT_PAGESZ=%lu\n", getauxval(AT_PAGESZ));
    printf("AT_PHENT=%lu\n", getauxval(AT_PHENT));
    printf("AT_PHDR set: %s\n", getauxval(AT_PHDR) ? "yes" : "no");
    printf("AT_ENTRY set: %s\n", getauxval(AT_ENTRY) ? "yes" : "no");
    printf("AT_RANDOM set: %s\n", getauxval(AT_RANDOM) ? "yes" : "no");
    printf("AT_CLKTCK=%lu\n", getauxval(AT_CLKTCK));
    printf("AT_SECURE=%lu\n", getauxval(AT_SECURE));
    const char *plat = (const char *)getauxval(AT_PLATFORM);
    printf("AT_PLATFORM=%s\n", plat ? plat : "(none)");
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    printf("AT_EXECFN ends with argv0: %s\n",
           execfn && strlen(execfn) >= strlen(argv[0]) &&
                   strcmp(execfn + strlen(execfn) - strlen(argv[0]), argv[0]) == 0
               ? "yes"
               : "no");
    return argc;
}

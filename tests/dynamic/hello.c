/* A dynamically linked program (built by tests/integration/dynamic.rs as a PIE with
 * PT_INTERP, and as a static PIE): libc from the job root, argv, environment, exit status. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    printf("argc %d\n", argc);
    for (int i = 1; i < argc; i++) printf("argv[%d] %s\n", i, argv[i]);
    const char *v = getenv("LWK_TEST_VAR");
    printf("LWK_TEST_VAR %s\n", v ? v : "(unset)");
    char *m = malloc(1 << 20);
    memset(m, 1, 1 << 20);
    long s = 0;
    for (int i = 0; i < 1 << 20; i += 4096) s += m[i];
    printf("malloc ok %ld\n", s);
    return 7;
}

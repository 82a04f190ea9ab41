/* dlopen/dlsym of a shared library from the job root (libm), and a symbol of libc looked up
 * at run time: file-backed mmap and mprotect of the library's segments by ld.so. */
#include <dlfcn.h>
#include <stdio.h>

int main(void) {
    void *h = dlopen("libm.so.6", RTLD_NOW);
    if (!h) { printf("dlopen: %s\n", dlerror()); return 1; }
    double (*c)(double) = (double (*)(double))dlsym(h, "cos");
    double (*sq)(double) = (double (*)(double))dlsym(h, "sqrt");
    if (!c || !sq) { printf("dlsym failed\n"); return 1; }
    printf("cos(0) = %.3f, sqrt(2) = %.6f\n", c(0.0), sq(2.0));
    void *bad = dlopen("libdoes-not-exist.so.9", RTLD_NOW);
    printf("missing library: %s\n", bad ? "loaded?!" : "refused");
    printf("dlclose %d\n", dlclose(h));
    return 0;
}

/* The vvar page: clock parameters the LWK writes once at boot and maps read-only into every
 * process, one page below the vDSO. Layout shared with guest-lwk/src/time.rs (`Vvar`, which
 * asserts the size and offsets). */
#ifndef LWK_VVAR_H
#define LWK_VVAR_H
#include <stdint.h>

#define LWK_VVAR_VERSION 1

struct lwk_vvar {
    uint64_t tsc0;       /* TSC at calibration */
    uint64_t mult;       /* nanoseconds per TSC tick, 32.32 fixed point */
    uint64_t realtime0;  /* CLOCK_REALTIME at tsc0, ns since the epoch */
    uint64_t monotonic0; /* CLOCK_MONOTONIC at tsc0, ns */
    uint64_t coarse_ns;  /* resolution of the *_COARSE clocks */
    uint64_t version;    /* LWK_VVAR_VERSION; anything else: use the syscall */
};

_Static_assert(sizeof(struct lwk_vvar) == 48, "vvar layout");
#endif

/* A stand-in for lwk-vmm that checks the real-KVM tier itself, not lwk-vmm:
 *   gcc -static -O2 -o /tmp/fake-lwk-vmm tests/realkvm/fake-lwk-vmm.c
 *   LWK_VMM_BIN=/tmp/fake-lwk-vmm tests/realkvm/run.sh        -> every test must PASS
 *   gcc -static -O2 -DSYSCALL_ENTRY='"fault"' -o /tmp/fake-fault tests/realkvm/fake-lwk-vmm.c
 *   LWK_VMM_BIN=/tmp/fake-fault tests/realkvm/run.sh          -> every test must FAIL
 * Usage as lwk-vmm: fake-lwk-vmm run [--stats-json FILE] PROGRAM [ARGS...]
 * It proves /dev/kvm works where it runs (creates a VM, runs a 16-bit vCPU that writes one byte
 * to a port and halts), writes {"syscall_entry": SYSCALL_ENTRY} to FILE, then execs PROGRAM
 * natively, so its output and exit status are the program's own. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef SYSCALL_ENTRY
#define SYSCALL_ENTRY "native"
#endif

static int fail(const char *what)
{
    fprintf(stderr, "fake-lwk-vmm: %s: %s\n", what, strerror(errno));
    return 70;
}

static int run_tiny_vm(void)
{
    /* mov $0x3f8,%dx; mov $'K',%al; out %al,(%dx); hlt */
    static const uint8_t code[] = {0xba, 0xf8, 0x03, 0xb0, 'K', 0xee, 0xf4};
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0)
        return fail("open /dev/kvm");
    if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
        return fail("KVM_GET_API_VERSION");
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0)
        return fail("KVM_CREATE_VM");
    uint8_t *mem = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return fail("mmap");
    memcpy(mem, code, sizeof code);
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = 0x1000, .memory_size = 0x1000, .userspace_addr = (uint64_t)mem};
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
        return fail("KVM_SET_USER_MEMORY_REGION");
    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0)
        return fail("KVM_CREATE_VCPU");
    int size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    struct kvm_run *run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED)
        return fail("mmap kvm_run");
    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
        return fail("KVM_GET_SREGS");
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
        return fail("KVM_SET_SREGS");
    struct kvm_regs regs = {.rip = 0x1000, .rflags = 0x2};
    if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
        return fail("KVM_SET_REGS");
    int saw_out = 0;
    for (;;) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0)
            return fail("KVM_RUN");
        if (run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT &&
            run->io.port == 0x3f8 && *((uint8_t *)run + run->io.data_offset) == 'K') {
            saw_out = 1;
            continue;
        }
        if (run->exit_reason == KVM_EXIT_HLT && saw_out)
            break;
        fprintf(stderr, "fake-lwk-vmm: unexpected exit reason %u\n", run->exit_reason);
        return 70;
    }
    close(vcpu);
    close(vm);
    close(kvm);
    return 0;
}

int main(int argc, char **argv)
{
    int i = 1;
    const char *stats = NULL;
    if (i < argc && strcmp(argv[i], "run") == 0)
        i++;
    if (i + 1 < argc && strcmp(argv[i], "--stats-json") == 0) {
        stats = argv[i + 1];
        i += 2;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: %s run [--stats-json FILE] PROGRAM [ARGS...]\n", argv[0]);
        return 2;
    }
    int rc = run_tiny_vm();
    if (rc != 0)
        return rc;
    if (stats) {
        FILE *f = fopen(stats, "w");
        if (!f)
            return fail("open stats file");
        fprintf(f, "{\n  \"vm_exits\": 2,\n  \"syscall_entry\": \"%s\"\n}\n", SYSCALL_ENTRY);
        fclose(f);
    }
    execv(argv[i], argv + i);
    return fail("execv");
}

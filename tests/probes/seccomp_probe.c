/*
 * Seccomp probe for tests/seccomp.rs: makes the system calls a berth container must not
 * be able to make (issue 11), and a few it must, and prints one line per call:
 * "<probe> OK" when the call succeeded, "<probe> <errno name>" when it failed. Built
 * static by the test, so it runs in any image.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define READ_IMPLIES_EXEC 0x0400000UL

/* The first version of struct clone_args (Linux 5.3). */
struct clone_args_v0 {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

static void report(const char *probe, long ret, int err) {
    printf("%s %s\n", probe, ret < 0 ? strerrorname_np(err) : "OK");
    fflush(stdout);
}

static void probe(const char *name, long ret) { report(name, ret, errno); }

/* For calls that create a process when they succeed: the child leaves at once. */
static void probe_child(const char *name, long ret) {
    int err = errno;
    if (ret == 0)
        _exit(0);
    if (ret > 0)
        waitpid((pid_t)ret, NULL, __WALL);
    report(name, ret, err);
}

int main(void) {
    /* Must fail. unshare runs in a child: when it works, it moves the caller into a
       user namespace without mappings, where the probes after it would fail anyway. */
    pid_t child = fork();
    if (child == 0) {
        probe("unshare_user", unshare(CLONE_NEWUSER));
        _exit(0);
    }
    waitpid(child, NULL, 0);
    probe_child("clone_newuser", syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
    struct clone_args_v0 args = {.flags = CLONE_NEWUSER, .exit_signal = SIGCHLD};
    probe_child("clone3_newuser", syscall(SYS_clone3, &args, sizeof args));
    probe("fsopen", syscall(SYS_fsopen, "tmpfs", 0));
    unsigned char params[120] = {0};
    probe("io_uring_setup", syscall(SYS_io_uring_setup, 1, params));
    probe("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0));
    unsigned char attr[128] = {0};
    probe("bpf", syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, attr, sizeof attr));
    probe("perf_event_open", syscall(SYS_perf_event_open, attr, 0, -1, -1, 0));
    probe("socket_alg", socket(AF_ALG, SOCK_SEQPACKET, 0));
    /* Must work. */
    probe("personality_query", syscall(SYS_personality, 0xffffffffUL));
    probe_child("fork", fork());
    probe("socket_inet", socket(AF_INET, SOCK_STREAM, 0));
    /* Last: on success it changes how this process maps memory. */
    probe("personality_read_implies_exec", syscall(SYS_personality, READ_IMPLIES_EXEC));
    return 0;
}

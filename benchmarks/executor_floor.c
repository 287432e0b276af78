/* The floor under an executor's CPU a task: its hot path in C (benchmarks/executor_floor.py).

   Not part of the launcher.  It does, for each task, the system calls the Python executor
   (mpilauncher/execution/executor.py) does on its plain path -- read the request, pin itself to
   the task's CPU when it changes, posix_spawn /bin/sh -c with the same file actions and
   attributes (own session, the stop signals back to default, no blocked signals), a pidfd in
   its epoll set, the exec record's two writes (data and index) to the lane's files, then at the
   end wait4 with the rusage, the look at its children (leftovers) and the event line -- and
   nothing else: no standbys, timeouts, leftover sweeps, per-node output, STOP.  What it costs
   is what a compiled executor could cost; the Python executor's CPU above it is the
   interpreter's.  (The launcher's compiled loop, mpilauncher/execution/_cexecutor.c, does all of
   the executor's duties; this file stays the floor both loops are measured against.)

   Requests on stdin, a line each, tab-separated:
     S <id> <cpu> <output> <records base> <command> <exec text, \x01 for newline> [NAME=value ...]
     B                                                   exit
   Events on stdout as the Python executor's: E id exit start runtime - 0 user sys maxrss.
   The task's variables are appended to the environment, not merged (a floor, not a launcher). */
#define _GNU_SOURCE
#include <spawn.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <time.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/prctl.h>
extern char **environ;
#define MAXT 4096
struct task { long id; pid_t pid; int pidfd; double start, mono; } tasks[MAXT];
static double now_real(void) { struct timespec t; clock_gettime(CLOCK_REALTIME, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static double now_mono(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)-1};
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
    char path[64]; snprintf(path, sizeof path, "/proc/self/task/%d/children", getpid());
    int listing = open(path, O_RDONLY | O_CLOEXEC);
    int nbase = 0; while (environ[nbase]) nbase++;
    char **envp = calloc(nbase + 64, sizeof(char *));
    static char inbuf[1 << 20]; size_t have = 0;
    int rec_data = -1, rec_index = -1; long rec_off = 0; int pinned = -1;
    sigset_t defs; sigemptyset(&defs);
    int sigs[] = {SIGPIPE, SIGXFSZ, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
    for (int i = 0; i < 8; i++) sigaddset(&defs, sigs[i]);
    sigset_t none; sigemptyset(&none);
    char out[1 << 16]; char scratch[1 << 16];
    for (;;) {
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, -1);
        size_t olen = 0;
        for (int e = 0; e < n; e++) {
            if (evs[e].data.u64 == (uint64_t)-1) {
                ssize_t r = read(0, inbuf + have, sizeof inbuf - have);
                if (r <= 0) return 0;
                have += r;
                char *line = inbuf, *nl;
                while ((nl = memchr(line, '\n', inbuf + have - line))) {
                    *nl = 0;
                    /* S\tid\tcpu\toutput\trecords\tcommand\texectext(with \x01 for newlines)\tk=v... */
                    char *f[64]; int nf = 0; char *p = line;
                    while (nf < 64) { f[nf++] = p; p = strchr(p, '\t'); if (!p) break; *p++ = 0; }
                    if (f[0][0] == 'B') return 0;
                    long id = atol(f[1]); int cpu = atoi(f[2]);
                    int ne = 0; for (int i = 0; i < nbase; i++) envp[ne++] = environ[i];
                    for (int i = 7; i < nf; i++) envp[ne++] = f[i];  /* (prototype: appended, not merged) */
                    envp[ne] = 0;
                    if (cpu != pinned) { cpu_set_t cs; CPU_ZERO(&cs); CPU_SET(cpu, &cs); sched_setaffinity(0, sizeof cs, &cs); pinned = cpu; }
                    posix_spawn_file_actions_t fa; posix_spawn_file_actions_init(&fa);
                    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
                    posix_spawn_file_actions_addopen(&fa, 1, f[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
                    posix_spawn_file_actions_adddup2(&fa, 1, 2);
                    posix_spawnattr_t at; posix_spawnattr_init(&at);
                    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
                    posix_spawnattr_setsigdefault(&at, &defs); posix_spawnattr_setsigmask(&at, &none);
                    char *argv[] = {"/bin/sh", "-c", "--", f[5], 0};
                    double start = now_real(), mono = now_mono();
                    pid_t pid;
                    int rc = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, envp);
                    posix_spawn_file_actions_destroy(&fa); posix_spawnattr_destroy(&at);
                    if (rc) { olen += snprintf(out + olen, sizeof out - olen, "E %ld 127 %.17g 0.0 - 0 - - -\n", id, start); }
                    else {
                        int pfd = syscall(SYS_pidfd_open, pid, 0);
                        struct task *t = &tasks[pfd % MAXT]; t->id = id; t->pid = pid; t->pidfd = pfd; t->start = start; t->mono = mono;
                        struct epoll_event pe = {.events = EPOLLIN, .data.u64 = (uint64_t)pfd};
                        epoll_ctl(ep, EPOLL_CTL_ADD, pfd, &pe);
                        /* the exec record: data + index, as the lane's Stream does */
                        if (rec_data < 0) {
                            char name[4096]; snprintf(name, sizeof name, "%s.c", f[4]);
                            rec_data = open(name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                            snprintf(name, sizeof name, "%s.c.index", f[4]);
                            rec_index = open(name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                        }
                        size_t tl = strlen(f[6]); for (size_t i = 0; i < tl; i++) if (f[6][i] == 1) f[6][i] = '\n';
                        write(rec_data, f[6], tl);
                        int il = snprintf(scratch, sizeof scratch, "%ld\texec\t%ld\t%zu\t%.3f\n", id, rec_off, tl, start);
                        write(rec_index, scratch, il); rec_off += tl;
                    }
                    line = nl + 1;
                }
                have = inbuf + have - line; memmove(inbuf, line, have);
            } else {
                int pfd = (int)evs[e].data.u64; struct task *t = &tasks[pfd % MAXT];
                int status; struct rusage ru;
                pid_t r = wait4(t->pid, &status, WNOHANG, &ru);
                if (r <= 0) continue;
                double rt = now_mono() - t->mono;
                epoll_ctl(ep, EPOLL_CTL_DEL, pfd, 0); close(pfd);
                int code = WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
                olen += snprintf(out + olen, sizeof out - olen, "E %ld %d %.17g %.17g - 0 %.17g %.17g %ld\n", t->id, code, t->start, rt,
                                 ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6, ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6, ru.ru_maxrss);
            }
        }
        if (olen) { pread(listing, scratch, sizeof scratch, 0); write(1, out, olen); }
    }
}

/* The executor process, compiled: what executor.py's serve() and processes.py's ProcessRunner do
 * in an executor process (with leftovers.py's Subtree and gather.py's Stream), as a program of its
 * own: neither the interpreter's start nor the interpreter in the path of each task.
 *
 * Why: an executor spawns and reaps every task of its lane.  Measured with
 * benchmarks/executor_floor.py (3,000 `true` on 2 lanes), the Python loop spends ~240 us
 * of CPU a task, of which ~150 us is the interpreter's (the system calls are the same);
 * on a node whose CPUs run short tasks, that is CPU the tasks do not get.  And an interpreter's
 * start (`python -I -S`) is ~8 ms of CPU, at the launcher's start, on the CPUs where rank 0 is still
 * importing: on 2 CPUs, two lanes' interpreters put ~9 ms on rank 0's way to its first task
 * (benchmarks/startup.py), where this program starts in well under a millisecond.
 *
 * What it is: a plain C program with no library beyond the C library's, built by pip where a C
 * compiler is (setup.py's build step; without one the install goes on and the executors run the
 * Python loop).  The agent starts it as
 *
 *     mpilauncher-executor EXEC_FILE_AFTER PYTHON -I -S -c PYTHON_LOOP
 *
 * and where this process cannot be a child subreaper (no task started yet), it executes the rest of
 * its arguments instead: the Python loop, which then finds out the same and runs as it can.  The
 * protocol, the events and every duty are the Python executor's, documented there; this file says
 * where it differs in how, never in what.
 *
 * Requests on fd 0: marshal lists framed by a 4-byte little-endian length, read here by a reader
 * of the few types a request holds (see "the requests, decoded").  Events on fd 1: text lines
 * ("E ...", "F ...", "R id", "STOPPED").
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef PR_SET_CHILD_SUBREAPER
#define PR_SET_CHILD_SUBREAPER 36
#endif

extern char **environ;

/* The constants of processes.py and leftovers.py (same names there). */
#define TIMEOUT_GRACE 2.0
#define UNWATCHED_POLL 0.05
#define KILL_WAIT 5.0
#define LONGEST_WAIT 86400.0
#define WATCHDOG_GRACE 2.0
#define GRACE 2.0
#define SCAN_INTERVAL 1.0
#define RECHECK 0.05
#define MAX_WALK 100000
#define EXEC_WAIT 0.1
#define EXEC_POLL 0.002
#define SHELL "/bin/sh"
#define INDEX_HEADER "#mpilauncher-output 1\n"

/* A request, decoded (see "the requests, decoded"). */
typedef struct Value Value;
typedef struct Message Message;

/* ---------------------------------------------------------------- small pieces */
typedef struct {
    char *data;
    size_t len, cap;
} Buffer;

static void buffer_add(Buffer *b, const char *data, size_t len) {
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len + 1) cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) abort();
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = 0;
}

static void buffer_vprintf(Buffer *b, const char *format, va_list args) {
    char line[512];
    va_list again;
    va_copy(again, args);
    int n = vsnprintf(line, sizeof line, format, args);
    if (n >= 0 && (size_t)n < sizeof line) {
        buffer_add(b, line, (size_t)n);
    } else if (n >= 0) {
        char *big = malloc((size_t)n + 1);
        if (!big) abort();
        vsnprintf(big, (size_t)n + 1, format, again);
        buffer_add(b, big, (size_t)n);
        free(big);
    }
    va_end(again);
}

static void buffer_printf(Buffer *b, const char *format, ...) {
    va_list args;
    va_start(args, format);
    buffer_vprintf(b, format, args);
    va_end(args);
}

static void *grow(void *array, size_t *cap, size_t need, size_t item) {
    if (need <= *cap) return array;
    size_t cap2 = *cap ? *cap * 2 : 8;
    while (cap2 < need) cap2 *= 2;
    void *grown = realloc(array, cap2 * item);
    if (!grown) abort();
    *cap = cap2;
    return grown;
}

static char *copy_bytes(const char *data, size_t len) {
    char *copy = malloc(len + 1);
    if (!copy) abort();
    memcpy(copy, data, len);
    copy[len] = 0;
    return copy;
}

static double clock_of(clockid_t which) {
    struct timespec t;
    clock_gettime(which, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}
static double monotonic(void) { return clock_of(CLOCK_MONOTONIC); }
static double wall(void) { return clock_of(CLOCK_REALTIME); }

static int pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }
static int pidfd_send_signal(int pidfd, int signum) { return (int)syscall(SYS_pidfd_send_signal, pidfd, signum, NULL, 0); }

static int write_all(int fd, const char *data, size_t len) {
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The whole of a small /proc file (len set; NULL when it cannot be read). */
static char *read_file(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    Buffer b = {0};
    char chunk[4096];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n < 0) {
                close(fd);
                free(b.data);
                return NULL;
            }
            break;
        }
        buffer_add(&b, chunk, (size_t)n);
    }
    close(fd);
    if (!b.data) buffer_add(&b, "", 0);
    *len = b.len;
    return b.data;
}

/* -- /proc (watchdog.py's proc_stat, environment; leftovers.py's children_of) */
typedef struct {
    char state;
    pid_t parent, group, session;
    unsigned long long ticks;  /* user + system CPU time */
    char name[64];
} Stat;

static int proc_stat(pid_t pid, Stat *stat) {
    char path[64];
    size_t len;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    char *data = read_file(path, &len);
    if (!data) return 0;
    char *open_paren = strchr(data, '('), *close_paren = strrchr(data, ')');  /* the name may hold ')' */
    unsigned long long user = 0, system = 0;
    int ok = open_paren && close_paren && close_paren > open_paren &&
             sscanf(close_paren + 2, "%c %d %d %d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &stat->state,
                    &stat->parent, &stat->group, &stat->session, &user, &system) == 6;
    if (ok) {
        stat->ticks = user + system;
        snprintf(stat->name, sizeof stat->name, "%.*s", (int)(close_paren - open_paren - 1), open_paren + 1);
    }
    free(data);
    return ok;
}

typedef struct {
    pid_t *pids;
    size_t len, cap;
} Pids;

static void pids_add(Pids *list, pid_t pid) {
    list->pids = grow(list->pids, &list->cap, list->len + 1, sizeof(pid_t));
    list->pids[list->len++] = pid;
}

static int pids_contain(const Pids *list, pid_t pid) {
    for (size_t i = 0; i < list->len; i++)
        if (list->pids[i] == pid) return 1;
    return 0;
}

static void parse_pids(const char *text, Pids *into) {
    while (*text) {
        char *end;
        long pid = strtol(text, &end, 10);
        if (end == text) {
            text++;
            continue;
        }
        pids_add(into, (pid_t)pid);
        text = end;
    }
}

/* The children of pid, all of its threads'. */
static void children_of(pid_t pid, Pids *into) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *dir = opendir(path);
    if (!dir) return;
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
        char listing[320];
        size_t len;
        snprintf(listing, sizeof listing, "/proc/%d/task/%s/children", (int)pid, entry->d_name);
        char *text = read_file(listing, &len);
        if (text) {
            parse_pids(text, into);
            free(text);
        }
    }
    closedir(dir);
}

/* pid's environment, an exec in progress waited out (watchdog.settled_environment): NULL when
 * unreadable; an empty one is read again every EXEC_POLL s for up to EXEC_WAIT s while it lives. */
static char *settled_environment(pid_t pid, size_t *len) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
    char *entries = read_file(path, len);
    double deadline = monotonic() + EXEC_WAIT;
    while (entries && *len == 0 && monotonic() < deadline) {
        Stat stat;
        if (!proc_stat(pid, &stat) || stat.state == 'Z') break;
        free(entries);
        struct timespec pause = {0, (long)(EXEC_POLL * 1e9)};
        nanosleep(&pause, NULL);
        entries = read_file(path, len);
    }
    return entries;
}

static int reap_pid(pid_t pid) {
    int status;
    pid_t got = waitpid(pid, &status, WNOHANG);
    return got != 0 || (got < 0 && errno == ECHILD);
}

/* ---------------------------------------------------------------- the lane's files (gather.py) */
typedef struct {
    char *base;
    int data, index;
    off_t offset;
} Stream;

static int stream_open(Stream *s, const char *lane, char **failed_path) {
    size_t size = strlen(s->base) + strlen(lane) + 16;
    char *name = malloc(size), *index_name = malloc(size + 8);
    snprintf(name, size, "%s.%s", s->base, lane);
    snprintf(index_name, size + 8, "%s.index", name);
    int data = open(name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (data < 0) {
        *failed_path = name;
        free(index_name);
        return -1;
    }
    int index = open(index_name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (index < 0) {
        int saved = errno;
        close(data);
        free(name);
        *failed_path = index_name;
        errno = saved;
        return -1;
    }
    free(name);
    free(index_name);
    s->data = data;
    s->index = index;
    s->offset = lseek(data, 0, SEEK_END);
    struct stat st;
    if (fstat(index, &st) == 0 && st.st_size == 0) write_all(index, INDEX_HEADER, strlen(INDEX_HEADER));
    return 0;
}

static void stream_rewind(Stream *s) { lseek(s->data, s->offset, SEEK_SET); }

static int stream_index(Stream *s, long task_id, const char *kind, off_t at, off_t length, double end) {
    char line[160];
    int n = snprintf(line, sizeof line, "%ld\t%s\t%lld\t%lld\t%.3f\n", task_id, kind, (long long)at,
                     (long long)length, end);
    return write_all(s->index, line, (size_t)n);
}

static int stream_add_file(Stream *s, long task_id, int source, double end) {
    struct stat st;
    if (fstat(source, &st) < 0) return -1;
    off_t at = s->offset, done = 0;
    while (done < st.st_size) {
        off_t from = done;
        ssize_t sent = sendfile(s->data, source, &from, (size_t)(st.st_size - done));
        if (sent < 0) {
            if (errno == EINTR) continue;
            int saved = errno;
            stream_rewind(s);
            errno = saved;
            return -1;
        }
        if (sent == 0) break;  /* the file shrank under us (truncated by a leftover) */
        done += sent;
    }
    s->offset += done;
    return stream_index(s, task_id, "out", at, done, end);
}

static int stream_add_text(Stream *s, long task_id, const char *kind, const char *text, size_t len, double end) {
    off_t at = s->offset;
    if (write_all(s->data, text, len) < 0) {
        int saved = errno;
        stream_rewind(s);
        errno = saved;
        return -1;
    }
    s->offset += (off_t)len;
    return stream_index(s, task_id, kind, at, (off_t)len, end);
}

static int open_spool(const char *directory, long task_id, char **why) {
    int fd = open(directory, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) return fd;
    int saved = errno;
    struct stat st;
    if (stat(directory, &st) < 0 || !S_ISDIR(st.st_mode)) {
        Buffer b = {0};
        buffer_printf(&b, "spool directory %s: %s", directory, strerror(saved));
        *why = b.data;
        return -1;
    }
    Buffer path = {0};
    buffer_printf(&path, "%s/.mpilauncher-spool-%d-%ld", directory, (int)getpid(), task_id);
    fd = open(path.data, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        Buffer b = {0};
        buffer_printf(&b, "%s: %s", path.data, strerror(errno));
        *why = b.data;
    } else {
        unlink(path.data);
    }
    free(path.data);
    return fd;
}

/* ---------------------------------------------------------------- state */
typedef struct {
    long task_id;
    pid_t pid;
    int pidfd;
    double start, start_mono;
    int timed_out, killed;
    double deadline;  /* TERM at its timeout, KILL a grace later, given up KILL_WAIT after that (INFINITY: none) */
    int spool;
    Stream *stream;
    char *exec_path, *exec_text;  /* its exec<N>, while not yet written */
    size_t exec_len;
    double exec_due;
    /* its process seen in uninterruptible sleep (stuck.py's Asleep; asleep_pid 0: none) */
    pid_t asleep_pid;
    unsigned long long asleep_ticks;
    double asleep_since;
    int asleep_named;
    char asleep_name[64];
} Task;

typedef struct {
    long task_id;
    int exit_code;
    double start, runtime;
    int timed_out, leftovers;
    char *not_started;  /* owned */
    int has_usage;
    double user, system;
    long max_rss;
} Ended;

typedef struct {
    Ended *items;
    size_t len, cap;
} EndedList;

typedef struct {
    long after;
    long task_id;
    const Value *request;  /* the StartRequest's fields (a tuple), its `after` ignored when it starts */
    Message *message;  /* what holds it */
} Standby;

typedef struct {
    long task_id;
    pid_t pid;
} Reaped;

typedef struct {
    pid_t pid;
    int pidfd;
    int has_owner;
    long owner;
    long *suspects;
    size_t n_suspects;
} Orphan;

typedef struct {
    int has_owner;
    long owner;
    double due;
    int killing;
    Pids termed;
} Sweep;

enum { WATCH_NONE, WATCH_REQUESTS, WATCH_TASK, WATCH_ORPHAN };

typedef struct {
    int kind;
    void *what;
} Watched;

typedef struct {
    int epoll;
    char *tag, *lane_entry, *lane_name;
    size_t lane_entry_len;
    double exec_file_after;
    char **base_env;  /* environ, with this lane's tag */
    size_t base_env_len;
    /* running tasks */
    Task **running;
    size_t n_running, cap_running;
    int unwatched;
    Watched *watched;  /* by fd */
    size_t cap_watched;
    Reaped *reaped;
    size_t n_reaped, cap_reaped;
    Standby *standbys;
    size_t n_standbys, cap_standbys;
    long *retracted;
    size_t n_retracted, cap_retracted;
    Stream **streams;
    size_t n_streams, cap_streams;
    /* pinning */
    int pin_self;
    cpu_set_t pinned, unpinned;
    int n_pinned, have_unpinned;
    /* leftovers (Subtree) */
    int listing;
    Orphan *orphans;
    size_t n_orphans, cap_orphans;
    Sweep *sweeps;
    size_t n_sweeps, cap_sweeps;
    Pids left_behind;  /* tasks' processes given up on (give_up): never adopted, never swept */
    double limit, next_scan;
    int rescan;
    /* tasks long in uninterruptible sleep (stuck.py): after 0 never looks */
    double stuck_after, look_interval, next_look;
    char node[256];
    /* every task's spawn: its own session, the stop signals back to default, none blocked */
    posix_spawnattr_t attributes;
    /* the protocol */
    Buffer requests;
    int eof, bye, stopping;
    int unreadable;  /* a request it could not read: it stops, as the Python loop dies of one */
} Lane;

static Lane L;

/* ---------------------------------------------------------------- ended records */
static Ended *ended_add(EndedList *list, long task_id, int exit_code, double start, double runtime) {
    list->items = grow(list->items, &list->cap, list->len + 1, sizeof(Ended));
    Ended *e = &list->items[list->len++];
    memset(e, 0, sizeof *e);
    e->task_id = task_id;
    e->exit_code = exit_code;
    e->start = start;
    e->runtime = runtime;
    return e;
}

static void ended_clear(EndedList *list) {
    for (size_t i = 0; i < list->len; i++) free(list->items[i].not_started);
    list->len = 0;
}

/* ---------------------------------------------------------------- epoll */
static void watch(int fd, int kind, void *what) {
    if ((size_t)fd >= L.cap_watched) {
        size_t old = L.cap_watched;
        L.watched = grow(L.watched, &L.cap_watched, (size_t)fd + 1, sizeof(Watched));
        memset(L.watched + old, 0, (L.cap_watched - old) * sizeof(Watched));
    }
    L.watched[fd].kind = kind;
    L.watched[fd].what = what;
    struct epoll_event event = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(L.epoll, EPOLL_CTL_ADD, fd, &event);
}

static void unwatch(int fd) {
    epoll_ctl(L.epoll, EPOLL_CTL_DEL, fd, NULL);
    if ((size_t)fd < L.cap_watched) L.watched[fd].kind = WATCH_NONE;
}

/* ---------------------------------------------------------------- lookups */
static Task *running_task(long task_id) {
    for (size_t i = 0; i < L.n_running; i++)
        if (L.running[i]->task_id == task_id) return L.running[i];
    return NULL;
}

static int was_reaped(long task_id, pid_t *pid) {
    for (size_t i = 0; i < L.n_reaped; i++)
        if (L.reaped[i].task_id == task_id) {
            if (pid) *pid = L.reaped[i].pid;
            return 1;
        }
    return 0;
}

static int is_task_pid(pid_t pid) {
    for (size_t i = 0; i < L.n_running; i++)
        if (L.running[i]->pid == pid) return 1;
    return 0;
}

static Orphan *orphan_of_pid(pid_t pid) {
    for (size_t i = 0; i < L.n_orphans; i++)
        if (L.orphans[i].pid == pid) return &L.orphans[i];
    return NULL;
}

static Sweep *sweep_of(int has_owner, long owner) {
    for (size_t i = 0; i < L.n_sweeps; i++)
        if (L.sweeps[i].has_owner == has_owner && (!has_owner || L.sweeps[i].owner == owner)) return &L.sweeps[i];
    return NULL;
}

/* ---------------------------------------------------------------- leftovers: the subreaper's subtree */
/* Send signum to pid if it is still parent's child (not a stranger that reused the pid). */
static void signal_below(pid_t pid, pid_t parent, int signum) {
    Stat stat;
    int pidfd = pidfd_open(pid);
    if (pidfd < 0) {
        if (errno != ESRCH && proc_stat(pid, &stat) && stat.parent == parent) kill(pid, signum);
        return;
    }
    if (proc_stat(pid, &stat) && stat.parent == parent) pidfd_send_signal(pidfd, signum);
    close(pidfd);
}

typedef struct {
    pid_t pid, parent;
} Member;

typedef struct {
    Member *items;
    size_t len, cap;
} Tree;

static void tree_add(Tree *tree, pid_t pid, pid_t parent) {
    tree->items = grow(tree->items, &tree->cap, tree->len + 1, sizeof(Member));
    tree->items[tree->len].pid = pid;
    tree->items[tree->len++].parent = parent;
}

/* (pid, parent) of owner's live orphans (parent 0) and of everything below them. */
static void tree_of(int has_owner, long owner, Tree *found) {
    Tree stack = {0};
    found->len = 0;
    for (size_t i = 0; i < L.n_orphans; i++) {
        Orphan *o = &L.orphans[i];
        if (o->has_owner == has_owner && (!has_owner || o->owner == owner)) tree_add(&stack, o->pid, 0);
    }
    while (stack.len && found->len < MAX_WALK) {
        Member m = stack.items[--stack.len];
        Stat stat;
        if (!proc_stat(m.pid, &stat) || stat.state == 'Z' || (m.parent && stat.parent != m.parent)) continue;
        tree_add(found, m.pid, m.parent);
        Pids children = {0};
        children_of(m.pid, &children);
        for (size_t i = 0; i < children.len; i++) tree_add(&stack, children.pids[i], m.pid);
        free(children.pids);
    }
    free(stack.items);
}

static void signal_tree(Tree *tree, int signum, Pids *skip) {
    for (size_t i = 0; i < tree->len; i++) {
        Member *m = &tree->items[i];
        if (skip && pids_contain(skip, m->pid)) continue;
        if (m->parent)
            signal_below(m->pid, m->parent, signum);
        else
            kill(m->pid, signum);  /* our own child: its pid stays ours until we reap it */
    }
}

static void forget_orphan(Orphan *orphan) {
    if (orphan->pidfd >= 0) {
        unwatch(orphan->pidfd);
        close(orphan->pidfd);
    }
    free(orphan->suspects);
    size_t at = (size_t)(orphan - L.orphans);
    L.orphans[at] = L.orphans[--L.n_orphans];
    /* (nothing holds an orphan's address: on_orphan_exit finds it by its pidfd) */
}

static void on_orphan_exit(int pidfd) {
    for (size_t i = 0; i < L.n_orphans; i++)
        if (L.orphans[i].pidfd == pidfd) {
            if (reap_pid(L.orphans[i].pid)) {
                forget_orphan(&L.orphans[i]);
                L.rescan = 1;
            }
            return;
        }
}

/* Whose is this orphan: its TASK_ID next to our lane tag, else the session of a task. */
static int owner_of(pid_t pid, pid_t session, long *owner) {
    size_t len;
    char *entries = settled_environment(pid, &len);
    if (entries) {
        int tagged = 0;
        const char *task_value = NULL;
        for (size_t at = 0; at < len;) {
            const char *entry = entries + at;
            size_t n = strnlen(entry, len - at);
            if (n == L.lane_entry_len && memcmp(entry, L.lane_entry, n) == 0) tagged = 1;
            if (!task_value && n > 20 && memcmp(entry, "MPILAUNCHER_TASK_ID=", 20) == 0) task_value = entry + 20;
            at += n + 1;
        }
        if (tagged && task_value) {
            char *end;
            errno = 0;
            long id = strtol(task_value, &end, 10);
            if (end != task_value && *end == 0 && errno == 0) {
                *owner = id;
                free(entries);
                return 1;
            }
        }
        free(entries);
    }
    for (size_t i = 0; i < L.n_reaped; i++)
        if (L.reaped[i].pid == session) {
            *owner = L.reaped[i].task_id;
            return 1;
        }
    for (size_t i = 0; i < L.n_running; i++)
        if (L.running[i]->pid == session) {
            *owner = L.running[i]->task_id;
            return 1;
        }
    return 0;
}

static void adopt(pid_t pid) {
    Stat stat;
    if (!proc_stat(pid, &stat) || stat.state == 'Z') {  /* ended before we saw it: only reap it */
        reap_pid(pid);
        return;
    }
    Orphan orphan = {.pid = pid, .pidfd = -1};
    orphan.has_owner = owner_of(pid, stat.session, &orphan.owner);
    if (!orphan.has_owner) {
        if (L.n_running) {
            orphan.suspects = malloc(L.n_running * sizeof(long));
            for (size_t i = 0; i < L.n_running; i++) orphan.suspects[orphan.n_suspects++] = L.running[i]->task_id;
        } else if (L.n_reaped) {  /* nothing else runs here: one of the tasks that just ended */
            orphan.has_owner = 1;
            orphan.owner = L.reaped[0].task_id;
            for (size_t i = 1; i < L.n_reaped; i++)
                if (L.reaped[i].task_id > orphan.owner) orphan.owner = L.reaped[i].task_id;
        }
    }
    orphan.pidfd = pidfd_open(pid);
    L.orphans = grow(L.orphans, &L.cap_orphans, L.n_orphans + 1, sizeof(Orphan));
    L.orphans[L.n_orphans++] = orphan;
    if (orphan.pidfd >= 0) watch(orphan.pidfd, WATCH_ORPHAN, NULL);
}

static void scan(double now) {
    L.next_scan = now + SCAN_INTERVAL;
    for (size_t i = 0; i < L.n_orphans;) {  /* no pidfd to wake us: reaped here */
        if (L.orphans[i].pidfd < 0 && reap_pid(L.orphans[i].pid))
            forget_orphan(&L.orphans[i]);
        else
            i++;
    }
    for (size_t i = 0; i < L.left_behind.len;) {  /* reaped once the kernel let them end */
        if (reap_pid(L.left_behind.pids[i]))
            L.left_behind.pids[i] = L.left_behind.pids[--L.left_behind.len];
        else
            i++;
    }
    static char listing[1 << 20];
    ssize_t n = pread(L.listing, listing, sizeof listing - 1, 0);
    if (n < 0) return;
    listing[n] = 0;
    size_t spaces = 0;
    for (ssize_t i = 0; i < n; i++) spaces += listing[i] == ' ';
    /* exactly the running tasks, the orphans known and what was left behind: */
    if (spaces == L.n_running + L.n_orphans + L.left_behind.len) return;
    Pids pids = {0};
    parse_pids(listing, &pids);
    for (size_t i = 0; i < pids.len; i++)
        if (!is_task_pid(pids.pids[i]) && !orphan_of_pid(pids.pids[i]) && !pids_contain(&L.left_behind, pids.pids[i]))
            adopt(pids.pids[i]);
    free(pids.pids);
}

static double leftovers_due(int running) {
    double due = INFINITY;
    for (size_t i = 0; i < L.n_sweeps; i++)
        if (L.sweeps[i].due < due) due = L.sweeps[i].due;
    if ((running || L.n_orphans) && L.next_scan < due) due = L.next_scan;
    return L.rescan ? 0.0 : due;
}

static void count_leftovers(EndedList *ended, long owner, int count) {
    for (size_t i = 0; i < ended->len; i++)
        if (ended->items[i].task_id == owner) ended->items[i].leftovers = count;
}

static void start_sweeps(EndedList *ended, double now) {
    if (L.n_reaped)
        for (size_t i = 0; i < L.n_orphans; i++) {
            Orphan *o = &L.orphans[i];
            if (o->has_owner || !o->n_suspects) continue;
            int any = 0;
            long last = 0;
            size_t kept = 0;
            for (size_t j = 0; j < o->n_suspects; j++) {
                if (was_reaped(o->suspects[j], NULL)) {
                    if (!any || o->suspects[j] > last) last = o->suspects[j];
                    any = 1;
                } else {
                    o->suspects[kept++] = o->suspects[j];
                }
            }
            o->n_suspects = kept;
            if (any && !kept) {  /* the last task that may have left it */
                o->has_owner = 1;
                o->owner = last;
            }
        }
    for (size_t i = 0; i < L.n_orphans; i++) {
        Orphan *o = &L.orphans[i];
        if (o->n_suspects || (o->has_owner && running_task(o->owner))) continue;
        if (sweep_of(o->has_owner, o->owner)) continue;
        L.sweeps = grow(L.sweeps, &L.cap_sweeps, L.n_sweeps + 1, sizeof(Sweep));
        Sweep *sweep = &L.sweeps[L.n_sweeps++];
        memset(sweep, 0, sizeof *sweep);
        sweep->has_owner = o->has_owner;
        sweep->owner = o->owner;
        sweep->due = fmin(now + GRACE, L.limit);  /* signalled by carry_on */
        if (o->has_owner && was_reaped(o->owner, NULL)) {
            Tree tree = {0};
            tree_of(1, o->owner, &tree);
            count_leftovers(ended, o->owner, (int)tree.len);
            free(tree.items);
        }
    }
}

static void carry_on(double now) {
    for (size_t i = 0; i < L.n_sweeps;) {
        Sweep *sweep = &L.sweeps[i];
        Tree tree = {0};
        tree_of(sweep->has_owner, sweep->owner, &tree);
        if (!tree.len) {
            free(tree.items);
            free(sweep->termed.pids);
            L.sweeps[i] = L.sweeps[--L.n_sweeps];
            continue;
        }
        if (!sweep->killing && now >= sweep->due) sweep->killing = 1;
        if (sweep->killing) {
            signal_tree(&tree, SIGKILL, NULL);
            sweep->due = now + RECHECK;
        } else {
            signal_tree(&tree, SIGTERM, &sweep->termed);
            signal_tree(&tree, SIGCONT, &sweep->termed);
            for (size_t j = 0; j < tree.len; j++)
                if (!pids_contain(&sweep->termed, tree.items[j].pid)) pids_add(&sweep->termed, tree.items[j].pid);
        }
        free(tree.items);
        i++;
    }
}

/* After a loop turn in which tasks ended, an orphan ended or something came due (Subtree.settle). */
static void settle(EndedList *ended, double now) {
    L.rescan = 0;
    scan(now);
    if (!L.n_orphans && !L.n_sweeps) return;
    start_sweeps(ended, now);
    carry_on(now);
}

static void end_all(double deadline) {
    L.limit = deadline;
    for (size_t i = 0; i < L.n_sweeps; i++) L.sweeps[i].due = fmin(L.sweeps[i].due, deadline);
}

/* ---------------------------------------------------------------- the requests, decoded */
/* A request as the agent's marshal.dumps wrote it (format 4), read into a tree of Values: only the
 * types a request holds (None, booleans, int, float, str, tuple, list, dict) and marshal's back
 * references to them; anything else fails the request, as an unreadable one did in the interpreter.
 * A str is kept as the file system takes it: UTF-8 with the lone surrogates U+DC80..U+DCFF that
 * Python's surrogateescape made of undecodable bytes turned back into those bytes (marshal writes
 * them "surrogatepass": ED B2..B3 xx) -- what os.fsencode does, the agent's file system encoding
 * being UTF-8 (the agent starts this program only then: executor.program_usable). */
enum { V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_TUPLE, V_LIST, V_DICT, V_OTHER };

struct Value {
    int kind;
    long integer;  /* V_INT, V_BOOL */
    double number; /* V_FLOAT */
    char *text;    /* V_STR: zero-ended, len bytes */
    size_t len;
    Value **items; /* V_TUPLE, V_LIST, V_OTHER (a set): n items; V_DICT: key, value, key, value... (n = 2 x pairs) */
    size_t n;
};

/* One decoded request and every Value in it, freed together once nothing holds it (a standby does). */
struct Message {
    Value **values;
    size_t n_values, cap_values;
    int holders;
};

typedef struct {
    const unsigned char *at, *end;
    Message *message;
    Value **refs;
    size_t n_refs, cap_refs;
} Reader;

static Value NONE = {.kind = V_NONE};

static Value *new_value(Reader *r, int kind) {
    Value *v = calloc(1, sizeof(Value));
    v->kind = kind;
    Message *m = r->message;
    m->values = grow(m->values, &m->cap_values, m->n_values + 1, sizeof(Value *));
    m->values[m->n_values++] = v;
    return v;
}

static int take(Reader *r, size_t n, const unsigned char **bytes) {
    if ((size_t)(r->end - r->at) < n) return -1;
    *bytes = r->at;
    r->at += n;
    return 0;
}

static int take_int32(Reader *r, long *value) {
    const unsigned char *b;
    if (take(r, 4, &b) < 0) return -1;
    *value = (long)(int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24);
    return 0;
}

static void keep_ref(Reader *r, Value *v) {
    r->refs = grow(r->refs, &r->cap_refs, r->n_refs + 1, sizeof(Value *));
    r->refs[r->n_refs++] = v;
}

/* str's bytes, as the file system takes them (see above). */
static void set_text(Value *v, const unsigned char *bytes, size_t n, int utf8) {
    char *text = malloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (utf8 && bytes[i] == 0xED && i + 2 < n && (bytes[i + 1] == 0xB2 || bytes[i + 1] == 0xB3) &&
            (bytes[i + 2] & 0xC0) == 0x80) {
            unsigned code = 0xD000u | (unsigned)(bytes[i + 1] & 0x3F) << 6 | (unsigned)(bytes[i + 2] & 0x3F);
            if (code >= 0xDC80u) {
                text[k++] = (char)(code - 0xDC00u);
                i += 2;
                continue;
            }
        }
        text[k++] = (char)bytes[i];
    }
    text[k] = '\0';
    v->text = text;
    v->len = k;
}

static Value *read_value(Reader *r, int depth);

static Value *read_items(Reader *r, int kind, long n, int flagged, int depth) {
    if (n < 0 || n > r->end - r->at) return NULL;  /* (each item takes at least a byte) */
    Value *v = new_value(r, kind);
    if (flagged) keep_ref(r, v);  /* a container is numbered before its items, as marshal does */
    v->items = calloc((size_t)n + 1, sizeof(Value *));
    for (long i = 0; i < n; i++)
        if (!(v->items[v->n++] = read_value(r, depth + 1))) return NULL;
    return v;
}

static Value *read_value(Reader *r, int depth) {
    const unsigned char *b;
    if (depth > 32 || take(r, 1, &b) < 0) return NULL;
    int code = b[0] & 0x7F, flagged = b[0] & 0x80;
    long n;
    Value *v;
    switch (code) {
    case 'N': return &NONE;
    case 'T':
    case 'F':
        v = new_value(r, V_BOOL);
        v->integer = code == 'T';
        break;
    case 'i':
        if (take_int32(r, &n) < 0) return NULL;
        v = new_value(r, V_INT);
        v->integer = n;
        break;
    case 'l': {  /* a long: n 15-bit digits, least significant first, n's sign its own */
        if (take_int32(r, &n) < 0 || n < -4 || n > 4 || take(r, 2 * (size_t)labs(n), &b) < 0) return NULL;
        long value = 0;
        for (long i = labs(n) - 1; i >= 0; i--) value = value << 15 | (long)(b[2 * i] | b[2 * i + 1] << 8);
        v = new_value(r, V_INT);
        v->integer = n < 0 ? -value : value;
        break;
    }
    case 'g': {
        if (take(r, 8, &b) < 0) return NULL;
        uint64_t bits = 0;
        for (int i = 7; i >= 0; i--) bits = bits << 8 | b[i];
        v = new_value(r, V_FLOAT);
        memcpy(&v->number, &bits, sizeof bits);
        break;
    }
    case 'u':
    case 't':
    case 'a':
    case 'A':
        if (take_int32(r, &n) < 0 || n < 0 || take(r, (size_t)n, &b) < 0) return NULL;
        v = new_value(r, V_STR);
        set_text(v, b, (size_t)n, code == 'u' || code == 't');
        break;
    case 'z':
    case 'Z':
        if (take(r, 1, &b) < 0) return NULL;
        n = b[0];
        if (take(r, (size_t)n, &b) < 0) return NULL;
        v = new_value(r, V_STR);
        set_text(v, b, (size_t)n, 0);
        break;
    case 'r':
        if (take_int32(r, &n) < 0 || n < 0 || (size_t)n >= r->n_refs) return NULL;
        return r->refs[n];
    case ')':
        if (take(r, 1, &b) < 0) return NULL;
        return read_items(r, V_TUPLE, b[0], flagged, depth);
    case '(':
    case '[':
    case '<':
    case '>':
        if (take_int32(r, &n) < 0) return NULL;
        return read_items(r, code == '(' ? V_TUPLE : code == '[' ? V_LIST : V_OTHER, n, flagged, depth);
    case '{':
        v = new_value(r, V_DICT);
        if (flagged) keep_ref(r, v);
        size_t cap = 0;
        while (r->at < r->end && *r->at != '0') {
            v->items = grow(v->items, &cap, v->n + 2, sizeof(Value *));
            if (!(v->items[v->n++] = read_value(r, depth + 1))) return NULL;
            if (!(v->items[v->n++] = read_value(r, depth + 1))) return NULL;
        }
        if (take(r, 1, &b) < 0) return NULL;  /* the '0' that ends it */
        return v;
    default:
        return NULL;
    }
    if (flagged) keep_ref(r, v);
    return v;
}

static void release(Message *m) {
    if (--m->holders > 0) return;
    for (size_t i = 0; i < m->n_values; i++) {
        free(m->values[i]->text);
        free(m->values[i]->items);
        free(m->values[i]);
    }
    free(m->values);
    free(m);
}

/* The request in data[0:size], held once; NULL if it cannot be read (as marshal.loads failing). */
static Value *decode(const char *data, size_t size, Message **message) {
    Message *m = calloc(1, sizeof(Message));
    m->holders = 1;
    Reader r = {(const unsigned char *)data, (const unsigned char *)data + size, m, NULL, 0, 0};
    Value *v = read_value(&r, 0);
    free(r.refs);
    if (!v || r.at != r.end) {
        release(m);
        return NULL;
    }
    *message = m;
    return v;
}

static int is_none(const Value *v) { return v->kind == V_NONE; }
static int is_tuple(const Value *v) { return v->kind == V_TUPLE; }
static int is_str(const Value *v, const char *text) { return v->kind == V_STR && (!text || strcmp(v->text, text) == 0); }

/* ---------------------------------------------------------------- the requests' fields */
/* A str as the file system takes it (see above), a copy; "" for anything else (as a failed encoding). */
static char *fs_text(const Value *text, size_t *len) {
    int is_text = text->kind == V_STR;
    if (len) *len = is_text ? text->len : 0;
    return is_text ? copy_bytes(text->text, text->len) : copy_bytes("", 0);
}

static long as_long(const Value *number) {
    return number->kind == V_INT || number->kind == V_BOOL ? number->integer : -1;
}

/* A number as float() takes it; `otherwise` for anything else. */
static double as_double(const Value *number, double otherwise) {
    if (number->kind == V_FLOAT) return number->number;
    if (number->kind == V_INT || number->kind == V_BOOL) return (double)number->integer;
    return otherwise;
}

/* StartRequest's fields, by position (mpilauncher/protocol.py). */
enum { F_TASK_ID, F_COMMAND, F_CORE_IDS, F_GPU_INDICES, F_LINE, F_SEGMENTS, F_AFTER, F_OUTPUT, F_ENV_CHANGES,
       F_CPU_IDS, F_TIMEOUT, F_EXEC_FILE, F_GATHER, N_FIELDS };

static const Value *field(const Value *request, int at) {
    return request->n > (size_t)at ? request->items[at] : &NONE;
}

/* ---------------------------------------------------------------- starting */
static Stream *stream_for(const Value *base_text, char **why) {
    char *base = fs_text(base_text, NULL);
    for (size_t i = 0; i < L.n_streams; i++)
        if (strcmp(L.streams[i]->base, base) == 0) {
            free(base);
            return L.streams[i];
        }
    Stream *stream = calloc(1, sizeof(Stream));
    stream->base = base;
    stream->data = stream->index = -1;
    char *failed = NULL;
    if (stream_open(stream, L.lane_name, &failed) < 0) {
        Buffer b = {0};
        buffer_printf(&b, "%s: %s", failed, strerror(errno));
        *why = b.data;
        free(failed);
        free(stream->base);
        free(stream);
        return NULL;
    }
    L.streams = grow(L.streams, &L.cap_streams, L.n_streams + 1, sizeof(Stream *));
    L.streams[L.n_streams++] = stream;
    return stream;
}

static void write_text(const char *path, const char *text, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;  /* a convenience file that cannot be written is left out */
    if (write_all(fd, text, len) < 0) unlink(path);  /* a full disk: out, not left empty or cut short */
    close(fd);
}

/* Record a started task's exec script in its lane's files; its exec<N> (path, text), if any, to write. */
static int record_exec(long task_id, const Value *exec_file, double start, char **path, char **text, size_t *len) {
    if (!is_tuple(exec_file) || exec_file->n < 3) return 0;
    const Value *records = exec_file->items[2];
    size_t text_len;
    char *script = fs_text(exec_file->items[1], &text_len);
    if (is_str(records, NULL) && records->len) {
        char *why = NULL;
        Stream *stream = stream_for(records, &why);
        free(why);
        if (stream) stream_add_text(stream, task_id, "exec", script, text_len, start);  /* a convenience too */
    }
    const Value *exec_path = exec_file->items[0];
    if (!is_str(exec_path, NULL) || !exec_path->len) {
        free(script);
        return 0;
    }
    *path = fs_text(exec_path, NULL);
    *text = script;
    *len = text_len;
    return 1;
}

static int cpus_of(const Value *ids, cpu_set_t *set) {
    CPU_ZERO(set);
    int n = 0;
    if (!is_tuple(ids)) return 0;
    for (size_t i = 0; i < ids->n; i++) {
        long cpu = as_long(ids->items[i]);
        if (cpu >= 0 && cpu < CPU_SETSIZE) {
            CPU_SET((int)cpu, set);
            n++;
        }
    }
    return n;
}

static void bind_task(pid_t pid, cpu_set_t *cpus) {
    if (sched_setaffinity(pid, sizeof *cpus, cpus) < 0) return;
    Pids early = {0};
    children_of(pid, &early);
    for (size_t i = 0; i < early.len; i++) sched_setaffinity(early.pids[i], sizeof *cpus, cpus);
    free(early.pids);
}

/* The task's environment: the lane's, with env_changes applied (a None value removes one). */
static char **task_environment(const Value *changes, Buffer *store) {
    size_t n_changes = changes->kind == V_DICT ? changes->n / 2 : 0;
    char **envp = malloc((L.base_env_len + n_changes + 1) * sizeof(char *));
    size_t n = 0;
    if (!n_changes) {
        memcpy(envp, L.base_env, L.base_env_len * sizeof(char *));
        envp[L.base_env_len] = NULL;
        return envp;
    }
    /* names and values encoded once, "NAME=value\0" each, into store; offsets first */
    size_t *offsets = malloc(n_changes * sizeof(size_t)), *name_lens = malloc(n_changes * sizeof(size_t));
    int *removed = malloc(n_changes * sizeof(int));
    for (size_t k = 0; k < n_changes; k++) {
        const Value *name = changes->items[2 * k], *value = changes->items[2 * k + 1];
        size_t name_len, value_len = 0;
        char *name_text = fs_text(name, &name_len);
        offsets[k] = store->len;
        name_lens[k] = name_len;
        removed[k] = is_none(value);
        buffer_add(store, name_text, name_len);
        buffer_add(store, "=", 1);
        if (!is_none(value)) {
            char *value_text = fs_text(value, &value_len);
            buffer_add(store, value_text, value_len);
            free(value_text);
        }
        buffer_add(store, "", 1);  /* the entry's terminating zero */
        free(name_text);
    }
    for (size_t i = 0; i < L.base_env_len; i++) {
        const char *entry = L.base_env[i];
        int replaced = 0;
        for (size_t j = 0; j < n_changes && !replaced; j++)
            replaced = strncmp(entry, store->data + offsets[j], name_lens[j] + 1) == 0;
        if (!replaced) envp[n++] = (char *)entry;
    }
    for (size_t j = 0; j < n_changes; j++)
        if (!removed[j]) envp[n++] = store->data + offsets[j];  /* store no longer grows: stable */
    envp[n] = NULL;
    free(offsets);
    free(name_lens);
    free(removed);
    return envp;
}

static int cannot_create(const char *output, char **why) {
    int fd = open(output, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    Buffer b = {0};
    buffer_printf(&b, "%s: %s", output, strerror(errno));
    *why = b.data;
    return 1;
}

static void hold_standby(long after, long task_id, const Value *request, Message *message) {
    L.standbys = grow(L.standbys, &L.cap_standbys, L.n_standbys + 1, sizeof(Standby));
    message->holders++;
    L.standbys[L.n_standbys++] = (Standby){after, task_id, request, message};
}

/* Start a request (processes.ProcessRunner.start): spawned, held as a standby, or an Ended now. */
static void start_task(const Value *request, Message *message, int ignore_after, EndedList *early) {
    long task_id = as_long(field(request, F_TASK_ID));
    const Value *after = field(request, F_AFTER);
    if (!ignore_after && !is_none(after)) {
        long after_id = as_long(after);
        if (running_task(after_id) || was_reaped(after_id, NULL)) {
            hold_standby(after_id, task_id, request, message);
            return;
        }
    }
    int spool = -1;
    Stream *stream = NULL;
    const Value *gather = field(request, F_GATHER);
    char *output = NULL;
    if (is_tuple(gather) && gather->n >= 2) {
        char *why = NULL;
        stream = stream_for(gather->items[1], &why);
        if (stream) {
            char *directory = fs_text(gather->items[0], NULL);
            spool = open_spool(directory, task_id, &why);
            free(directory);
        }
        if (spool < 0) {
            ended_add(early, task_id, 127, wall(), 0.0)->not_started = why;
            return;
        }
    } else {
        output = fs_text(field(request, F_OUTPUT), NULL);
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    if (spool >= 0)
        posix_spawn_file_actions_adddup2(&actions, spool, 1);
    else
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    Buffer store = {0};
    char **envp = task_environment(field(request, F_ENV_CHANGES), &store);
    size_t command_len;
    char *command = fs_text(field(request, F_COMMAND), &command_len);
    char *argv[] = {SHELL, "-c", "--", command, NULL};
    cpu_set_t cpus;
    int n_cpus = cpus_of(field(request, F_CPU_IDS), &cpus);
    if (L.pin_self && !(n_cpus == L.n_pinned && (n_cpus == 0 || CPU_EQUAL(&cpus, &L.pinned)))) {
        if (!L.n_pinned && !L.have_unpinned) {
            sched_getaffinity(0, sizeof L.unpinned, &L.unpinned);
            L.have_unpinned = 1;
        }
        if (sched_setaffinity(0, sizeof cpus, n_cpus ? &cpus : &L.unpinned) == 0) {
            L.pinned = cpus;
            L.n_pinned = n_cpus;
        } else {
            L.pin_self = 0;  /* not allowed here: bind after the spawn instead */
        }
    }
    double start = wall(), start_mono = monotonic();
    pid_t pid;
    int failed = posix_spawn(&pid, SHELL, &actions, &L.attributes, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    size_t environment_len = 0;
    if (failed)
        for (char **e = envp; *e; e++) environment_len += strlen(*e) + 1;
    free(envp);
    free(store.data);
    free(command);
    char *exec_path = NULL, *exec_text = NULL;
    size_t exec_len = 0;
    if (failed) {
        char *why = NULL;
        if (spool >= 0)
            close(spool);
        else if (cannot_create(output, &why)) {
            free(output);
            ended_add(early, task_id, 127, start, 0.0)->not_started = why;
            return;
        }
        else {  /* the reason, where the task's output would be (processes.cannot_start) */
            Buffer text = {0};
            buffer_printf(&text, "mpilauncher: cannot start this task: %s", strerror(failed));
            if (failed == E2BIG)
                buffer_printf(&text, " (its command is %zu bytes and its environment %zu; the kernel takes at most"
                              " %d bytes in one argument or variable, and %ld in all)", command_len,
                              environment_len, 32 * 4096, sysconf(_SC_ARG_MAX));
            buffer_add(&text, "\n", 1);
            write_text(output, text.data, text.len);
            free(text.data);
        }
        free(output);
        if (record_exec(task_id, field(request, F_EXEC_FILE), start, &exec_path, &exec_text, &exec_len)) {
            write_text(exec_path, exec_text, exec_len);  /* it failed: exec<N> now */
            free(exec_path);
            free(exec_text);
        }
        ended_add(early, task_id, 127, start, 0.0);
        return;
    }
    free(output);
    if (n_cpus && !L.pin_self) bind_task(pid, &cpus);
    Task *task = calloc(1, sizeof(Task));
    task->task_id = task_id;
    task->pid = pid;
    task->start = start;
    task->start_mono = start_mono;
    task->spool = spool;
    task->stream = stream;
    task->deadline = INFINITY;
    task->exec_due = INFINITY;
    const Value *timeout = field(request, F_TIMEOUT);
    if (!is_none(timeout)) {  /* as `if request.timeout:` in Python: 0 is none */
        double seconds = as_double(timeout, 0.0);
        if (seconds != 0.0) task->deadline = start_mono + seconds;
    }
    task->pidfd = pidfd_open(pid);
    if (task->pidfd < 0) L.unwatched++;  /* out of fds: polled instead */
    L.running = grow(L.running, &L.cap_running, L.n_running + 1, sizeof(Task *));
    L.running[L.n_running++] = task;
    if (task->pidfd >= 0) watch(task->pidfd, WATCH_TASK, task);
    if (record_exec(task_id, field(request, F_EXEC_FILE), start, &exec_path, &exec_text, &exec_len)) {
        task->exec_path = exec_path;
        task->exec_text = exec_text;
        task->exec_len = exec_len;
        task->exec_due = start_mono + L.exec_file_after;
    }
}

/* ---------------------------------------------------------------- ending */
static void drop_exec(Task *task) {
    free(task->exec_path);
    free(task->exec_text);
    task->exec_path = task->exec_text = NULL;
    task->exec_due = INFINITY;
}

/* One line on stderr, "mpilauncher: warning: " and the text (processes.py's _warn). */
static void warn(const char *format, ...) {
    Buffer line = {0};
    buffer_add(&line, "mpilauncher: warning: ", 22);
    va_list args;
    va_start(args, format);
    buffer_vprintf(&line, format, args);
    va_end(args);
    buffer_add(&line, "\n", 1);
    write_all(2, line.data, line.len);
    free(line.data);
}

/* Per-node output: the ended task's output appended to the lane's files (ProcessRunner._gather); NULL, or
 * why it could not be (owned by the caller): the task's run then does not count (see record_end). */
static char *gather_output(Task *task) {
    char *lost = NULL;
    if (stream_add_file(task->stream, task->task_id, task->spool, wall()) < 0) {
        Buffer why = {0};
        buffer_printf(&why, "the output of task %ld cannot be kept in %s.*: %s", task->task_id, task->stream->base,
                      strerror(errno));
        lost = why.data;
    }
    close(task->spool);
    task->spool = -1;
    return lost;
}

static void remove_running(Task *task) {
    for (size_t i = 0; i < L.n_running; i++)
        if (L.running[i] == task) {
            L.running[i] = L.running[--L.n_running];
            return;
        }
}

/* The task runs no more, reaped or given up (ProcessRunner._record_end): its record added to ended
 * (usage NULL: unknown), its output gathered, its exec<N> written where it failed or ran long; freed. */
static void record_end(Task *task, int exit_code, const struct rusage *usage, EndedList *ended) {
    double runtime = monotonic() - task->start_mono;
    remove_running(task);
    if (task->pidfd < 0) {
        L.unwatched--;
    } else {
        unwatch(task->pidfd);
        close(task->pidfd);
    }
    char *lost = task->spool >= 0 ? gather_output(task) : NULL;
    if (task->exec_path && (exit_code || task->timed_out || runtime >= L.exec_file_after))
        write_text(task->exec_path, task->exec_text, task->exec_len);  /* it failed (or ran its time) */
    drop_exec(task);
    if (lost) {  /* its output is gone: its run does not count, it is still to run (Ended.not_started); its
                  * cores went to the standby behind it when it ended, which the record's start says */
        ended_add(ended, task->task_id, 127, task->start + runtime, 0.0)->not_started = lost;
        free(task);
        return;
    }
    Ended *e = ended_add(ended, task->task_id, exit_code, task->start, runtime);
    e->timed_out = task->timed_out;
    if (usage) {
        e->has_usage = 1;
        e->user = (double)usage->ru_utime.tv_sec + (double)usage->ru_utime.tv_usec * 1e-6;
        e->system = (double)usage->ru_stime.tv_sec + (double)usage->ru_stime.tv_usec * 1e-6;
        e->max_rss = usage->ru_maxrss;
    }
    free(task);
}

static void say_woke(Task *task, double now);

/* Reap the task if it ended (ProcessRunner._try_reap); 1 with its record added to ended. */
static int try_reap(Task *task, EndedList *ended) {
    int status = 0;
    struct rusage usage;
    int has_usage = 1;
    pid_t got = wait4(task->pid, &status, WNOHANG, &usage);
    if (got < 0 && errno == EINTR) return 0;
    if (got < 0) {  /* reaped by someone else: exit status and usage lost */
        status = 255 << 8;
        has_usage = 0;
    } else if (got == 0) {
        return 0;
    }
    L.reaped = grow(L.reaped, &L.cap_reaped, L.n_reaped + 1, sizeof(Reaped));
    L.reaped[L.n_reaped++] = (Reaped){task->task_id, task->pid};
    if (task->asleep_named) say_woke(task, monotonic());
    record_end(task, WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status), has_usage ? &usage : NULL, ended);
    return 1;
}

/* A task still there KILL_WAIT s after SIGKILL (ProcessRunner._give_up): reported ended by SIGKILL and
 * left behind, said on stderr. */
static void give_up(Task *task, EndedList *ended) {
    Stat stat;
    char state[8] = "unknown";
    if (proc_stat(task->pid, &stat)) snprintf(state, sizeof state, "%c", stat.state);
    warn("task %ld: its process %d outlived SIGKILL by %g s (state %s%s); left behind, it ends when the kernel"
         " lets it", task->task_id, (int)task->pid, KILL_WAIT, state,
         strcmp(state, "D") ? "" : ", uninterruptible sleep: a hung file system?");
    pids_add(&L.left_behind, task->pid);
    record_end(task, -SIGKILL, NULL, ended);
}

static void signal_task(long task_id, int signum) {
    Task *task = running_task(task_id);
    if (task) killpg(task->pid, signum);
}

static void enforce_timeouts(double now, EndedList *ended) {
    for (size_t i = 0; i < L.n_running;) {
        Task *task = L.running[i];
        if (task->deadline > now) {
            i++;
            continue;
        }
        if (!task->timed_out) {
            task->timed_out = 1;
            killpg(task->pid, SIGTERM);
            task->deadline = now + TIMEOUT_GRACE;
        } else if (!task->killed) {
            task->killed = 1;
            killpg(task->pid, SIGKILL);
            task->deadline = now + KILL_WAIT;
        } else {
            give_up(task, ended);
            continue;  /* removed: the slot holds another */
        }
        i++;
    }
}

/* ---------------------------------------------------------------- tasks asleep in the kernel (stuck.py) */
#define STUCK_AFTER 600.0
#define LONGEST_LOOK 60.0
#define MOST_PROCESSES 100

/* Seconds as a person reads them in a warning (stuck.duration). */
static void duration(char *out, size_t size, double seconds) {
    if (seconds < 120)
        snprintf(out, size, "%.0f s", seconds);
    else
        snprintf(out, size, "%.0f min", seconds / 60);
}

/* The first process of pid's tree (breadth first) in uninterruptible sleep (stuck.first_sleeper): 0 if none. */
static pid_t first_sleeper(pid_t pid, Stat *sleep) {
    Pids tree = {0};
    pids_add(&tree, pid);
    pid_t found = 0;
    for (size_t at = 0; at < tree.len && at < MOST_PROCESSES && !found; at++) {
        if (proc_stat(tree.pids[at], sleep) && sleep->state == 'D')
            found = tree.pids[at];
        else if (tree.len < MOST_PROCESSES)
            children_of(tree.pids[at], &tree);
    }
    free(tree.pids);
    return found;
}

static void say_woke(Task *task, double now) {
    char slept[32];
    duration(slept, sizeof slept, now - task->asleep_since);
    warn("task %ld on %s: its process %d (%s) woke after %s in the kernel", task->task_id, L.node,
         (int)task->asleep_pid, task->asleep_name, slept);
}

/* Name a task whose process has slept in the kernel for long (stuck.Sleepers.look). */
static void look_for_sleepers(double now) {
    L.next_look = now + L.look_interval;
    for (size_t i = 0; i < L.n_running; i++) {
        Task *task = L.running[i];
        Stat sleep;
        pid_t found = first_sleeper(task->pid, &sleep);
        if (task->asleep_pid && found == task->asleep_pid && sleep.ticks == task->asleep_ticks) {
            if (!task->asleep_named && now - task->asleep_since >= L.stuck_after) {
                task->asleep_named = 1;
                char slept[32], path[64];
                duration(slept, sizeof slept, now - task->asleep_since);
                snprintf(path, sizeof path, "/proc/%d/wchan", (int)found);
                size_t len = 0;
                char *where = read_file(path, &len);
                while (where && len && (where[len - 1] == '\n' || where[len - 1] == ' ')) where[--len] = 0;
                int said = where && len && strcmp(where, "0") != 0;
                warn("task %ld on %s: its process %d (%s) has slept in the kernel for %s (state D%s%s) using no CPU:"
                     " a hung file system or device? No signal ends it until the kernel lets it go", task->task_id, L.node,
                     (int)found, task->asleep_name, slept, said ? ", in " : "", said ? where : "");
                free(where);
            }
            continue;
        }
        if (task->asleep_pid && task->asleep_named) say_woke(task, now);
        task->asleep_pid = found;
        task->asleep_named = 0;
        if (found) {
            task->asleep_ticks = sleep.ticks;
            task->asleep_since = now;
            snprintf(task->asleep_name, sizeof task->asleep_name, "%s", sleep.name);
        }
    }
}

/* MPILAUNCHER_STUCK_AFTER, as the agent passes it on (stuck.stuck_after, checked there); garbage: the default. */
static void setup_sleepers(void) {
    const char *text = getenv("MPILAUNCHER_STUCK_AFTER");
    char *end = NULL;
    double after = text && *text ? strtod(text, &end) : STUCK_AFTER;
    if (end && (*end || !(after >= 0) || isinf(after))) after = STUCK_AFTER;
    L.stuck_after = after;
    L.look_interval = fmin(fmax(after / 10, 0.1), LONGEST_LOOK);
    L.next_look = monotonic() + L.look_interval;
    if (gethostname(L.node, sizeof L.node) != 0) snprintf(L.node, sizeof L.node, "?");
    L.node[sizeof L.node - 1] = 0;
}

static void write_due_exec(double now) {
    for (size_t i = 0; i < L.n_running; i++) {
        Task *task = L.running[i];
        if (task->exec_path && task->exec_due <= now) {
            write_text(task->exec_path, task->exec_text, task->exec_len);
            drop_exec(task);
        }
    }
}

static double next_due(void) {
    double due = leftovers_due(L.n_running > 0);
    for (size_t i = 0; i < L.n_running; i++) {
        if (L.running[i]->deadline < due) due = L.running[i]->deadline;
        if (L.running[i]->exec_due < due) due = L.running[i]->exec_due;
    }
    if (L.unwatched) due = fmin(due, monotonic() + UNWATCHED_POLL);
    if (L.n_running && L.stuck_after > 0) due = fmin(due, L.next_look);
    return due;
}

/* ---------------------------------------------------------------- reporting */
static int report(EndedList *ended) {
    if (!ended->len && !L.n_retracted) return 0;
    Buffer text = {0};
    for (size_t i = 0; i < L.n_retracted; i++) buffer_printf(&text, "R %ld\n", L.retracted[i]);
    L.n_retracted = 0;
    for (size_t i = 0; i < ended->len; i++) {
        Ended *e = &ended->items[i];
        if (e->not_started) {
            for (char *c = e->not_started; *c; c++)
                if (*c == '\n') *c = ' ';
            buffer_printf(&text, "F %ld %.17g %s\n", e->task_id, e->start, e->not_started);
        } else if (e->has_usage) {
            buffer_printf(&text, "E %ld %d %.17g %.17g %c %d %.17g %.17g %ld\n", e->task_id, e->exit_code, e->start,
                          e->runtime, e->timed_out ? 'T' : '-', e->leftovers, e->user, e->system, e->max_rss);
        } else {
            buffer_printf(&text, "E %ld %d %.17g %.17g %c %d - - -\n", e->task_id, e->exit_code, e->start,
                          e->runtime, e->timed_out ? 'T' : '-', e->leftovers);
        }
    }
    ended_clear(ended);
    int failed = text.len && write_all(1, text.data, text.len) < 0;
    free(text.data);
    if (failed) L.eof = 1;  /* the agent is gone (EPIPE): as an EOF on the requests */
    return failed;
}

/* ---------------------------------------------------------------- requests */
static EndedList stop_all(double grace);

static void retract(long task_id) {
    for (size_t i = 0; i < L.n_standbys; i++)
        if (L.standbys[i].task_id == task_id) {
            release(L.standbys[i].message);
            L.standbys[i] = L.standbys[--L.n_standbys];
            L.retracted = grow(L.retracted, &L.cap_retracted, L.n_retracted + 1, sizeof(long));
            L.retracted[L.n_retracted++] = task_id;
            return;
        }
}

static void handle(const Value *request, Message *message, EndedList *early) {
    if (request->kind != V_LIST || request->n < 1) return;
    const Value *kind = request->items[0], **items = (const Value **)request->items;
    size_t size = request->n;
    if (is_str(kind, "S") && size >= 2 && is_tuple(items[1])) {
        start_task(items[1], message, 0, early);
    } else if (is_str(kind, "R") && size >= 2) {
        retract(as_long(items[1]));
    } else if (is_str(kind, "K") && size >= 3) {
        signal_task(as_long(items[1]), (int)as_long(items[2]));
    } else if (is_str(kind, "STOP") && size >= 2) {
        report(early);
        double grace = as_double(items[1], 0.0);
        EndedList ended = stop_all(grace);
        report(&ended);
        free(ended.items);
        if (write_all(1, "STOPPED\n", 8) < 0) L.eof = 1;
    } else if (is_str(kind, "BYE")) {
        L.bye = 1;
    }
}

/* fd 0 is readable: take the whole requests that arrived (executor.serve's on_request). */
static void on_requests(void) {
    char chunk[1 << 16];
    ssize_t n = read(0, chunk, sizeof chunk);
    if (n < 0) {
        if (errno != EINTR && errno != EAGAIN) L.eof = 1;
        return;
    }
    if (n == 0) {
        L.eof = 1;
        return;
    }
    buffer_add(&L.requests, chunk, (size_t)n);
    size_t at = 0;
    EndedList early = {0};
    while (L.requests.len - at >= 4 && !L.bye) {
        const unsigned char *head = (const unsigned char *)L.requests.data + at;
        size_t size = (size_t)head[0] | (size_t)head[1] << 8 | (size_t)head[2] << 16 | (size_t)head[3] << 24;
        if (L.requests.len - at - 4 < size) break;
        Message *message;
        Value *request = decode(L.requests.data + at + 4, size, &message);
        at += 4 + size;
        if (!request) {  /* (never from its own agent: a type it does not know; no task may wait on it for ever) */
            warn("executor: a request of %zu bytes could not be read: this executor stops its tasks and exits", size);
            L.unreadable = L.eof = 1;
            break;
        }
        handle(request, message, &early);
        release(message);
    }
    memmove(L.requests.data, L.requests.data + at, L.requests.len - at);
    L.requests.len -= at;
    report(&early);
    free(early.items);
}

/* ---------------------------------------------------------------- the loop */
/* Ended tasks, waiting up to timeout s for the first (< 0: until one); ProcessRunner.wait. */
static void wait_turn(double timeout, EndedList *ended) {
    double due = next_due();
    if (due != INFINITY) {
        double left = fmax(0.0, due - monotonic());
        timeout = timeout < 0 ? left : fmin(timeout, left);
    }
    int ms = -1;
    if (timeout >= 0) ms = (int)ceil(fmin(timeout, LONGEST_WAIT) * 1000.0);
    else ms = (int)(LONGEST_WAIT * 1000.0);
    struct epoll_event events[64];
    int n = epoll_wait(L.epoll, events, 64, ms);
    for (int i = 0; i < n; i++) {
        int fd = events[i].data.fd;
        if ((size_t)fd >= L.cap_watched) continue;
        Watched *w = &L.watched[fd];
        if (w->kind == WATCH_REQUESTS) {
            if (!L.stopping) on_requests();
        } else if (w->kind == WATCH_ORPHAN) {
            on_orphan_exit(fd);
        } else if (w->kind == WATCH_TASK) {
            try_reap((Task *)w->what, ended);
        }
    }
    if (L.n_running) {
        double now = monotonic();
        enforce_timeouts(now, ended);
        write_due_exec(now);
        if (L.stuck_after > 0 && now >= L.next_look) look_for_sleepers(now);
    }
    if (L.unwatched)
        for (size_t i = 0; i < L.n_running;) {
            Task *task = L.running[i];
            if (task->pidfd < 0 && try_reap(task, ended)) continue;  /* removed: the slot holds another */
            i++;
        }
    if (L.n_standbys)
        for (size_t i = 0; i < ended->len; i++) {
            long done = ended->items[i].task_id;
            for (size_t j = 0; j < L.n_standbys; j++)
                if (L.standbys[j].after == done) {
                    Standby follow = L.standbys[j];
                    L.standbys[j] = L.standbys[--L.n_standbys];
                    start_task(follow.request, follow.message, 1, ended);  /* a failed start: after its predecessor */
                    release(follow.message);
                    break;
                }
        }
    double now = monotonic();
    if (L.n_reaped || now >= leftovers_due(L.n_running > 0)) {
        settle(ended, now);
        L.n_reaped = 0;
    }
}

/* Requests on fd 0 wait while a stop is under way (epoll is level-triggered: left in, they would wake every turn). */
static void hold_requests(int held) {
    struct epoll_event event = {.events = held ? 0 : EPOLLIN, .data.fd = 0};
    epoll_ctl(L.epoll, EPOLL_CTL_MOD, 0, &event);
    L.stopping = held;
}

static EndedList stop_all(double grace) {
    EndedList ended = {0};
    hold_requests(1);
    for (size_t i = 0; i < L.n_standbys; i++) release(L.standbys[i].message);
    L.n_standbys = 0;
    for (size_t i = 0; i < L.n_running; i++) killpg(L.running[i]->pid, SIGTERM);
    double deadline = monotonic() + grace;
    end_all(deadline);
    EndedList none = {0};
    settle(&none, monotonic());  /* also what was left unseen so far */
    while ((L.n_running || L.n_sweeps) && monotonic() < deadline)
        wait_turn(fmin(0.05, fmax(0.0, deadline - monotonic())), &ended);
    for (size_t i = 0; i < L.n_running; i++) killpg(L.running[i]->pid, SIGKILL);
    double given_up = monotonic() + KILL_WAIT;  /* a process in uninterruptible sleep outlasts even SIGKILL */
    while (L.n_running && monotonic() < given_up) wait_turn(0.05, &ended);
    while (L.n_running) give_up(L.running[L.n_running - 1], &ended);
    while (L.n_sweeps && monotonic() < given_up) wait_turn(0.05, &ended);
    hold_requests(0);
    free(none.items);
    return ended;
}

static void close_lane(void) {
    for (size_t i = 0; i < L.n_orphans; i++)
        if (L.orphans[i].pidfd >= 0) {
            unwatch(L.orphans[i].pidfd);
            close(L.orphans[i].pidfd);
        }
    if (L.listing >= 0) close(L.listing);
    for (size_t i = 0; i < L.n_streams; i++) {
        if (L.streams[i]->data >= 0) close(L.streams[i]->data);
        if (L.streams[i]->index >= 0) close(L.streams[i]->index);
    }
    close(L.epoll);
    posix_spawnattr_destroy(&L.attributes);
}

static int setup(const char *tag, double exec_file_after) {
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) return -1;
    char listing[64];
    snprintf(listing, sizeof listing, "/proc/self/task/%d/children", (int)getpid());
    L.listing = open(listing, O_RDONLY | O_CLOEXEC);
    if (L.listing < 0) return -1;
    L.epoll = epoll_create1(EPOLL_CLOEXEC);
    if (L.epoll < 0) return -1;
    L.tag = copy_bytes(tag, strlen(tag));
    Buffer entry = {0};
    buffer_printf(&entry, "MPILAUNCHER_LANE=%s", tag);
    L.lane_entry = entry.data;
    L.lane_entry_len = entry.len;
    L.lane_name = copy_bytes(tag, strlen(tag));
    for (char *c = L.lane_name; *c; c++)
        if (*c == '/') *c = '_';
    L.exec_file_after = exec_file_after;
    L.pin_self = 1;
    /* posix_spawn leaves ignored signals ignored in the child: Python ignores SIGPIPE and SIGXFSZ, and the
     * executor the stop signals (processes.DEFAULT_SIGNALS) */
    int to_default[] = {SIGPIPE, SIGXFSZ, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
    sigset_t defaults, none;
    sigemptyset(&defaults);
    sigemptyset(&none);
    for (size_t i = 0; i < sizeof to_default / sizeof *to_default; i++) sigaddset(&defaults, to_default[i]);
    posix_spawnattr_init(&L.attributes);
    posix_spawnattr_setsigdefault(&L.attributes, &defaults);
    posix_spawnattr_setsigmask(&L.attributes, &none);
    posix_spawnattr_setflags(&L.attributes, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    L.limit = INFINITY;
    setup_sleepers();
    for (char **e = environ; *e; e++) {
        L.base_env = realloc(L.base_env, (L.base_env_len + 1) * sizeof(char *));
        if (strncmp(*e, "MPILAUNCHER_LANE=", 17) != 0) L.base_env[L.base_env_len++] = *e;
    }
    L.base_env = realloc(L.base_env, (L.base_env_len + 1) * sizeof(char *));
    L.base_env[L.base_env_len++] = L.lane_entry;
    watch(0, WATCH_REQUESTS, NULL);
    return 0;
}

/* What executor.serve() does before its loop: the stop signals ignored (the launcher handles them and
 * stops the tasks itself), none blocked, and none of the agent's other fds held (MPI sockets: its
 * peers must see it die). */
static void prepare_process(void) {
    int ignored[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof ignored / sizeof *ignored; i++) signal(ignored[i], SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    DIR *dir = opendir("/proc/self/fd");
    if (!dir) return;
    Pids fds = {0};
    struct dirent *entry;
    while ((entry = readdir(dir)))
        if (entry->d_name[0] >= '0' && entry->d_name[0] <= '9') {
            int fd = atoi(entry->d_name);
            if (fd > 2 && fd != dirfd(dir)) pids_add(&fds, fd);
        }
    closedir(dir);
    for (size_t i = 0; i < fds.len; i++) close(fds.pids[i]);
    free(fds.pids);
}

/* argv: EXEC_FILE_AFTER, then the Python loop's command, run instead where this process cannot serve. */
int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s EXEC_FILE_AFTER PYTHON_LOOP... (an mpilauncher executor: started by its agent)\n",
                argv[0]);
        return 2;
    }
    double exec_file_after = strtod(argv[1], NULL);
    const char *tag = getenv("MPILAUNCHER_LANE");
    char own[32];
    if (!tag || !*tag) {
        snprintf(own, sizeof own, "%d", (int)getpid());
        tag = own;
    }
    prepare_process();
    if (setup(tag, exec_file_after) < 0) {  /* no subreaper: the Python loop takes over, in this process */
        execv(argv[2], argv + 2);
        fprintf(stderr, "mpilauncher: warning: executor: cannot run %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    EndedList ended = {0};
    while (!L.eof && !L.bye) {
        wait_turn(-1.0, &ended);
        report(&ended);
    }
    /* BYE: the agent has stopped every task, but what they left may still be in its grace.  EOF without
     * BYE: the agent is gone (kill -9 included); its tasks and all they left behind must not outlive it. */
    EndedList last = stop_all(WATCHDOG_GRACE);
    ended_clear(&last);
    free(last.items);
    ended_clear(&ended);
    free(ended.items);
    close_lane();
    return L.unreadable ? 1 : 0;
}

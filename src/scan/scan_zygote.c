/*
 * scan_zygote.c - one process that loads the detection engines once and
 * forks the scan workers, so that every worker shares the compiled
 * engines (ClamAV signatures, the spam model, lists) copy-on-write instead
 * of compiling its own copy. With the full ClamAV databases that is
 * hundreds of MB per worker saved, and a replacement worker is ready in a
 * millisecond instead of the seconds a signature compile takes.
 *
 *   scan_zygote_start / _stop   main side: spawn `moatd --scan-zygote` with
 *                               a control socket on fd 3; stop it
 *   scan_zygote_fork            main side: ask for a worker, get its socket
 *                               (SCM_RIGHTS) and pid; thread-safe
 *   scan_zygote_main            the zygote process's loop
 *
 * Protocol on the control socket: the main process writes one byte 'F';
 * the zygote answers with 8 bytes (u32 status, u32 pid, host order - both
 * ends are the same binary) and, when status is 0, the worker's socket as
 * ancillary data. The zygote never opens the store or reads a message: it
 * only forks, so its state stays the clean post-init state. Workers are the
 * zygote's children (it reaps them with SA_NOCLDWAIT); the pool kills a
 * worker by pid and notices its end by EOF on the socket. If the zygote
 * dies, scan_zygote_fork restarts it (at most once per
 * SCAN_ZYGOTE_RESTART_SECONDS) and the pool falls back to spawning workers
 * directly meanwhile.
 */
#include "core/core.h"
#include "scan/scan.h"
#include "detect/detect.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>

extern char **environ;

#define SCAN_ZYGOTE_TIMEOUT_MS 10000 /* one fork answer */
#define SCAN_ZYGOTE_RESTART_SECONDS 10

struct scan_zygote {
    pthread_mutex_t lock;
    char *exe, *config_path;
    pid_t pid;      /* -1: not running */
    int fd;         /* control socket, -1 when not running */
    double last_start;
};

/* zygote_reap - wait for the zygote to exit after its socket was closed,
 * SIGKILL after 5 s */
static void zygote_reap(struct scan_zygote *z)
{
    if (z->fd >= 0)
        close(z->fd);
    z->fd = -1;
    if (z->pid <= 0)
        return;
    for (int i = 0; i < 500; i++) {
        pid_t r = waitpid(z->pid, NULL, WNOHANG);
        if (r == z->pid || (r < 0 && errno != EINTR)) {
            z->pid = -1;
            return;
        }
        usleep(10000);
    }
    kill(z->pid, SIGKILL);
    while (waitpid(z->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    z->pid = -1;
}

/* zygote_spawn - start the zygote process; 0 or -1 (logged) */
static int zygote_spawn(struct scan_zygote *z)
{
    int sv[2];
    z->last_start = core_monotonic();
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        log_error("scan zygote: socketpair: %s", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
    char *argv[] = {z->exe, "--scan-zygote", "-c", z->config_path, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, z->exe, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(sv[1]);
    if (rc != 0) {
        log_error("scan zygote: spawn %s: %s", z->exe, strerror(rc));
        close(sv[0]);
        return -1;
    }
    z->pid = pid;
    z->fd = sv[0];
    return 0;
}

struct scan_zygote *scan_zygote_start(const char *exe, const char *config_path)
{
    struct scan_zygote *z = xcalloc(1, sizeof *z);
    pthread_mutex_init(&z->lock, NULL);
    z->exe = xstrdup(exe);
    z->config_path = xstrdup(config_path);
    z->pid = -1;
    z->fd = -1;
    if (zygote_spawn(z) < 0) {
        scan_zygote_stop(z);
        return NULL;
    }
    return z;
}

void scan_zygote_stop(struct scan_zygote *z)
{
    if (!z)
        return;
    zygote_reap(z);
    pthread_mutex_destroy(&z->lock);
    free(z->exe);
    free(z->config_path);
    free(z);
}

/* ask - one fork request on the running zygote; the worker's fd or -1 */
static int ask(struct scan_zygote *z, pid_t *pid)
{
    char req = 'F';
    ssize_t w;
    while ((w = write(z->fd, &req, 1)) < 0 && errno == EINTR)
        ;
    if (w != 1)
        return -1;
    struct pollfd pfd = {.fd = z->fd, .events = POLLIN};
    int pr;
    while ((pr = poll(&pfd, 1, SCAN_ZYGOTE_TIMEOUT_MS)) < 0 && errno == EINTR)
        ;
    if (pr <= 0)
        return -1;
    uint32_t ans[2];
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } cbuf;
    struct iovec iov = {.iov_base = ans, .iov_len = sizeof ans};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.b, .msg_controllen = sizeof cbuf.b};
    ssize_t n;
    while ((n = recvmsg(z->fd, &m, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
        ;
    int fd = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int))) {
            if (fd >= 0)
                close(fd);
            memcpy(&fd, CMSG_DATA(c), sizeof fd);
        }
    if (n != (ssize_t)sizeof ans || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || ans[0] != 0 || ans[1] == 0 ||
        fd < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *pid = (pid_t)ans[1];
    return fd;
}

int scan_zygote_fork(struct scan_zygote *z, pid_t *pid)
{
    if (!z)
        return -1;
    pthread_mutex_lock(&z->lock);
    int fd = z->fd >= 0 ? ask(z, pid) : -1;
    if (fd < 0) {
        if (z->pid > 0) {
            log_error("scan zygote: not answering, restarting it pid=%d", (int)z->pid);
            kill(z->pid, SIGKILL);
            zygote_reap(z);
        }
        if (core_monotonic() - z->last_start >= SCAN_ZYGOTE_RESTART_SECONDS && zygote_spawn(z) == 0)
            fd = ask(z, pid);
    }
    pthread_mutex_unlock(&z->lock);
    return fd;
}

/* ---------------------------------------------------------------- the zygote process */
/* answer - status, pid and (status 0) the worker's socket */
static int answer(int fd, uint32_t status, pid_t pid, int wfd)
{
    uint32_t ans[2] = {status, (uint32_t)pid};
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } cbuf;
    memset(&cbuf, 0, sizeof cbuf);
    struct iovec iov = {.iov_base = ans, .iov_len = sizeof ans};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (wfd >= 0) {
        m.msg_control = cbuf.b;
        m.msg_controllen = sizeof cbuf.b;
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &wfd, sizeof wfd);
    }
    ssize_t n;
    while ((n = sendmsg(fd, &m, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    return n == (ssize_t)sizeof ans ? 0 : -1;
}

int scan_zygote_main(int fd, const struct moat_config *cfg)
{
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, SIG_IGN); /* the parent decides when we stop */
    signal(SIGHUP, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sa.sa_flags = SA_NOCLDWAIT; /* workers are reaped by the kernel */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
    char err[600], tmp[1024];
    if (scan_tmpdir_resolve(cfg, tmp, sizeof tmp) == 0)
        detect_set_tmpdir(tmp);
    else
        log_warn("scan zygote: scan_tmp_dir %s unusable: libclamav uses TMPDIR", cfg->scan_tmp_dir);
    if (detect_init(cfg, err, sizeof err) < 0)
        log_error("scan zygote: detection runs degraded: %s", err);
    for (;;) {
        char req;
        ssize_t n;
        while ((n = read(fd, &req, 1)) < 0 && errno == EINTR)
            ;
        if (n == 0)
            break; /* moatd closed the socket: normal end */
        if (n < 0 || req != 'F') {
            log_error("scan zygote: malformed request from parent");
            detect_shutdown();
            return 1;
        }
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
            log_error("scan zygote: socketpair: %s", strerror(errno));
            if (answer(fd, 1, 0, -1) < 0)
                break;
            continue;
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(fd);
            close(sv[0]);
            sa.sa_flags = 0;
            sigaction(SIGCHLD, &sa, NULL);
            _exit(scan_worker_serve(sv[1], cfg));
        }
        close(sv[1]);
        if (pid < 0)
            log_error("scan zygote: fork: %s", strerror(errno));
        int rc = answer(fd, pid < 0 ? 1 : 0, pid < 0 ? 0 : pid, pid < 0 ? -1 : sv[0]);
        close(sv[0]);
        if (rc < 0)
            break;
    }
    detect_shutdown();
    return 0;
}

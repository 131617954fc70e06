/*
 * scan_tmpdir.c - the scan workers' temporary directory (config key
 * scan_tmp_dir).
 *
 * libclamav writes temporary files while it scans: a per-scan directory for
 * every scan call, normalised HTML, unpacked archive members and PDF
 * objects. On a disk file system that is a directory and a few inodes
 * created and deleted per attachment - measurable at hundreds of messages a
 * second (ext4 inode allocation showed up as the largest kernel cost in the
 * end-to-end profile, docs/benchmark.md). On tmpfs it is memory only.
 *
 *   scan_tmpdir_resolve  the directory for this configuration:
 *                        scan_tmp_dir when set, else ("auto") a private
 *                        /dev/shm/moat-scan-<hash of data_dir> when /dev/shm
 *                        is a writable tmpfs, else <data_dir>/tmp
 *   scan_tmpdir_prepare  (moatd at start) create it and empty what a
 *                        previous run left behind (a killed worker's files)
 *   scan_tmpdir_remove   (moatd at a clean stop) remove it if empty
 *
 * /dev/shm is world-writable: the directory must be a real directory (not a
 * symlink) owned by us with no group/other access, else it is not used and
 * <data_dir>/tmp is. Memory use is bounded by the engine limits (60 MB of
 * unpacked data per scan call at most) times the scan workers; when tmpfs
 * is full, libclamav's write fails and the scan becomes a scan_exclusion,
 * never "clean".
 */
#include "scan/scan.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#define TMPFS_MAGIC_NUMBER 0x01021994

/* private_dir - path exists (or is created) as a directory of ours, mode 0700 */
static bool private_dir(const char *path)
{
    struct stat st;
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return false;
    if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
        return false;
    return access(path, W_OK | X_OK) == 0;
}

static bool shm_usable(void)
{
    struct statfs fs;
    return statfs("/dev/shm", &fs) == 0 && fs.f_type == TMPFS_MAGIC_NUMBER && access("/dev/shm", W_OK | X_OK) == 0;
}

int scan_tmpdir_resolve(const struct moat_config *cfg, char *out, size_t outsz)
{
    const char *set = cfg->scan_tmp_dir;
    int n;
    if (set && set[0] && strcmp(set, "auto") != 0) {
        n = snprintf(out, outsz, "%s", set);
        return n > 0 && (size_t)n < outsz && private_dir(out) ? 0 : -1;
    }
    if (shm_usable()) {
        char abs[4096];
        const char *dd = realpath(cfg->data_dir, abs) ? abs : cfg->data_dir;
        uint64_t h = 1469598103934665603ULL; /* FNV-1a: one directory per data_dir */
        for (const unsigned char *p = (const unsigned char *)dd; *p; p++)
            h = (h ^ *p) * 1099511628211ULL;
        n = snprintf(out, outsz, "/dev/shm/moat-scan-%016llx", (unsigned long long)h);
        if (n > 0 && (size_t)n < outsz && private_dir(out))
            return 0;
    }
    n = snprintf(out, outsz, "%s/tmp", cfg->data_dir);
    return n > 0 && (size_t)n < outsz && private_dir(out) ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    if (ftw->level > 0)
        remove(path); /* best effort: what cannot go stays */
    return 0;
}

void scan_tmpdir_prepare(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

void scan_tmpdir_remove(const char *dir)
{
    if (strncmp(dir, "/dev/shm/moat-scan-", 19) == 0)
        rmdir(dir); /* only when empty; <data_dir>/tmp stays */
}

/*
 * replay.c - run a fuzz target's LLVMFuzzerTestOneInput over files, without
 * libFuzzer: "replay_<name> DIR|FILE...". Linked with tests/fuzz/fuzz_<name>.c
 * in the ordinary (gcc, ASan+UBSan) test build so every seed and every
 * crash ever found (tests/fuzz/regress/<name>/) is re-run by `make test`.
 * A missing directory is skipped (a target may have no regressions yet).
 * Each input sits in a heap block of exactly its size, as under libFuzzer.
 */
#include "core/core.h"

#include <dirent.h>
#include <sys/stat.h>

#include "fuzz.h"

/* replay_file - 0 when the input ran (a crash aborts), -1 if unreadable */
static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f)
        return -1;
    if (fstat(fileno(f), &st) < 0 || st.st_size < 0) {
        fclose(f);
        return -1;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *data = xmalloc(n ? n : 1);
    if (fread(data, 1, n, f) != n) {
        free(data);
        fclose(f);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(data, n);
    free(data);
    return 0;
}

int main(int argc, char **argv)
{
    unsigned runs = 0, bad = 0;
    for (int a = 1; a < argc; a++) {
        struct stat st;
        if (stat(argv[a], &st) < 0) {
            printf("replay: %s: absent, skipped\n", argv[a]);
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (replay_file(argv[a]) < 0) {
                fprintf(stderr, "replay: cannot read %s\n", argv[a]);
                bad++;
            }
            runs++;
            continue;
        }
        DIR *d = opendir(argv[a]);
        struct dirent *e;
        if (!d) {
            fprintf(stderr, "replay: cannot open %s\n", argv[a]);
            bad++;
            continue;
        }
        while ((e = readdir(d)) != NULL) {
            char path[4096];
            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof path, "%s/%s", argv[a], e->d_name);
            if (replay_file(path) < 0) {
                fprintf(stderr, "replay: cannot read %s\n", path);
                bad++;
            }
            runs++;
        }
        closedir(d);
    }
    printf("replay: %u inputs, %u unreadable\n", runs, bad);
    return bad ? 1 : 0;
}

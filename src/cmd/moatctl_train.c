/*
 * moatctl_train.c - `moatctl train --spam DIR --ham DIR [--out MODEL]
 * [--epochs N] [--bits B]`: train the spam classifier (detect_spam_model.c)
 * on raw messages, one per file (every regular file of the directories, in
 * name order so the model is deterministic), each parsed by mime_analyse
 * exactly as the scan workers do. Writes MODEL (default
 * data/models/spam.model) atomically.
 */
#include "cmd/moatctl.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <sys/stat.h>

#include "detect/detect_int.h"
#include "mime/mime.h"

#define TRAIN_MSG_MAX (64ULL * 1024 * 1024)

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* add_dir - train on every regular file of dir; -1 (message printed) if dir unreadable */
static int add_dir(struct spam_trainer *t, const char *dir, bool spam, size_t *skipped)
{
    DIR *d = opendir(dir);
    if (!d) {
        moatctl_error(MOATCTL_USER, "train: cannot open %s: %s", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            names = xrealloc(names, cap * sizeof *names);
        }
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_str);
    struct mime_limits lim;
    mime_limits_default(&lim);
    for (size_t i = 0; i < n; i++) {
        char path[8192];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        free(names[i]);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        size_t len;
        char *msg = moatctl_read_file(path, TRAIN_MSG_MAX, &len);
        if (!msg) {
            (*skipped)++;
            continue;
        }
        struct analysis *a = mime_analyse(msg, len, &lim);
        free(msg);
        if (!a) {
            (*skipped)++;
            continue;
        }
        spam_trainer_add(t, a, spam);
        analysis_free(a);
    }
    free(names);
    return 0;
}

int moatctl_cmd_train(struct moatctl *ctx, int argc, char **argv)
{
    static const char synopsis[] = "--spam DIR --ham DIR [--out MODEL] [--epochs N] [--bits B]";
    static const struct option opts[] = {{"spam", required_argument, NULL, 's'},
                                         {"ham", required_argument, NULL, 'h'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"epochs", required_argument, NULL, 'e'},
                                         {"bits", required_argument, NULL, 'b'},
                                         {NULL, 0, NULL, 0}};
    const char *spamdir[16], *hamdir[16], *out = "data/models/spam.model";
    size_t nspam = 0, nham = 0;
    uint64_t epochs = 6, bits = SPAM_MODEL_BITS;
    int c;
    (void)ctx;
    moatctl_getopt_reset();
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (nspam == 16)
                return moatctl_usage("train", synopsis, "too many --spam directories");
            spamdir[nspam++] = optarg;
            break;
        case 'h':
            if (nham == 16)
                return moatctl_usage("train", synopsis, "too many --ham directories");
            hamdir[nham++] = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'e':
            if (core_parse_u64(optarg, 100, &epochs) < 0 || epochs == 0)
                return moatctl_usage("train", synopsis, "--epochs: 1..100");
            break;
        case 'b':
            if (core_parse_u64(optarg, 24, &bits) < 0 || bits < 16)
                return moatctl_usage("train", synopsis, "--bits: 16..24");
            break;
        default:
            return moatctl_usage("train", synopsis, "unknown option");
        }
    }
    if (optind < argc)
        return moatctl_usage("train", synopsis, "unexpected argument %s", argv[optind]);
    if (!nspam || !nham)
        return moatctl_usage("train", synopsis, "both --spam and --ham are required");
    struct spam_trainer *t = spam_trainer_new((unsigned)bits);
    size_t skipped = 0;
    for (size_t i = 0; i < nspam; i++)
        if (add_dir(t, spamdir[i], true, &skipped) < 0) {
            spam_trainer_free(t);
            return MOATCTL_USER;
        }
    size_t ns = spam_trainer_count(t);
    for (size_t i = 0; i < nham; i++)
        if (add_dir(t, hamdir[i], false, &skipped) < 0) {
            spam_trainer_free(t);
            return MOATCTL_USER;
        }
    size_t nh = spam_trainer_count(t) - ns;
    if (!ns || !nh) {
        spam_trainer_free(t);
        return moatctl_error(MOATCTL_USER, "train: need at least one spam and one ham message (%zu spam, %zu ham)",
                             ns, nh);
    }
    struct spam_model *m = spam_trainer_finish(t, (unsigned)epochs);
    spam_trainer_free(t);
    char err[600];
    int rc = spam_model_save(m, out, err, sizeof err);
    spam_model_free(m);
    if (rc < 0)
        return moatctl_error(MOATCTL_INTERNAL, "train: %s", err);
    fprintf(stderr, "moatctl: train: %zu spam, %zu ham (%zu unreadable skipped), %u epochs -> %s\n", ns, nh,
            skipped, (unsigned)epochs, out);
    return MOATCTL_OK;
}

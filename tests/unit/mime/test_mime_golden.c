/*
 * test_mime_golden.c - golden tests of the analysis: every
 * tests/golden/mime/NAME.eml is analysed and its JSON compared field by
 * field with NAME.json (a difference names the JSON path, the expected and
 * the actual value). scripts/regen-golden rewrites the .json files from
 * `moatctl scan`; review the diff before committing it.
 *
 *   unit_mime_golden DIR
 */
#include <jansson.h>

#include "core/core.h"

#include <dirent.h>
#include <setjmp.h>
#include <cmocka.h>

#include "mime/mime.h"

static const char *golden_dir;

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct buf b;
    buf_init(&b, 64u << 20);
    char chunk[65536];
    size_t r;
    while ((r = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (buf_append(&b, chunk, r) < 0)
            break;
    fclose(f);
    buf_cstr(&b);
    *len = b.len;
    return b.ptr ? b.ptr : xstrdup("");
}

/* diff - first difference between expected e and actual a under path; 0 if equal */
static int diff(const json_t *e, const json_t *a, const char *path, char *why, size_t whysz)
{
    if (json_typeof(e) != json_typeof(a) && !(json_is_boolean(e) && json_is_boolean(a))) {
        char *es = json_dumps(e, JSON_ENCODE_ANY | JSON_COMPACT),
             *as = json_dumps(a, JSON_ENCODE_ANY | JSON_COMPACT);
        snprintf(why, whysz, "%s: expected %.300s, got %.300s", path, es ? es : "?", as ? as : "?");
        free(es);
        free(as);
        return 1;
    }
    char sub[1024];
    if (json_is_object(e)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)e, k, v)
        {
            snprintf(sub, sizeof sub, "%s.%s", path, k);
            json_t *av = json_object_get(a, k);
            if (!av) {
                snprintf(why, whysz, "%s: missing", sub);
                return 1;
            }
            if (diff(v, av, sub, why, whysz))
                return 1;
        }
        json_object_foreach((json_t *)a, k, v)
        {
            if (!json_object_get(e, k)) {
                snprintf(why, whysz, "%s.%s: not expected (regenerate the golden file?)", path, k);
                return 1;
            }
        }
        return 0;
    }
    if (json_is_array(e)) {
        size_t n = json_array_size(e), m = json_array_size(a);
        for (size_t i = 0; i < n && i < m; i++) {
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            if (diff(json_array_get(e, i), json_array_get(a, i), sub, why, whysz))
                return 1;
        }
        if (n != m) {
            snprintf(why, whysz, "%s: expected %zu elements, got %zu", path, n, m);
            return 1;
        }
        return 0;
    }
    if (!json_equal((json_t *)e, (json_t *)a)) {
        char *es = json_dumps(e, JSON_ENCODE_ANY | JSON_COMPACT),
             *as = json_dumps(a, JSON_ENCODE_ANY | JSON_COMPACT);
        snprintf(why, whysz, "%s: expected %.300s, got %.300s", path, es ? es : "?", as ? as : "?");
        free(es);
        free(as);
        return 1;
    }
    return 0;
}

static void golden_one(void **state)
{
    const char *name = *state;
    char path[4096], jpath[4096];
    snprintf(path, sizeof path, "%s/%s", golden_dir, name);
    snprintf(jpath, sizeof jpath, "%.*s.json", (int)strlen(path) - 4, path);
    size_t len;
    char *msg = read_all(path, &len);
    assert_non_null(msg);
    struct mime_limits lim;
    mime_limits_default(&lim);
    struct analysis *a = mime_analyse(msg, len, &lim);
    assert_non_null(a);
    char *doc = analysis_to_json(a, false);
    assert_non_null(doc);
    json_error_t err;
    json_t *actual = json_loads(doc, 0, &err);
    assert_non_null(actual);
    json_t *expected = json_load_file(jpath, 0, &err);
    if (!expected)
        fail_msg("%s: %s (run scripts/regen-golden and review the diff)", jpath, err.text);
    char why[2048];
    if (diff(expected, actual, name, why, sizeof why))
        fail_msg("%s", why);
    json_decref(expected);
    json_decref(actual);
    free(doc);
    analysis_free(a);
    free(msg);
}

static int cmp_names(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

int main(int argc, char **argv)
{
    golden_dir = argc > 1 ? argv[1] : "tests/golden/mime";
    DIR *d = opendir(golden_dir);
    if (!d) {
        fprintf(stderr, "golden: cannot open %s\n", golden_dir);
        return 1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".eml") == 0) {
            names = xrealloc(names, (n + 1) * sizeof *names);
            names[n++] = xstrdup(e->d_name);
        }
    }
    closedir(d);
    if (!n) {
        fprintf(stderr, "golden: no .eml in %s\n", golden_dir);
        return 1;
    }
    qsort(names, n, sizeof *names, cmp_names);
    struct CMUnitTest *tests = xcalloc(n, sizeof *tests);
    for (size_t i = 0; i < n; i++) {
        tests[i].name = names[i];
        tests[i].test_func = golden_one;
        tests[i].initial_state = names[i];
    }
    int rc = _cmocka_run_group_tests("mime_golden", tests, n, NULL, NULL);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(tests);
    return rc;
}

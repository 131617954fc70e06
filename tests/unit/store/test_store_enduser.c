/* test_store_enduser.c - End User Console accounts and settings: the
 * password rules, CSV parsing and writing, accounts in verified domains
 * only, tenant scope, the password-set code (wrong, too many tries,
 * expired, used up, disabled), the all-or-nothing import, and the
 * "end_user_console" settings in the tenant document. */
#include <ctype.h>

#include "store_test.h"

/* ---------------------------------------------------------------- pure rules */
static void test_password_rules(void **state)
{
    (void)state;
    static const struct {
        const char *pw;
        bool ok;
    } cases[] = {
        {"Abcdefg1", true},                          /* 8: the minimum */
        {"Abcdef1", false},                          /* 7 */
        {"Abcdefghijklmnopqrstuvwxyz123456", true},  /* 32 */
        {"Abcdefghijklmnopqrstuvwxyz1234567", false}, /* 33 */
        {"abcdefg1", false},                         /* no upper-case */
        {"ABCDEFG1", false},                         /* no lower-case */
        {"Abcdefgh", false},                         /* no digit */
        {" Abcdefg1", false},                        /* leading space */
        {"Abcdefg1 ", false},                        /* trailing space */
        {"Abc defg1", true},                         /* a space inside is fine */
        {"Abcdefg1\t", false},                       /* control character */
        {"Abcdefg\x01" "1", false},
        {"Aaいうえおか1", true},                    /* 8 characters, 18 bytes */
        {"Aaいうえお1", false},                     /* 7 characters */
        {"Abcdefg1\xff", false},                     /* invalid UTF-8 */
        {"", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *why = store_enduser_password_weak(cases[i].pw);
        if ((why == NULL) != cases[i].ok)
            fail_msg("case %zu \"%s\": %s", i, cases[i].pw, why ? why : "accepted");
    }
    assert_string_equal(store_enduser_password_weak("abcdefg1"),
                        "the password needs at least one lower-case letter, one upper-case letter and one digit");
    assert_string_equal(store_enduser_password_weak("Abc1"), "the password must be 8 to 32 characters long");
}

static void test_address_and_name(void **state)
{
    (void)state;
    char out[300];
    assert_null(store_enduser_address("Alice.Smith@Acme.TEST", out, sizeof out));
    assert_string_equal(out, "alice.smith@acme.test");
    assert_non_null(store_enduser_address("alice", out, sizeof out));
    assert_non_null(store_enduser_address("a b@acme.test", out, sizeof out));
    assert_non_null(store_enduser_address("", out, sizeof out));
    assert_null(store_enduser_name(""));
    assert_null(store_enduser_name("山田 太郎"));
    assert_non_null(store_enduser_name("bad\nname"));
    char longname[200];
    memset(longname, 'x', 129);
    longname[129] = '\0';
    assert_non_null(store_enduser_name(longname));
    longname[128] = '\0';
    assert_null(store_enduser_name(longname));
}

/* parse - store_enduser_csv_parse of a string */
static int parse(const char *csv, struct store_enduser_row **rows, size_t *n, struct store_enduser_import *res)
{
    return store_enduser_csv_parse(csv, strlen(csv), rows, n, res);
}

static void test_csv_parse_good(void **state)
{
    (void)state;
    struct store_enduser_row *rows;
    size_t n;
    struct store_enduser_import res;
    const char *csv = "\xEF\xBB\xBF" "Email, Name ,enabled\r\n"
                      "Alice@Acme.test,\"Smith, Alice\",true\r\n"
                      "\r\n"
                      "bob@acme.test,\"'=HYPERLINK(\"\"x\"\")\",no\n"
                      "carol@acme.test,\"multi\nline? no\",\n";
    /* a line break inside a name is a control character: refused on line 5 */
    assert_int_equal(parse(csv, &rows, &n, &res), 1);
    assert_int_equal(res.nerrors, 1);
    assert_int_equal(res.errors[0].line, 5);
    assert_string_equal(res.errors[0].error, "name: the name must not contain control characters");
    store_enduser_import_free(&res);

    csv = "\xEF\xBB\xBF" "Email, Name ,enabled\r\n"
          "Alice@Acme.test,\"Smith, Alice\",true\r\n"
          "\r\n"
          "bob@acme.test,\"'=HYPERLINK(\"\"x\"\")\",no\n"
          "carol@acme.test,,\n";
    assert_int_equal(parse(csv, &rows, &n, &res), 0);
    assert_int_equal(n, 3);
    assert_string_equal(rows[0].email, "alice@acme.test");
    assert_string_equal(rows[0].name, "Smith, Alice");
    assert_int_equal(rows[0].enabled, 1);
    assert_int_equal(rows[0].line, 2);
    assert_string_equal(rows[1].name, "=HYPERLINK(\"x\")"); /* the export's ' is dropped */
    assert_int_equal(rows[1].enabled, 0);
    assert_int_equal(rows[1].line, 4);
    assert_string_equal(rows[2].name, "");
    assert_int_equal(rows[2].enabled, -1);
    store_enduser_rows_free(rows, n);

    /* email only; header only = nothing to do */
    assert_int_equal(parse("email\nx@acme.test\n", &rows, &n, &res), 0);
    assert_int_equal(n, 1);
    assert_null(rows[0].name);
    store_enduser_rows_free(rows, n);
    /* a short row: the missing fields are absent */
    assert_int_equal(parse("email,name,enabled\nx@acme.test\n", &rows, &n, &res), 0);
    assert_int_equal(n, 1);
    assert_null(rows[0].name);
    assert_int_equal(rows[0].enabled, -1);
    store_enduser_rows_free(rows, n);
    assert_int_equal(parse("email,name\n", &rows, &n, &res), 0);
    assert_int_equal(n, 0);
    store_enduser_rows_free(rows, n);
}

static void test_csv_parse_errors(void **state)
{
    (void)state;
    static const struct {
        const char *csv;
        unsigned line;
        const char *error;
    } cases[] = {
        {"", 1, "the file is empty (expected a header row: email,name,enabled)"},
        {"name\nBob\n", 1, "the header row has no email column (expected: email,name,enabled)"},
        {"email,phone\n", 1,
         "unknown column \"phone\" (the header row names the columns: email, and optionally name and enabled)"},
        {"email,email\n", 1, "column email appears twice"},
        {"email,name\na@acme.test,x,y\n", 2, "3 fields, but the header row has 2"},
        {"name,email\nBob\n", 2, "email: missing"},
        {"email\nnot-an-address\n", 2, "email \"not-an-address\": must be an e-mail address (local-part@domain)"},
        {"email,enabled\na@acme.test,maybe\n", 2, "enabled: must be true or false (or empty)"},
        {"email\na@acme.test\nb@acme.test\nA@ACME.test\n", 4, "a@acme.test appears twice (first on line 2)"},
        {"email,name\na@acme.test,\"unterminated\n", 2,
         "malformed quotes (a quoted field must end with a quote followed by a comma or the line end; a quote "
         "inside is written \"\")"},
        {"email,name\na@acme.test,x\"y\n", 2,
         "malformed quotes (a quoted field must end with a quote followed by a comma or the line end; a quote "
         "inside is written \"\")"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct store_enduser_row *rows;
        size_t n;
        struct store_enduser_import res;
        if (parse(cases[i].csv, &rows, &n, &res) != 1)
            fail_msg("case %zu accepted", i);
        assert_true(res.nerrors >= 1);
        if (res.errors[0].line != cases[i].line || strcmp(res.errors[0].error, cases[i].error) != 0)
            fail_msg("case %zu: line %u: %s", i, res.errors[0].line, res.errors[0].error);
        store_enduser_import_free(&res);
    }
    /* a NUL byte */
    struct store_enduser_row *rows;
    size_t n;
    struct store_enduser_import res;
    assert_int_equal(store_enduser_csv_parse("email\na\0b@acme.test\n", 20, &rows, &n, &res), 1);
    assert_string_equal(res.errors[0].error, "NUL byte in the data");
    store_enduser_import_free(&res);
    /* every row error is reported, up to the limit */
    struct buf b;
    buf_init(&b, 1 << 20);
    buf_append_str(&b, "email\n");
    for (int i = 0; i < 150; i++)
        buf_printf(&b, "bad%d\n", i);
    assert_int_equal(store_enduser_csv_parse(b.ptr, b.len, &rows, &n, &res), 1);
    assert_int_equal(res.nerrors, STORE_EUSER_ERRORS_MAX);
    assert_int_equal(res.errors[0].line, 2);
    assert_int_equal(res.errors[99].line, 101);
    store_enduser_import_free(&res);
    /* rows: max is fine, max + 1 is refused; size: max + 1 bytes refused */
    buf_reset(&b);
    buf_append_str(&b, "email\n");
    for (int i = 0; i < STORE_EUSER_IMPORT_MAX; i++)
        buf_printf(&b, "u%d@acme.test\n", i);
    assert_int_equal(store_enduser_csv_parse(b.ptr, b.len, &rows, &n, &res), 0);
    assert_int_equal(n, STORE_EUSER_IMPORT_MAX);
    store_enduser_rows_free(rows, n);
    buf_append_str(&b, "one.more@acme.test\n");
    assert_int_equal(store_enduser_csv_parse(b.ptr, b.len, &rows, &n, &res), 1);
    assert_int_equal(res.errors[0].line, STORE_EUSER_IMPORT_MAX + 2);
    assert_string_equal(res.errors[0].error, "too many rows (at most 10000 per import)");
    store_enduser_import_free(&res);
    buf_free(&b);
    assert_int_equal(store_enduser_csv_parse("email\n", STORE_EUSER_CSV_MAX + 1, &rows, &n, &res), 1);
    assert_int_equal(res.errors[0].line, 0);
    store_enduser_import_free(&res);
}

static void test_csv_write_round_trip(void **state)
{
    (void)state;
    struct store_enduser u[3];
    memset(u, 0, sizeof u);
    core_strlcpy(u[0].email, "alice@acme.test", sizeof u[0].email);
    core_strlcpy(u[0].name, "Smith, \"Al\"", sizeof u[0].name);
    u[0].enabled = true;
    u[0].created = 1700000000;
    core_strlcpy(u[1].email, "bob@acme.test", sizeof u[1].email);
    core_strlcpy(u[1].name, "=cmd|' /C calc'!A0", sizeof u[1].name);
    u[1].password_set = true;
    u[1].created = 1700000000;
    u[1].last_login = 1700000100.5;
    core_strlcpy(u[2].email, "carol@acme.test", sizeof u[2].email);
    core_strlcpy(u[2].name, "@SUM(1)", sizeof u[2].name);
    u[2].enabled = true;
    struct buf b;
    buf_init(&b, 1 << 16);
    assert_int_equal(store_enduser_csv_write(&b, u, 3), 0);
    assert_string_equal(buf_cstr(&b), "email,name,enabled,password_set,created,last_login\r\n"
                                      "alice@acme.test,\"Smith, \"\"Al\"\"\",true,false,2023-11-14T22:13:20.000Z,\r\n"
                                      "bob@acme.test,\"'=cmd|' /C calc'!A0\",false,true,2023-11-14T22:13:20.000Z,"
                                      "2023-11-14T22:15:00.500Z\r\n"
                                      "carol@acme.test,\"'@SUM(1)\",true,false,1970-01-01T00:00:00.000Z,\r\n");
    struct store_enduser_row *rows;
    size_t n;
    struct store_enduser_import res;
    assert_int_equal(store_enduser_csv_parse(b.ptr, b.len, &rows, &n, &res), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(rows[i].email, u[i].email);
        assert_string_equal(rows[i].name, u[i].name);
        assert_int_equal(rows[i].enabled, u[i].enabled);
    }
    store_enduser_rows_free(rows, n);
    /* a full buffer is an error, not a cut file */
    struct buf small;
    buf_init(&small, 60);
    assert_int_equal(store_enduser_csv_write(&small, u, 3), -1);
    buf_free(&small);
    buf_free(&b);
}

/* ---------------------------------------------------------------- accounts */
static void two_tenants(struct tenv *e)
{
    import_ok(e->st, TEST_DOC, false);
    import_ok(e->st, BETA_DOC, false);
    assert_int_equal(store_domain_set_verified(e->st, "acme", "acme.test", true), 0);
    assert_int_equal(store_domain_set_verified(e->st, "beta", "beta.test", true), 0);
}

static int64_t add(struct tenv *e, const char *tenant, const char *email, const char *name, int want)
{
    struct store_enduser u;
    memset(&u, 0, sizeof u);
    core_strlcpy(u.company_id, tenant, sizeof u.company_id);
    core_strlcpy(u.email, email, sizeof u.email);
    core_strlcpy(u.name, name, sizeof u.name);
    u.enabled = true;
    char err[300] = "";
    int rc = store_enduser_add(e->st, &u, err, sizeof err);
    if (rc != want)
        fail_msg("add %s to %s: %d %s", email, tenant, rc, err);
    return rc == 0 ? u.id : 0;
}

static void test_accounts(void **state)
{
    struct tenv *e = *state;
    two_tenants(e);
    int64_t a = add(e, "acme", "Alice@ACME.test", "Alice", 0);
    add(e, "acme", "bob@acme.test", "Bob Builder", 0);
    add(e, "acme", "alice@acme.test", "", 1);     /* exists (case-insensitive) */
    add(e, "acme", "x@acme2.test", "", 1);        /* acme2.test is not verified */
    add(e, "acme", "x@beta.test", "", 1);         /* another tenant's domain */
    add(e, "nosuch", "x@acme.test", "", 1);
    add(e, "acme", "bad address", "", 1);
    int64_t b = add(e, "beta", "alice@beta.test", "Beta Alice", 0);
    assert_int_equal(store_enduser_count(e->st, "acme"), 2);

    struct store_enduser u;
    assert_int_equal(store_enduser_get(e->st, "acme", a, &u), 0);
    assert_string_equal(u.email, "alice@acme.test");
    assert_true(u.enabled && !u.password_set && u.created > 0);
    assert_int_equal(store_enduser_get(e->st, "acme", b, &u), 1); /* beta's: not found */
    assert_int_equal(store_enduser_get(e->st, NULL, b, &u), 0);   /* operator */
    assert_int_equal(store_enduser_update(e->st, "acme", b, false, "x"), 1);
    assert_int_equal(store_enduser_delete(e->st, "acme", b), 1);
    assert_int_equal(store_enduser_get(e->st, "beta", b, &u), 0);
    assert_true(u.enabled);

    /* search (address or name, case-insensitive, LIKE wildcards literal) and paging */
    struct store_enduser *v;
    long total;
    struct store_enduser_query q = {.company_id = "acme", .search = "BUILD"};
    assert_int_equal(store_enduser_list(e->st, &q, &v, &total), 1);
    assert_string_equal(v[0].email, "bob@acme.test");
    free(v);
    q.search = "%";
    assert_int_equal(store_enduser_list(e->st, &q, &v, &total), 0);
    assert_int_equal(total, 0);
    free(v);
    q = (struct store_enduser_query){.company_id = "acme", .offset = 1, .limit = 1};
    assert_int_equal(store_enduser_list(e->st, &q, &v, &total), 1);
    assert_int_equal(total, 2);
    assert_string_equal(v[0].email, "bob@acme.test");
    free(v);

    assert_int_equal(store_enduser_update(e->st, "acme", a, false, "Alice S."), 0);
    assert_int_equal(store_enduser_find(e->st, "acme", "alice@acme.test", &u), 0);
    assert_false(u.enabled);
    assert_string_equal(u.name, "Alice S.");
    assert_int_equal(store_enduser_delete(e->st, "acme", a), 0);
    assert_int_equal(store_enduser_find(e->st, "acme", "alice@acme.test", &u), 1);
    assert_int_equal(store_enduser_delete(e->st, "acme", a), 1);
    /* accounts are data: a document import keeps them */
    import_ok(e->st, TEST_DOC, false);
    assert_int_equal(store_enduser_count(e->st, "acme"), 1);
}

static void test_code(void **state)
{
    struct tenv *e = *state;
    two_tenants(e);
    int64_t id = add(e, "acme", "carol@acme.test", "Carol", 0);
    double now = core_now();
    char code[STORE_EUSER_CODE_LEN + 1], code2[STORE_EUSER_CODE_LEN + 1];
    assert_int_equal(store_enduser_code_use(e->st, "acme", "carol@acme.test", "AAAAA-AAAAA", NULL, now),
                     STORE_CODE_NONE);
    assert_int_equal(store_enduser_code_new(e->st, "beta", id, now, code), 1); /* another tenant's */
    assert_int_equal(store_enduser_code_new(e->st, "acme", id, now, code), 0);
    assert_int_equal(strlen(code), STORE_EUSER_CODE_LEN);
    assert_int_equal(code[5], '-');
    struct store_enduser u;
    assert_int_equal(store_enduser_get(e->st, "acme", id, &u), 0);
    assert_true(u.code_expires > now + STORE_EUSER_CODE_TTL - 1 && u.code_sent >= now);
    /* the code of another tenant's address, or of nobody */
    assert_int_equal(store_enduser_code_use(e->st, "beta", "carol@acme.test", code, NULL, now), STORE_CODE_NONE);
    assert_int_equal(store_enduser_code_use(e->st, "acme", "nobody@acme.test", code, NULL, now), STORE_CODE_NONE);
    /* expired after 30 minutes */
    assert_int_equal(store_enduser_code_use(e->st, "acme", "carol@acme.test", code, NULL, now + 1801),
                     STORE_CODE_EXPIRED);
    /* a new code replaces the old one */
    assert_int_equal(store_enduser_code_new(e->st, "acme", id, now, code2), 0);
    if (strcmp(code, code2) != 0)
        assert_int_equal(store_enduser_code_use(e->st, "acme", "carol@acme.test", code, NULL, now),
                         STORE_CODE_WRONG);
    /* case, spaces and hyphens do not matter; a match sets the password and uses the code up */
    char loose[32];
    snprintf(loose, sizeof loose, " %.5s %s ", code2, code2 + 6);
    for (char *p = loose; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    assert_int_equal(store_enduser_code_use(e->st, "acme", "carol@acme.test", loose, "$argon2id$fake", now),
                     STORE_CODE_OK);
    assert_int_equal(store_enduser_get(e->st, "acme", id, &u), 0);
    assert_true(u.password_set);
    assert_string_equal(u.pwhash, "$argon2id$fake");
    assert_int_equal(u.code_expires, 0);
    assert_int_equal(store_enduser_code_use(e->st, "acme", "carol@acme.test", code2, NULL, now), STORE_CODE_NONE);

    /* five wrong tries end a code, even the right one afterwards */
    assert_int_equal(store_enduser_code_new(e->st, "acme", id, now, code), 0);
    for (int i = 0; i < STORE_EUSER_CODE_TRIES; i++)
        assert_int_equal(store_enduser_code_use(e->st, "acme", "carol@acme.test", "not a code", NULL, now),
                         STORE_CODE_WRONG);
    assert_int_equal(store_enduser_code_use(e->st, "acme", "carol@acme.test", code, NULL, now), STORE_CODE_EXPIRED);
    /* a disabled account cannot use its code */
    assert_int_equal(store_enduser_code_new(e->st, "acme", id, now, code), 0);
    assert_int_equal(store_enduser_update(e->st, "acme", id, false, "Carol"), 0);
    assert_int_equal(store_enduser_code_use(e->st, "acme", "carol@acme.test", code, NULL, now), STORE_CODE_DISABLED);
    assert_int_equal(store_enduser_login_ok(e->st, id, now), 0);
    assert_int_equal(store_enduser_get(e->st, "acme", id, &u), 0);
    assert_true(u.last_login > 0);
}

static void test_import(void **state)
{
    struct tenv *e = *state;
    two_tenants(e);
    add(e, "acme", "old@acme.test", "Old", 0);
    const char *csv = "email,name,enabled\nnew1@acme.test,New One,\nold@acme.test,Old Renamed,false\n"
                      "new2@acme.test,,true\n";
    struct store_enduser_row *rows;
    size_t n;
    struct store_enduser_import res;
    assert_int_equal(store_enduser_csv_parse(csv, strlen(csv), &rows, &n, &res), 0);
    assert_int_equal(store_enduser_import(e->st, "acme", rows, n, &res), 0);
    assert_int_equal(res.created, 2);
    assert_int_equal(res.updated, 1);
    assert_int_equal(res.unchanged, 0);
    struct store_enduser u;
    assert_int_equal(store_enduser_get(e->st, "acme", res.created_ids[0], &u), 0);
    assert_string_equal(u.email, "new1@acme.test");
    assert_true(u.enabled);
    store_enduser_import_free(&res);
    assert_int_equal(store_enduser_find(e->st, "acme", "old@acme.test", &u), 0);
    assert_false(u.enabled);
    assert_string_equal(u.name, "Old Renamed");
    /* the same file again changes nothing */
    assert_int_equal(store_enduser_import(e->st, "acme", rows, n, &res), 0);
    assert_int_equal(res.created + res.updated, 0);
    assert_int_equal(res.unchanged, 3);
    store_enduser_import_free(&res);
    /* beta cannot import acme's addresses */
    assert_int_equal(store_enduser_import(e->st, "beta", rows, n, &res), 1);
    assert_int_equal(res.nerrors, 3);
    assert_int_equal(res.errors[0].line, 2);
    assert_string_equal(res.errors[0].error, "new1@acme.test is not in a verified domain of tenant beta");
    store_enduser_import_free(&res);
    store_enduser_rows_free(rows, n);
    /* one bad row: nothing applied */
    csv = "email\nnew3@acme.test\nx@acme2.test\n";
    assert_int_equal(store_enduser_csv_parse(csv, strlen(csv), &rows, &n, &res), 0);
    assert_int_equal(store_enduser_import(e->st, "acme", rows, n, &res), 1);
    assert_int_equal(res.nerrors, 1);
    assert_int_equal(res.errors[0].line, 3);
    store_enduser_import_free(&res);
    store_enduser_rows_free(rows, n);
    assert_int_equal(store_enduser_find(e->st, "acme", "new3@acme.test", &u), 1);
    assert_int_equal(store_enduser_count(e->st, "acme"), 3);
}

/* ---------------------------------------------------------------- settings */
static void test_settings(void **state)
{
    struct tenv *e = *state;
    two_tenants(e);
    json_t *j;
    struct store_euc s;
    assert_int_equal(store_euc_get(e->st, "acme", &j, &s), 0);
    assert_false(s.enabled);
    assert_true(s.local_accounts);
    assert_int_equal(s.ncategories, 2);
    json_decref(j);
    assert_int_equal(store_euc_get(e->st, "nosuch", &j, &s), 1);

    char err[300];
    json_t *canon, *in = json_pack("{s:b,s:[s]}", "enabled", 1, "quarantine_categories", "phishing");
    assert_int_equal(store_euc_validate(in, &canon, err, sizeof err), 0);
    json_decref(in);
    int64_t v0 = store_config_version(e->st);
    assert_int_equal(store_euc_set(e->st, "acme", canon, "unit"), 0);
    assert_int_equal(store_config_version(e->st), v0 + 1);
    assert_int_equal(store_euc_set(e->st, "acme", canon, "unit"), 0); /* unchanged: no new version */
    assert_int_equal(store_config_version(e->st), v0 + 1);
    assert_int_equal(store_euc_set(e->st, "nosuch", canon, "unit"), 1);
    json_decref(canon);
    assert_int_equal(store_euc_get(e->st, "acme", &j, &s), 0);
    assert_true(s.enabled);
    assert_int_equal(s.ncategories, 1);
    assert_string_equal(s.categories[0], "phishing");
    json_decref(j);
    assert_int_equal(db_count(e, "SELECT COUNT(*) FROM audit_log WHERE action = 'euc.settings'"), 1);

    /* the tenant document carries it: export | import | export is stable */
    char *doc = store_export_json(e->st, "acme", err, sizeof err);
    assert_non_null(doc);
    json_t *parsed = json_loads(doc, 0, NULL), *want = json_loads("{\"enabled\": true, \"local_accounts\": true, "
                                                                "\"enforce_2fa\": false, \"quarantine_categories\": "
                                                                "[\"phishing\"]}", 0, NULL);
    assert_true(json_equal(json_object_get(json_array_get(json_object_get(parsed, "tenants"), 0), "end_user_console"),
                           want));
    json_decref(parsed);
    json_decref(want);
    import_ok(e->st, doc, false);
    char *again = store_export_json(e->st, "acme", err, sizeof err);
    assert_string_equal(doc, again);
    free(doc);
    free(again);
    /* a document without the key: the defaults (the tenant is replaced as a whole) */
    import_ok(e->st, TEST_DOC, false);
    assert_int_equal(store_euc_get(e->st, "acme", &j, &s), 0);
    assert_false(s.enabled);
    json_decref(j);

    /* validation names the path */
    static const struct {
        const char *json, *error;
    } bad[] = {
        {"{\"enabled\": 1}", "enabled: must be true or false"},
        {"{\"sso\": true}", "sso: unknown key"},
        {"{\"quarantine_categories\": [\"spam\", \"spam\"]}", "quarantine_categories[1]: duplicate value"},
        {"{\"quarantine_categories\": [\"ham\"]}",
         "quarantine_categories[0]: must be one of: spam, phishing, graymail, bec, web_reputation, "
         "social_engineering, virus, content"},
        {"[]", "must be an object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *x = json_loads(bad[i].json, 0, NULL);
        assert_int_equal(store_euc_validate(x, &canon, err, sizeof err), -1);
        if (strstr(err, bad[i].error) == NULL)
            fail_msg("case %zu: %s", i, err);
        json_decref(x);
    }
    char doc_err[600];
    const char *bad_doc = "{\"tenants\": [{\"company_id\": \"acme\", \"end_user_console\": {\"enabled\": \"yes\"}}]}";
    assert_int_equal(import_str(e->st, bad_doc, false, doc_err, sizeof doc_err), 1);
    assert_string_equal(doc_err, "tenants[0].end_user_console.enabled: must be true or false");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_password_rules),
        cmocka_unit_test(test_address_and_name),
        cmocka_unit_test(test_csv_parse_good),
        cmocka_unit_test(test_csv_parse_errors),
        cmocka_unit_test(test_csv_write_round_trip),
        cmocka_unit_test_setup_teardown(test_accounts, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_code, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_import, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_settings, tenv_setup, tenv_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * store_sqlite.c - the SQLite backend: opening the database, migrations,
 * prepared-statement cache, transactions, config version, audit log.
 *
 *   store_open / store_close     one connection (data_dir/moat.db, WAL)
 *   store_config_version         the tenant-data version (meta table)
 *   store_stmt, store_begin ...  helpers for the other store_*.c files
 *
 * The database lives in data_dir (created with mode 0700 when missing; the
 * file itself is 0600). Every statement is prepared; values are always bound,
 * never formatted into SQL. Migrations are numbered (schema_migrations), each
 * applied in its own BEGIN IMMEDIATE transaction at open, so several
 * processes opening a fresh database at once apply each exactly once. A
 * database newer than this code is refused rather than guessed at.
 * `database = postgresql://...` is refused until that backend exists.
 */
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>

/* ---------------------------------------------------------------- migrations */
/* Never edit a migration that has shipped: add a new one. */
static const char *const store_migrations[] = {
    /* 1: the tenant document */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO meta(key, value) VALUES('config_version', 0);"
    "CREATE TABLE tenants("
    "  id INTEGER PRIMARY KEY,"
    "  company_id TEXT NOT NULL UNIQUE COLLATE NOCASE,"
    "  name TEXT NOT NULL,"
    "  admin_email TEXT,"
    "  created REAL NOT NULL,"
    "  updated REAL NOT NULL);"
    "CREATE TABLE domains("
    "  id INTEGER PRIMARY KEY,"
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  position INTEGER NOT NULL,"
    "  name TEXT NOT NULL,"
    "  verified INTEGER NOT NULL DEFAULT 0,"
    "  verification_token TEXT NOT NULL,"
    "  tls TEXT NOT NULL,"
    "  outbound_enabled INTEGER NOT NULL,"
    "  has_recipients INTEGER NOT NULL,"
    "  doc TEXT NOT NULL,"
    "  created REAL NOT NULL,"
    "  UNIQUE(tenant_id, name));"
    "CREATE INDEX domains_name ON domains(name);"
    "CREATE UNIQUE INDEX domains_verified_name ON domains(name) WHERE verified = 1;"
    "CREATE TABLE domain_servers("
    "  domain_id INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,"
    "  position INTEGER NOT NULL,"
    "  host TEXT NOT NULL,"
    "  port INTEGER NOT NULL,"
    "  preference INTEGER NOT NULL,"
    "  PRIMARY KEY(domain_id, position)) WITHOUT ROWID;"
    "CREATE TABLE domain_recipients("
    "  domain_id INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,"
    "  address TEXT NOT NULL,"
    "  PRIMARY KEY(domain_id, address)) WITHOUT ROWID;"
    "CREATE TABLE domain_sending_servers("
    "  domain_id INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,"
    "  position INTEGER NOT NULL,"
    "  cidr TEXT NOT NULL,"
    "  PRIMARY KEY(domain_id, position)) WITHOUT ROWID;"
    "CREATE TABLE policies("
    "  id INTEGER PRIMARY KEY,"
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  position INTEGER NOT NULL,"
    "  name TEXT NOT NULL,"
    "  direction TEXT NOT NULL CHECK(direction IN ('inbound', 'outbound')),"
    "  enabled INTEGER NOT NULL,"
    "  doc TEXT NOT NULL);"
    "CREATE INDEX policies_tenant ON policies(tenant_id, position);"
    "CREATE TABLE sender_lists("
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  list TEXT NOT NULL CHECK(list IN ('approved', 'blocked')),"
    "  position INTEGER NOT NULL,"
    "  entry TEXT NOT NULL,"
    "  PRIMARY KEY(tenant_id, list, position)) WITHOUT ROWID;"
    "CREATE TABLE high_profile_domains("
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  position INTEGER NOT NULL,"
    "  name TEXT NOT NULL,"
    "  PRIMARY KEY(tenant_id, position)) WITHOUT ROWID;"
    "CREATE TABLE high_profile_users("
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  position INTEGER NOT NULL,"
    "  name TEXT NOT NULL,"
    "  address TEXT NOT NULL,"
    "  PRIMARY KEY(tenant_id, position)) WITHOUT ROWID;"
    "CREATE TABLE audit_log("
    "  id INTEGER PRIMARY KEY,"
    "  time REAL NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  company_id TEXT,"
    "  detail TEXT);"
    "CREATE INDEX audit_log_time ON audit_log(time);",

    /* 2: message tracking */
    "CREATE TABLE track_messages("
    "  id INTEGER PRIMARY KEY,"
    "  qid TEXT NOT NULL UNIQUE,"
    "  time REAL NOT NULL,"
    "  direction TEXT,"
    "  client_ip TEXT,"
    "  helo TEXT,"
    "  tls TEXT,"
    "  sender TEXT COLLATE NOCASE,"
    "  size INTEGER NOT NULL DEFAULT 0,"
    "  message_id TEXT,"
    "  subject TEXT,"
    "  header_from TEXT,"
    "  action TEXT,"
    "  reason TEXT);"
    "CREATE INDEX track_messages_time ON track_messages(time);"
    "CREATE INDEX track_messages_sender ON track_messages(sender, time);"
    "CREATE TABLE track_recipients("
    "  id INTEGER PRIMARY KEY,"
    "  message INTEGER NOT NULL REFERENCES track_messages(id) ON DELETE CASCADE,"
    "  rcpt TEXT NOT NULL COLLATE NOCASE,"
    "  company_id TEXT COLLATE NOCASE,"
    "  status TEXT,"
    "  time REAL NOT NULL,"
    "  server TEXT,"
    "  tls TEXT,"
    "  reply TEXT,"
    "  UNIQUE(message, rcpt));"
    "CREATE INDEX track_recipients_rcpt ON track_recipients(rcpt);"
    "CREATE INDEX track_recipients_company ON track_recipients(company_id, message);"
    "CREATE TABLE track_events("
    "  id INTEGER PRIMARY KEY,"
    "  message INTEGER NOT NULL REFERENCES track_messages(id) ON DELETE CASCADE,"
    "  time REAL NOT NULL,"
    "  rcpt TEXT COLLATE NOCASE,"
    "  company_id TEXT COLLATE NOCASE,"
    "  event TEXT NOT NULL,"
    "  detail TEXT);"
    "CREATE INDEX track_events_message ON track_events(message, time);",
    /* 3: tenant lists for the detectors and the inspection engine */
    "CREATE TABLE tenant_lists("
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  list TEXT NOT NULL CHECK(list IN ('url_blocked', 'url_approved', 'file_password')),"
    "  position INTEGER NOT NULL,"
    "  entry TEXT NOT NULL,"
    "  PRIMARY KEY(tenant_id, list, position)) WITHOUT ROWID;",
    /* 4: writing-style profiles (store_style.c) */
    "CREATE TABLE style_profiles("
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  address TEXT NOT NULL COLLATE NOCASE,"
    "  profile BLOB NOT NULL,"
    "  updated REAL NOT NULL,"
    "  PRIMARY KEY(tenant_id, address)) WITHOUT ROWID;",
    /* 5: the quarantine index (store_quarantine.c; the files: src/quarantine) */
    "CREATE TABLE quarantine("
    "  id TEXT PRIMARY KEY,"
    "  company_id TEXT NOT NULL COLLATE NOCASE,"
    "  qid TEXT NOT NULL,"
    "  time REAL NOT NULL,"
    "  rcpt TEXT NOT NULL COLLATE NOCASE,"
    "  sender TEXT NOT NULL,"
    "  header_from TEXT,"
    "  subject TEXT,"
    "  size INTEGER NOT NULL,"
    "  stored_size INTEGER NOT NULL,"
    "  sha256 TEXT NOT NULL,"
    "  rule TEXT,"
    "  rule_order INTEGER NOT NULL DEFAULT 0,"
    "  reason TEXT,"
    "  detections TEXT,"
    "  scan TEXT,"
    "  direction TEXT NOT NULL DEFAULT 'inbound',"
    "  orcpt TEXT,"
    "  envid TEXT,"
    "  client_ip TEXT,"
    "  helo TEXT,"
    "  smtputf8 INTEGER NOT NULL DEFAULT 0,"
    "  eightbit INTEGER NOT NULL DEFAULT 0,"
    "  released REAL,"
    "  released_qid TEXT,"
    "  release_done INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX quarantine_tenant ON quarantine(company_id, time);"
    "CREATE INDEX quarantine_rcpt ON quarantine(rcpt, time);"
    "CREATE INDEX quarantine_time ON quarantine(time);",
    /* 6: domain verification state (store_verify.c): when the DNS check runs
     * next, consecutive failures (back-off), the last result, how and when
     * the domain was verified, and whether a verified domain's record has
     * gone missing (alerted once) */
    "ALTER TABLE domains ADD COLUMN check_next REAL NOT NULL DEFAULT 0;"
    "ALTER TABLE domains ADD COLUMN check_failures INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE domains ADD COLUMN check_last REAL;"
    "ALTER TABLE domains ADD COLUMN check_result TEXT;"
    "ALTER TABLE domains ADD COLUMN verified_at REAL;"
    "ALTER TABLE domains ADD COLUMN verified_via TEXT;"
    "ALTER TABLE domains ADD COLUMN record_missing INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX domains_check_next ON domains(check_next);",
    /* 7: the tenant's own notification templates (PRODUCT.md §4: "admins can
     * add their own"; the tenant document's "notification_templates") */
    "CREATE TABLE notification_templates("
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  position INTEGER NOT NULL,"
    "  name TEXT NOT NULL,"
    "  lang TEXT NOT NULL CHECK(lang IN ('ja', 'en')),"
    "  subject TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  PRIMARY KEY(tenant_id, position)) WITHOUT ROWID;",
    /* 8: console and API accounts, sessions, API tokens (store_accounts.c) */
    "CREATE TABLE accounts("
    "  id INTEGER PRIMARY KEY,"
    "  email TEXT NOT NULL UNIQUE COLLATE NOCASE,"
    "  company_id TEXT COLLATE NOCASE," /* NULL: an operator (every tenant) */
    "  role TEXT NOT NULL CHECK(role IN ('full', 'read-only')),"
    "  pwhash TEXT NOT NULL,"
    "  disabled INTEGER NOT NULL DEFAULT 0,"
    "  totp_secret TEXT,"
    "  totp_enabled INTEGER NOT NULL DEFAULT 0,"
    "  totp_last_step INTEGER NOT NULL DEFAULT 0,"
    "  failures INTEGER NOT NULL DEFAULT 0,"
    "  locked_until REAL NOT NULL DEFAULT 0,"
    "  last_login REAL,"
    "  created REAL NOT NULL);"
    "CREATE INDEX accounts_company ON accounts(company_id);"
    "CREATE TABLE account_recovery("
    "  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
    "  code_hash TEXT NOT NULL,"
    "  used REAL,"
    "  PRIMARY KEY(account_id, code_hash)) WITHOUT ROWID;"
    "CREATE TABLE sessions("
    "  id_hash TEXT PRIMARY KEY,"
    "  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
    "  csrf TEXT NOT NULL,"
    "  created REAL NOT NULL,"
    "  last_seen REAL NOT NULL,"
    "  client_ip TEXT) WITHOUT ROWID;"
    "CREATE INDEX sessions_account ON sessions(account_id);"
    "CREATE TABLE api_tokens("
    "  id INTEGER PRIMARY KEY,"
    "  token_hash TEXT NOT NULL UNIQUE,"
    "  name TEXT NOT NULL,"
    "  company_id TEXT COLLATE NOCASE,"
    "  role TEXT NOT NULL CHECK(role IN ('full', 'read-only')),"
    "  disabled INTEGER NOT NULL DEFAULT 0,"
    "  created REAL NOT NULL,"
    "  created_by TEXT,"
    "  last_used REAL);"
    "CREATE TABLE tenant_security("
    "  company_id TEXT PRIMARY KEY COLLATE NOCASE,"
    "  totp_required INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "CREATE INDEX audit_log_company ON audit_log(company_id, time);",
    /* 9: onboarding (store_onboard.c): one-time tokens mailed to an account
     * (first password, e-mail confirmation; SHA-256 only) and the tenant
     * administrator's wizard profile */
    "CREATE TABLE account_tokens("
    "  token_hash TEXT PRIMARY KEY,"
    "  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
    "  purpose TEXT NOT NULL CHECK(purpose IN ('setup', 'email')),"
    "  email TEXT NOT NULL,"
    "  created REAL NOT NULL,"
    "  expires REAL NOT NULL,"
    "  used REAL) WITHOUT ROWID;"
    "CREATE INDEX account_tokens_account ON account_tokens(account_id, purpose);"
    "CREATE TABLE account_profile("
    "  account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,"
    "  last_name TEXT NOT NULL DEFAULT '',"
    "  first_name TEXT NOT NULL DEFAULT '',"
    "  email_confirmed REAL,"
    "  wizard_done REAL);",
    /* 10: End User Console: the tenant's settings (the tenant document's
     * "end_user_console") and its end users' accounts (store_enduser.c) */
    "ALTER TABLE tenants ADD COLUMN euc TEXT NOT NULL DEFAULT '{\"enabled\":false,\"local_accounts\":true,"
    "\"enforce_2fa\":false,\"quarantine_categories\":[\"spam\",\"graymail\"]}';"
    "CREATE TABLE end_users("
    "  id INTEGER PRIMARY KEY,"
    "  company_id TEXT NOT NULL COLLATE NOCASE,"
    "  email TEXT NOT NULL COLLATE NOCASE,"
    "  name TEXT NOT NULL DEFAULT '',"
    "  enabled INTEGER NOT NULL DEFAULT 1,"
    "  created REAL NOT NULL,"
    "  pwhash TEXT,"                 /* argon2id; NULL until the user sets it */
    "  code_hash TEXT,"              /* SHA-256 hex of the pending password-set code */
    "  code_expires REAL,"
    "  code_tries INTEGER NOT NULL DEFAULT 0,"
    "  code_sent REAL,"
    "  last_login REAL,"
    "  UNIQUE(company_id, email));"
    "CREATE INDEX end_users_email ON end_users(email);",
    /* 11: the detection categories of a tracked message on its row
     * (comma-separated, NULL = none): the dashboard statistics read them
     * there instead of the message's events (store_stats.c); filled for the
     * messages tracked before */
    "ALTER TABLE track_messages ADD COLUMN threats TEXT;"
    "UPDATE track_messages SET threats = ("
    "  SELECT group_concat(c, ',') FROM (SELECT DISTINCT json_extract(j.value, '$.category') AS c"
    "    FROM track_events e,"
    "         json_each(CASE WHEN json_valid(e.detail) THEN e.detail ELSE '{}' END, '$.detections') j"
    "    WHERE e.message = track_messages.id AND e.rcpt IS NULL AND c IS NOT NULL))"
    " WHERE id IN (SELECT message FROM track_events WHERE rcpt IS NULL AND instr(detail, '\"detections\":[{') > 0);"
    /* and covering indexes for its one pass: the period's messages in time
     * order, then their recipients, without touching the tables */
    "CREATE INDEX track_messages_stats ON track_messages(time, id, sender, action, threats);"
    "CREATE INDEX track_recipients_stats ON track_recipients(message, rcpt, company_id, status);",
    /* 12: the provisioning wizard's step (store_onboard.c): it resumes
     * where the administrator left it */
    "ALTER TABLE account_profile ADD COLUMN wizard_step INTEGER NOT NULL DEFAULT 0;",
};

#define STORE_NMIGRATIONS ((int)(sizeof store_migrations / sizeof store_migrations[0]))

/* ---------------------------------------------------------------- helpers */
void store_log_error(struct store *st, const char *what)
{
    char e[300];
    const char *m = sqlite3_errmsg(st->db);
    log_error("store error op=%s reason=\"%s\"", what, log_escape(m, strlen(m), e, sizeof e));
}

/* store_exec_script - run every statement of a constant script (no values) */
static int store_exec_script(sqlite3 *db, const char *sql)
{
    const char *tail = sql;
    while (tail && *tail) {
        sqlite3_stmt *s = NULL;
        if (sqlite3_prepare_v2(db, tail, -1, &s, &tail) != SQLITE_OK)
            return -1;
        if (!s) /* trailing blanks */
            break;
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW)
            ;
        sqlite3_finalize(s);
        if (rc != SQLITE_DONE)
            return -1;
    }
    return 0;
}

sqlite3_stmt *store_stmt(struct store *st, const char *sql)
{
    for (size_t i = 0; i < st->ncache; i++) {
        if (st->cache[i].sql == sql) {
            sqlite3_reset(st->cache[i].stmt);
            sqlite3_clear_bindings(st->cache[i].stmt);
            return st->cache[i].stmt;
        }
    }
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
        store_log_error(st, "prepare");
        return NULL;
    }
    if (st->ncache == STORE_STMT_CACHE)
        fatal("store: statement cache full (raise STORE_STMT_CACHE)");
    st->cache[st->ncache].sql = sql;
    st->cache[st->ncache].stmt = s;
    st->ncache++;
    return s;
}

int store_step_done(struct store *st, sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        store_log_error(st, "step");
        return -1;
    }
    return 0;
}

static int store_simple(struct store *st, const char *sql)
{
    sqlite3_stmt *s = store_stmt(st, sql);
    return s ? store_step_done(st, s) : -1;
}

static const char SQL_BEGIN[] = "BEGIN IMMEDIATE";
static const char SQL_BEGIN_READ[] = "BEGIN";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_ROLLBACK[] = "ROLLBACK";

int store_begin(struct store *st)
{
    return store_simple(st, SQL_BEGIN);
}

int store_begin_read(struct store *st)
{
    return store_simple(st, SQL_BEGIN_READ);
}

int store_commit(struct store *st)
{
    return store_simple(st, SQL_COMMIT);
}

void store_rollback(struct store *st)
{
    if (!sqlite3_get_autocommit(st->db))
        (void)store_simple(st, SQL_ROLLBACK);
}

int store_bind_text(sqlite3_stmt *s, int idx, const char *v)
{
    if (!v)
        return sqlite3_bind_null(s, idx);
    return sqlite3_bind_text(s, idx, v, -1, SQLITE_TRANSIENT);
}

char *store_col_dup(sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    return t ? xstrdup((const char *)t) : NULL;
}

void store_random_hex(char *out, size_t nbytes)
{
    unsigned char b[64];
    if (nbytes > sizeof b)
        nbytes = sizeof b;
    size_t got = 0;
    while (got < nbytes) {
        ssize_t n = getrandom(b + got, nbytes - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fatal("getrandom failed: %s", strerror(errno));
        got += (size_t)n;
    }
    for (size_t i = 0; i < nbytes; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

void store_iso_time(double t, char *out, size_t outsz)
{
    time_t secs = (time_t)t;
    int ms = (int)((t - (double)secs) * 1000.0);
    if (ms < 0)
        ms = 0;
    if (ms > 999)
        ms = 999;
    struct tm tm;
    if (!gmtime_r(&secs, &tm)) {
        snprintf(out, outsz, "invalid");
        return;
    }
    snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

static const char SQL_VERSION[] = "SELECT value FROM meta WHERE key = 'config_version'";
static const char SQL_VERSION_BUMP[] = "UPDATE meta SET value = value + 1 WHERE key = 'config_version'";
static const char SQL_AUDIT[] =
    "INSERT INTO audit_log(time, actor, action, company_id, detail) VALUES(?, ?, ?, ?, ?)";

int64_t store_config_version(struct store *st)
{
    sqlite3_stmt *s = store_stmt(st, SQL_VERSION);
    int64_t v = -1;
    if (s && sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    if (s)
        sqlite3_reset(s);
    return v;
}

int store_version_bump(struct store *st)
{
    return store_simple(st, SQL_VERSION_BUMP);
}

int store_audit(struct store *st, const char *actor, const char *action, const char *company_id,
                const char *detail)
{
    sqlite3_stmt *s = store_stmt(st, SQL_AUDIT);
    if (!s)
        return -1;
    sqlite3_bind_double(s, 1, core_now());
    store_bind_text(s, 2, actor);
    store_bind_text(s, 3, action);
    store_bind_text(s, 4, company_id);
    store_bind_text(s, 5, detail);
    return store_step_done(st, s);
}

/* ---------------------------------------------------------------- open */
/* mkdir_p - create dir and missing parents (mode 0700); 0 or -1 with errno */
static int mkdir_p(const char *dir)
{
    char p[4096];
    size_t n = core_strlcpy(p, dir, sizeof p);
    if (n == 0 || n >= sizeof p) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0700) < 0 && errno != EEXIST)
            return -1;
        p[i] = c;
    }
    struct stat sb;
    if (stat(dir, &sb) < 0)
        return -1;
    if (!S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static const char SQL_MIG_TABLE[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations(version INTEGER PRIMARY KEY, applied REAL NOT NULL)";
static const char SQL_MIG_MAX[] = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";
static const char SQL_MIG_ADD[] = "INSERT INTO schema_migrations(version, applied) VALUES(?, ?)";

static int store_current_version(struct store *st, int *version)
{
    sqlite3_stmt *s = store_stmt(st, SQL_MIG_MAX);
    if (!s || sqlite3_step(s) != SQLITE_ROW) {
        if (s)
            sqlite3_reset(s);
        return -1;
    }
    *version = sqlite3_column_int(s, 0);
    sqlite3_reset(s);
    return 0;
}

/* store_migrate - apply every pending migration, each in one transaction */
static int store_migrate(struct store *st, char *err, size_t errsz)
{
    if (store_exec_script(st->db, SQL_MIG_TABLE) < 0) {
        snprintf(err, errsz, "%s: cannot create schema_migrations: %s", st->path, sqlite3_errmsg(st->db));
        return -1;
    }
    for (;;) {
        int v;
        if (store_begin(st) < 0 || store_current_version(st, &v) < 0) {
            snprintf(err, errsz, "%s: %s", st->path, sqlite3_errmsg(st->db));
            store_rollback(st);
            return -1;
        }
        if (v > STORE_NMIGRATIONS) {
            store_rollback(st);
            snprintf(err, errsz, "%s: database schema version %d is newer than this program (%d)", st->path,
                     v, STORE_NMIGRATIONS);
            return -1;
        }
        if (v == STORE_NMIGRATIONS) {
            store_rollback(st);
            return 0;
        }
        sqlite3_stmt *s;
        if (store_exec_script(st->db, store_migrations[v]) < 0 || !(s = store_stmt(st, SQL_MIG_ADD))) {
            snprintf(err, errsz, "%s: migration %d failed: %s", st->path, v + 1, sqlite3_errmsg(st->db));
            store_rollback(st);
            return -1;
        }
        sqlite3_bind_int(s, 1, v + 1);
        sqlite3_bind_double(s, 2, core_now());
        if (store_step_done(st, s) < 0 || store_commit(st) < 0) {
            snprintf(err, errsz, "%s: migration %d failed: %s", st->path, v + 1, sqlite3_errmsg(st->db));
            store_rollback(st);
            return -1;
        }
        log_info("store migrated db=%s version=%d", st->path, v + 1);
    }
}

int store_open(const struct moat_config *cfg, struct store **out, char *err, size_t errsz)
{
    *out = NULL;
    const char *db = cfg->database ? cfg->database : "sqlite";
    if (strncmp(db, "postgresql://", 13) == 0 || strncmp(db, "postgres://", 11) == 0) {
        snprintf(err, errsz, "database: PostgreSQL backend not available yet (use database = sqlite)");
        return -1;
    }
    if (strcmp(db, "sqlite") != 0) {
        snprintf(err, errsz, "database: must be sqlite or a postgresql:// URL");
        return -1;
    }
    const char *dir = cfg->data_dir && cfg->data_dir[0] ? cfg->data_dir : ".";
    if (mkdir_p(dir) < 0) {
        snprintf(err, errsz, "data_dir %s: %s", dir, strerror(errno));
        return -1;
    }
    char path[4200];
    if ((size_t)snprintf(path, sizeof path, "%s/moat.db", dir) >= sizeof path) {
        snprintf(err, errsz, "data_dir: path too long");
        return -1;
    }
    struct store *st = xcalloc(1, sizeof *st);
    st->path = xstrdup(path);
    /* Create the file 0600 ourselves (umask is process-wide, not ours to
     * change in a threaded daemon; SQLite gives -wal/-shm the same mode).
     * O_EXCL: never open and close an existing database file outside SQLite -
     * close() drops every POSIX lock this process holds on it, and another
     * process could then checkpoint and delete the WAL under our feet. */
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0)
        close(fd);
    else if (errno != EEXIST) {
        snprintf(err, errsz, "%s: %s", path, strerror(errno));
        goto fail;
    }
    int rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errsz, "%s: %s", path, st->db ? sqlite3_errmsg(st->db) : "cannot open");
        goto fail;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
    /* WAL: readers never block the writer; NORMAL sync is durable in WAL mode
     * except for the last transactions on power loss, which is acceptable for
     * configuration and tracking (mail durability is the spool's job). */
    if (store_exec_script(st->db, "PRAGMA journal_mode = WAL") < 0 ||
        store_exec_script(st->db, "PRAGMA synchronous = NORMAL") < 0 ||
        store_exec_script(st->db, "PRAGMA foreign_keys = ON") < 0) {
        snprintf(err, errsz, "%s: %s", path, sqlite3_errmsg(st->db));
        goto fail;
    }
    if (store_migrate(st, err, errsz) < 0)
        goto fail;
    *out = st;
    return 0;
fail:
    store_close(st);
    return -1;
}

void store_close(struct store *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->ncache; i++)
        sqlite3_finalize(st->cache[i].stmt);
    if (st->db)
        sqlite3_close(st->db);
    free(st->path);
    free(st);
}

/*
 * detect_virus.c - the malware detector (issue 4, docs/detection.md
 * "Malware"): libclamav signatures plus Moat's own static heuristics.
 *
 *   detect_virus_init      load and compile the ClamAV engine once per process
 *                          (or, with clamd_socket set, only check the address)
 *   detect_virus_run       scan one analysed message, add "virus" detections
 *   detect_virus_type      cleanable / mass_mailing / non_mass_mailing
 *   detect_virus_shutdown  free the engine
 *
 * Signatures: Moat's database shipped in the repository
 * (data/signatures/moat.ndb, EICAR and whatever else we author) from
 * $MOAT_SIGNATURES_DIR, else MOAT_DATADIR "/signatures" (a compile-time
 * define, the source tree's data/ by default: an install must set it), plus
 * the system ClamAV databases (cl_retdbdir(), /var/lib/clamav) when present.
 * No network: nothing here downloads signatures.
 *
 * What is scanned: every attachment's decoded bytes (ClamAV unpacks its
 * archives itself, within the engine limits below), the bytes of archive
 * entries mime/ opened with a harvested password (ClamAV cannot decrypt;
 * mime_archive.c hands them over through mime_decrypted_hook while the
 * message is analysed), the decoded bytes of every body part (text/plain,
 * text/html: mime_body_hook, during the analysis too), and, when nothing
 * was found, the raw message. The raw message goes through ClamAV's own
 * mail parser only when mime/ flagged the message malformed (an ambiguous
 * structure, limits hit): then ClamAV's independent reading of the MIME is
 * worth its cost (a parser differential cannot hide a part from both).
 * For well-formed mail every part ClamAV's parser would decode has already
 * been scanned decoded, so the message is scanned as it is (signatures on
 * the raw mail, e.g. ClamAV's mail-target ones, still match), which saves
 * decoding every attachment a second time into temporary files.
 *
 * clamd: when the config key clamd_socket is set, no engine is loaded here;
 * every object above is streamed to that clamd instead (detect_clamd.c,
 * INSTREAM, clamd_timeout per object, clamd_stream_max bytes at most), the
 * decrypted archive entries included. Its signatures are whatever that
 * clamd loaded. An oversize object, a timeout, an unreachable clamd or its
 * ERROR reply is a scan_exclusion with the reason, exactly like an engine
 * error in-process.
 *
 * Detection types (PRODUCT.md "Virus scan", docs/detection.md): every
 * "virus" detection carries type = cleanable | mass_mailing |
 * non_mass_mailing for the policy engine (detect_virus_type); the evidence
 * repeats it for humans.
 *
 * Limits: the engine's scan size, file size, file count and recursion
 * follow the archive limits of PRODUCT.md §3 (mime_limits_default); a hit
 * limit, an engine error or an attachment too large to keep is never
 * "clean": it becomes a scan_exclusion detection ("virus scan incomplete").
 *
 * Security: runs in the scan workers on hostile bytes; libclamav parses
 * them. The engine is read-only after cl_engine_compile.
 */
#include <clamav.h>

#include "core/core.h"

#include <ctype.h>
#include <dirent.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/stat.h>

#include "detect/detect_int.h"
#include "mime/mime_int.h"

#ifndef MOAT_DATADIR
#define MOAT_DATADIR "data"
#endif

#define VIRUS_MAX_SCANTIME_MS 30000u          /* per scan call */
#define VIRUS_MAX_MEMBER_FINDINGS 5u          /* heuristic findings on archive members, per attachment */
#define VIRUS_SMUGGLING_BLOB 16384u           /* base64 run that alone counts as "large" */
#define VIRUS_SMUGGLING_BLOB_WITH_API 2048u   /* ... when atob()/Blob/msSaveOrOpenBlob is used */

static struct cl_engine *engine;
static char engine_err[256];
static bool use_clamd;               /* clamd_socket set: scan through clamd */
static struct clamd_target clamd;
static unsigned clamd_timeout_ms;
static uint64_t clamd_max;

/* scan_options - archive and every parser on, first match only, limit
 * alerts on (so a limit hit is visible, then reported as scan_exclusion) */
static void scan_options(struct cl_scan_options *o)
{
    memset(o, 0, sizeof *o);
    o->parse = ~0u;
    o->general = CL_SCAN_GENERAL_HEURISTICS;
    o->heuristic = CL_SCAN_HEURISTIC_EXCEEDS_MAX;
}

/* has_databases - dir holds at least one ClamAV database file (an empty
 * directory is "no system databases", not an error) */
static bool has_databases(const char *dir)
{
    static const char *const exts[] = {".cvd", ".cld", ".cud", ".ndb", ".hdb", ".hsb", ".mdb", ".msb",
                                       ".ldb", ".cdb", ".ndu", ".ldu", ".yar", ".yara", ".ign2", NULL};
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    struct dirent *e;
    for (unsigned n = 0; !found && n < 10000 && (e = readdir(d)); n++) {
        size_t l = strlen(e->d_name);
        for (size_t i = 0; exts[i] && !found; i++) {
            size_t k = strlen(exts[i]);
            found = l > k && strcmp(e->d_name + l - k, exts[i]) == 0;
        }
    }
    closedir(d);
    return found;
}

static int load_dir(const char *dir, bool required, unsigned *sigs, char *err, size_t errsz)
{
    struct stat st;
    if (stat(dir, &st) < 0) {
        if (!required)
            return 0;
        snprintf(err, errsz, "signature directory %s: %s", dir, strerror(errno));
        return -1;
    }
    if (!required && !has_databases(dir))
        return 0; /* e.g. clamav-daemon installed but freshclam never ran */
    cl_error_t rc = cl_load(dir, engine, sigs, CL_DB_STDOPT);
    if (rc != CL_SUCCESS) {
        snprintf(err, errsz, "loading signatures from %s: %s", dir, cl_strerror(rc));
        return -1;
    }
    return 0;
}

static void scan_decrypted(struct analysis *a, const char *path, const unsigned char *data, size_t len);
static void scan_body(struct analysis *a, const char *path, const unsigned char *data, size_t len);

static char tmpdir[1024];

void detect_set_tmpdir(const char *dir)
{
    snprintf(tmpdir, sizeof tmpdir, "%s", dir ? dir : "");
}

int detect_virus_init(const struct moat_config *cfg, char *err, size_t errsz)
{
    struct mime_limits l;
    unsigned sigs = 0;
    char dir[4096];
    const char *env = getenv("MOAT_SIGNATURES_DIR");
    cl_error_t rc;

    if (engine || use_clamd)
        return 0;
    engine_err[0] = '\0';
    if (cfg && cfg->clamd_socket && cfg->clamd_socket[0]) {
        const char *why = clamd_target_parse(cfg->clamd_socket, &clamd);
        if (why) {
            snprintf(err, errsz, "clamd_socket %s: %s", cfg->clamd_socket, why);
            snprintf(engine_err, sizeof engine_err, "%s", err);
            return -1;
        }
        clamd_timeout_ms = cfg->clamd_timeout ? (unsigned)cfg->clamd_timeout * 1000u : VIRUS_MAX_SCANTIME_MS;
        clamd_max = cfg->clamd_stream_max ? cfg->clamd_stream_max : 25u * 1024 * 1024;
        use_clamd = true;
        mime_decrypted_hook = scan_decrypted;
        log_info("detect virus engine=clamd socket=%s timeout_ms=%u stream_max=%llu", clamd.name, clamd_timeout_ms,
                 (unsigned long long)clamd_max);
        return 0;
    }
    if ((rc = cl_init(CL_INIT_DEFAULT)) != CL_SUCCESS) {
        snprintf(err, errsz, "cl_init: %s", cl_strerror(rc));
        goto fail;
    }
    engine = cl_engine_new();
    if (!engine) {
        snprintf(err, errsz, "cl_engine_new failed");
        goto fail;
    }
    if (tmpdir[0] && (rc = cl_engine_set_str(engine, CL_ENGINE_TMPDIR, tmpdir)) != CL_SUCCESS) {
        snprintf(err, errsz, "cl_engine_set_str(TMPDIR %s): %s", tmpdir, cl_strerror(rc));
        goto fail;
    }
    mime_limits_default(&l);
    cl_engine_set_num(engine, CL_ENGINE_MAX_SCANSIZE, (long long)l.archive_total_bytes);
    cl_engine_set_num(engine, CL_ENGINE_MAX_FILESIZE, (long long)l.archive_total_bytes);
    cl_engine_set_num(engine, CL_ENGINE_MAX_FILES, (long long)l.archive_files);
    /* the mail parser adds a level: the message, its part, then the archives */
    cl_engine_set_num(engine, CL_ENGINE_MAX_RECURSION, (long long)l.archive_depth + 2);
    cl_engine_set_num(engine, CL_ENGINE_MAX_SCANTIME, VIRUS_MAX_SCANTIME_MS);

    if (env && *env)
        snprintf(dir, sizeof dir, "%s", env);
    else
        snprintf(dir, sizeof dir, "%s/signatures", MOAT_DATADIR);
    if (load_dir(dir, true, &sigs, err, errsz) < 0)
        goto fail;
    if (load_dir(cl_retdbdir(), false, &sigs, err, errsz) < 0)
        goto fail;
    if ((rc = cl_engine_compile(engine)) != CL_SUCCESS) {
        snprintf(err, errsz, "cl_engine_compile: %s", cl_strerror(rc));
        goto fail;
    }
    mime_decrypted_hook = scan_decrypted;
    mime_body_hook = scan_body;
    /* libclamav keeps the engine in mmap'ed pools that leak checkers do not
     * see: free it at exit even when the caller never calls detect_shutdown */
    {
        static bool registered;
        if (!registered && atexit(detect_virus_shutdown) == 0)
            registered = true;
    }
    log_info("detect virus engine=libclamav-%s signatures=%u dir=%s tmpdir=%s", cl_retver(), sigs, dir,
             tmpdir[0] ? tmpdir : "TMPDIR");
    return 0;
fail:
    snprintf(engine_err, sizeof engine_err, "%s", err);
    if (engine) {
        cl_engine_free(engine);
        engine = NULL;
    }
    return -1;
}

void detect_virus_shutdown(void)
{
    if (mime_decrypted_hook == scan_decrypted)
        mime_decrypted_hook = NULL;
    if (mime_body_hook == scan_body)
        mime_body_hook = NULL;
    if (engine)
        cl_engine_free(engine);
    engine = NULL;
    use_clamd = false;
}

/* is_mass_mailer - a signature name of a self-mailing worm: a vendor's
 * mass-mailer marker, a known mass-mailing family, or "worm" together with
 * "mail". A bare "Worm" (Conficker, network worms) is not one. */
static bool is_mass_mailer(const char *virname)
{
    static const char *const marks[] = {"email-worm", "e-mail-worm", "i-worm", "mailworm", "mail-worm",
                                        "massmail",   "mass-mail",   "mass_mail", "mydoom", "netsky", "bagle",
                                        "beagle",     "sober",       "klez",   "sobig",    "mimail", "lovgate",
                                        "mytob",      "zafi",        "nimda",  "sircam",   "badtrans",
                                        "loveletter", "iloveyou",    "melissa", "swen.",   "bugbear", "dumaru",
                                        "warezov",    "stration",    NULL};
    char low[256];
    size_t i;
    for (i = 0; virname[i] && i < sizeof low - 1; i++)
        low[i] = (char)tolower((unsigned char)virname[i]);
    low[i] = '\0';
    for (const char *const *m = marks; *m; m++)
        if (strstr(low, *m))
            return true;
    return strstr(low, "worm") && strstr(low, "mail");
}

const char *detect_virus_type(const char *name, bool in_part)
{
    if (name && is_mass_mailer(name))
        return "mass_mailing";
    return in_part ? "cleanable" : "non_mass_mailing";
}

/* type_text - the type as the evidence shows it */
static const char *type_text(const char *type)
{
    return strcmp(type, "cleanable") == 0      ? "cleanable"
           : strcmp(type, "mass_mailing") == 0 ? "uncleanable, mass-mailing"
                                               : "uncleanable, non-mass-mailing";
}

/* add_virus - one signature match; where is the attachment name, a member
 * path or NULL (found only in the message as a whole) */
static void add_virus(struct analysis *a, const char *virname, const char *where)
{
    char name[256], ev[1400];
    size_t n = strlen(virname);
    static const char unofficial[] = ".UNOFFICIAL";
    size_t ul = sizeof unofficial - 1;

    /* ClamAV marks signatures outside its official databases; ours are */
    if (n > ul && strcmp(virname + n - ul, unofficial) == 0)
        n -= ul;
    snprintf(name, sizeof name, "%.*s", (int)n, virname);
    const char *type = detect_virus_type(name, where != NULL);
    snprintf(ev, sizeof ev, "%s (%s)", where ? where : "message", type_text(type));
    struct detection *d = analysis_add_detection(a, "virus", name, 1.0, ev);
    if (d)
        d->type = xstrdup(type);
}

static void add_incomplete(struct analysis *a, const char *where, const char *why)
{
    char ev[1400];
    snprintf(ev, sizeof ev, "virus scan incomplete: %s: %s", where, why);
    analysis_add_detection(a, "scan_exclusion", "virus-scan-incomplete", 1.0, ev);
}

/* matched - a match by either engine: a limit alert means the scan was
 * incomplete, anything else is a virus; true for a virus */
static bool matched(struct analysis *a, const char *virname, const char *where, bool whole_message)
{
    if (strncmp(virname, "Heuristics.Limits.Exceeded", 26) == 0) {
        char why[600];
        snprintf(why, sizeof why, "limit reached (%.500s)", virname);
        add_incomplete(a, where, why);
        return false;
    }
    add_virus(a, virname, whole_message ? NULL : where);
    return true;
}

/* scan_clamd - one INSTREAM exchange; true when a virus was found */
static bool scan_clamd(struct analysis *a, const void *data, size_t len, const char *where, bool whole_message)
{
    char out[512];
    switch (clamd_scan(&clamd, data, len, clamd_timeout_ms, clamd_max, out, sizeof out)) {
    case CLAMD_CLEAN:
        return false;
    case CLAMD_FOUND:
        return matched(a, out, where, whole_message);
    case CLAMD_ERROR:
        break;
    }
    add_incomplete(a, where, out);
    return false;
}

/* scan_bytes options */
enum {
    SCAN_WHOLE = 1,       /* the object is the message or a body part: a hit is not removable */
    SCAN_NO_ARCHIVES = 2, /* do not unpack archives (over the entry-count limit) */
    SCAN_NO_MAIL = 4,     /* do not run ClamAV's mail parser over it */
};

/* scan_bytes - one ClamAV scan (in-process or clamd); true when a virus was found */
static bool scan_bytes(struct analysis *a, const void *data, size_t len, const char *where, unsigned opts)
{
    bool whole_message = opts & SCAN_WHOLE;
    struct cl_scan_options o;
    const char *virname = NULL;
    unsigned long scanned = 0;
    cl_fmap_t *map;
    cl_error_t rc;

    if (!len)
        return false;
    if (use_clamd)
        return scan_clamd(a, data, len, where, whole_message);
    map = cl_fmap_open_memory(data, len);
    if (!map) {
        add_incomplete(a, where, "cannot map the bytes");
        return false;
    }
    scan_options(&o);
    if (opts & SCAN_NO_ARCHIVES)
        o.parse &= ~(unsigned)CL_SCAN_PARSE_ARCHIVE;
    if (opts & SCAN_NO_MAIL)
        o.parse &= ~(unsigned)CL_SCAN_PARSE_MAIL;
    rc = cl_scanmap_callback(map, where, &virname, &scanned, engine, &o, NULL);
    cl_fmap_close(map);
    if (rc == CL_CLEAN)
        return false;
    if (rc == CL_VIRUS && virname)
        return matched(a, virname, where, whole_message);
    add_incomplete(a, where, cl_strerror(rc));
    return false;
}

static bool has_virus(const struct analysis *a)
{
    for (size_t i = 0; i < a->ndetections; i++)
        if (strcmp(a->detections[i].category, "virus") == 0 && a->detections[i].score >= 1.0)
            return true;
    return false;
}

/* scan_decrypted - mime_decrypted_hook: an archive entry opened with a
 * password, which ClamAV could not have opened */
static void scan_decrypted(struct analysis *a, const char *path, const unsigned char *data, size_t len)
{
    if (engine || use_clamd)
        scan_bytes(a, data, len, path, 0);
}

/* scan_body - mime_body_hook: a body part's decoded bytes (in-process
 * engine only: through clamd the whole message goes to clamd's mail parser) */
static void scan_body(struct analysis *a, const char *path, const unsigned char *data, size_t len)
{
    char where[96];
    if (!engine || has_virus(a))
        return;
    snprintf(where, sizeof where, "body part %.64s", path);
    scan_bytes(a, data, len, where, SCAN_WHOLE);
}

/* ---------------------------------------------------------------- heuristics */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static bool is_executable_type(const char *t)
{
    static const char *const types[] = {
        "application/x-dosexec", "application/vnd.microsoft.portable-executable", "application/x-msdownload",
        "application/x-executable", "application/x-sharedlib", "application/x-pie-executable",
        "application/x-mach-binary", "application/x-elf", "text/x-shellscript", "text/x-msdos-batch",
        "application/x-ms-shortcut", "text/x-perl", "text/x-python", "application/x-bytecode.python",
        "application/java-archive", "application/x-java-applet", NULL};
    if (!t)
        return false;
    for (const char *const *p = types; *p; p++)
        if (strcasecmp(t, *p) == 0)
            return true;
    return false;
}

static const char *risky_extension(const char *name)
{
    static const char *const exts[] = {".js", ".jse", ".vbs", ".vbe", ".wsf", ".hta", ".lnk", ".iso",
                                       ".img", ".scr", ".ps1", NULL};
    if (!name)
        return NULL;
    for (const char *const *e = exts; *e; e++)
        if (ends_with(name, *e))
            return *e + 1;
    return NULL;
}

static void heur(struct analysis *a, const char *name, double score, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void heur(struct analysis *a, const char *name, double score, const char *fmt, ...)
{
    char ev[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ev, sizeof ev, fmt, ap);
    va_end(ap);
    /* every heuristic is about an attachment or something inside one */
    struct detection *d = analysis_add_detection(a, "virus", name, score, ev);
    if (d)
        d->type = xstrdup(detect_virus_type(name, true));
}

/* longest_base64_run - the longest run of base64 alphabet characters */
static size_t longest_base64_run(const unsigned char *p, size_t n)
{
    size_t best = 0, run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (isalnum(c) || c == '+' || c == '/' || c == '=')
            run++;
        else {
            if (run > best)
                best = run;
            run = 0;
        }
    }
    return run > best ? run : best;
}

static bool contains_ci(const unsigned char *p, size_t n, const char *needle)
{
    return core_memcasemem((const char *)p, n, needle, strlen(needle)) != NULL;
}

/* html_smuggling - an HTML attachment that carries a large encoded blob and
 * the script to turn it back into a file */
static bool html_smuggling(const struct mime_attachment *at)
{
    bool html = (at->true_type && strcmp(at->true_type, "text/html") == 0) ||
                (at->extension && (strcmp(at->extension, "html") == 0 || strcmp(at->extension, "htm") == 0 ||
                                   strcmp(at->extension, "shtml") == 0 || strcmp(at->extension, "xhtml") == 0));
    if (!html || !at->data || !contains_ci(at->data, at->size, "<script"))
        return false;
    size_t run = longest_base64_run(at->data, at->size);
    if (run >= VIRUS_SMUGGLING_BLOB)
        return true;
    bool api = contains_ci(at->data, at->size, "atob(") || contains_ci(at->data, at->size, "new blob") ||
               contains_ci(at->data, at->size, "mssaveoropenblob") ||
               contains_ci(at->data, at->size, "createobjecturl");
    return api && run >= VIRUS_SMUGGLING_BLOB_WITH_API;
}

static void heuristics(struct analysis *a, const struct mime_attachment *at)
{
    const char *fn = at->filename && at->filename[0] ? at->filename : "attachment";
    const char *ext;

    if (is_executable_type(at->true_type))
        heur(a, "Heuristics.Executable", 0.6, "%s (%s)", fn, at->true_type);
    const struct mime_member *closed = NULL;
    size_t nclosed = 0;
    unsigned reported = 0; /* member findings: the first few say enough */
    for (size_t i = 0; i < at->nmembers; i++) {
        const struct mime_member *m = &at->members[i];
        if (reported < VIRUS_MAX_MEMBER_FINDINGS && is_executable_type(m->true_type)) {
            heur(a, "Heuristics.Executable", 0.6, "%s (%s, in an archive)", m->path, m->true_type);
            reported++;
        }
        if (reported < VIRUS_MAX_MEMBER_FINDINGS && (ext = risky_extension(m->path))) {
            heur(a, "Heuristics.RiskyType", 0.6, "%s (.%s file in an archive)", m->path, ext);
            reported++;
        }
        if (m->encrypted && !m->decrypted && nclosed++ == 0)
            closed = m;
    }
    if (closed) {
        char more[64] = "";
        if (nclosed > 1)
            snprintf(more, sizeof more, " and %zu more", nclosed - 1);
        heur(a, "Heuristics.Encrypted", 0.5, "%s%s (password-protected, could not be opened: not scanned)",
             closed->path, more);
    }
    if (at->double_extension)
        heur(a, "Heuristics.DoubleExtension", 0.7, "%s%s", fn, "");
    if (at->name_bidi)
        heur(a, "Heuristics.BidiName", 0.8, "%s%s", fn, " (right-to-left override in the file name)");
    if (at->macros)
        heur(a, "Heuristics.Macro", 0.4, "%s%s", fn, " (Office macros)");
    if ((ext = risky_extension(at->filename)))
        heur(a, "Heuristics.RiskyType", 0.6, "%s (.%s attachment)", fn, ext);
    if (html_smuggling(at))
        heur(a, "Heuristics.HTMLSmuggling", 0.7, "%s%s", fn, " (HTML with a large encoded blob and script)");
    if (at->encrypted && !at->decrypted && !at->nmembers)
        heur(a, "Heuristics.Encrypted", 0.5, "%s%s", fn, " (password-protected, could not be opened: not scanned)");
}

void detect_virus_run(struct analysis *a, const char *msg, size_t len, const struct detect_context *ctx)
{
    (void)ctx;
    bool found = has_virus(a); /* decrypted entries were scanned during mime_analyse */

    for (size_t i = 0; i < a->nattachments; i++)
        heuristics(a, &a->attachments[i]);
    if (!engine && !use_clamd) {
        add_incomplete(a, "message", engine_err[0] ? engine_err : "the virus engine is not loaded");
        return;
    }
    /* An archive over the entry-count limit is not handed to the engine as
     * an archive: ClamAV's zip reader is quadratic in the number of entries
     * (20,000 empty files: 60 s). Its bytes are still scanned as they are;
     * what is inside is a scan exclusion (archive_limits), for policy. */
    bool crowded = false;
    for (size_t i = 0; i < a->nattachments; i++) {
        const struct mime_attachment *at = &a->attachments[i];
        const char *fn = at->filename && at->filename[0] ? at->filename : "attachment";
        if (!at->data) {
            if (at->size)
                add_incomplete(a, fn, "too large to keep for scanning");
            continue;
        }
        if (at->too_many_entries) {
            crowded = true;
            add_incomplete(a, fn, "archive entries beyond the file limit were not scanned");
            if (use_clamd)
                continue; /* clamd would open it whole */
        }
        found |= scan_bytes(a, at->data, at->size, fn, at->too_many_entries ? SCAN_NO_ARCHIVES : 0);
    }
    bool malformed = false;
    for (size_t i = 0; i < a->nflags && !malformed; i++)
        malformed = strcmp(a->flags[i].name, "malformed") == 0 || strcmp(a->flags[i].name, "text_limit") == 0;
    if (!found && !(crowded && use_clamd))
        scan_bytes(a, msg, len, "message",
                   SCAN_WHOLE | (crowded ? SCAN_NO_ARCHIVES : 0) | (malformed ? 0 : SCAN_NO_MAIL));
}

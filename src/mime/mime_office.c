/*
 * mime_office.c - facts about documents: VBA macros, embedded OLE objects,
 * PDF JavaScript / launch / automatic actions, password protection. Facts
 * only: the detectors decide what they mean.
 *
 *   mime_office_is_type  true types looked at here
 *   mime_office_scan     one document (OLE2, OOXML/ODF, PDF, RTF)
 *   mime_pdf_scan        the PDF part, on raw bytes
 *
 * OLE2 (.doc/.xls/.ppt/.msi/.msg) through libgsf's MS-OLE reader: storages
 * "_VBA_PROJECT_CUR", "VBA", "Macros" mean macros; "ObjectPool", "MBD*"
 * storages and "\x01Ole10Native" streams mean embedded objects;
 * "EncryptedPackage" (encrypted OOXML), "EncryptedSummary" (PowerPoint),
 * Word's FIB fEncrypted bit and Excel's FILEPASS record mean encrypted.
 * OOXML and ODF are zips: entry names only (vbaProject.bin, embeddings/
 * oleObject*.bin, ODF Basic/ scripts), read with libarchive.
 * PDF: every name token in the raw bytes and in FlateDecode streams (object
 * streams hide dictionaries there) is decoded (#xx escapes: /J#61vaScript
 * is /JavaScript) and compared; /Encrypt means encrypted.
 *
 * Bounds: OLE2 walk at most OLE_MAX_NODES entries, OLE_MAX_DEPTH levels;
 * zip names at most ZIP_MAX_ENTRIES; PDF at most PDF_MAX_STREAMS streams,
 * PDF_STREAM_MAX bytes inflated per stream, PDF_INFLATE_BUDGET in all.
 */
#include <gio/gio.h>
#include <gsf/gsf-infile-msole.h>
#include <gsf/gsf-infile.h>
#include <gsf/gsf-input-memory.h>
#include <gsf/gsf-utils.h>

#include "core/core.h"

#include <archive.h>
#include <archive_entry.h>
#include <pthread.h>

#include "mime/mime_int.h"

#define OLE_MAX_NODES 4096
#define OLE_MAX_DEPTH 16
#define ZIP_MAX_ENTRIES 5000
#define PDF_MAX_STREAMS 512
#define PDF_STREAM_MAX (2 * 1024 * 1024)
#define PDF_INFLATE_BUDGET (16 * 1024 * 1024)
#define PDF_NAME_MAX 32

static const char *const ole_types[] = {
    "application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
    "application/vnd.ms-office", "application/x-ole-storage", "application/cdfv2",
    "application/x-msi", "application/vnd.ms-outlook", "application/vnd.ms-msi",
    "application/vnd.visio", "application/vnd.ms-project", "application/cdfv2-corrupt",
    "application/encrypted", "application/x-ms-installer", NULL};

static const char *const zipdoc_prefixes[] = {
    "application/vnd.openxmlformats-officedocument.", "application/vnd.ms-word.",
    "application/vnd.ms-excel.", "application/vnd.ms-powerpoint.", "application/vnd.oasis.opendocument.",
    NULL};

bool mime_office_is_type(const char *t)
{
    if (!t)
        return false;
    if (strcmp(t, "application/pdf") == 0 || strcmp(t, "text/rtf") == 0 ||
        strcmp(t, "application/rtf") == 0)
        return true;
    for (size_t i = 0; ole_types[i]; i++)
        if (strcmp(t, ole_types[i]) == 0)
            return true;
    for (size_t i = 0; zipdoc_prefixes[i]; i++)
        if (strncmp(t, zipdoc_prefixes[i], strlen(zipdoc_prefixes[i])) == 0)
            return true;
    return false;
}

/* ---------------------------------------------------------------- OLE2 */

static pthread_once_t gsf_once = PTHREAD_ONCE_INIT;

/* gsf_quiet - libgsf reports hostile files as g_critical on stderr; they
 * are input, not bugs: drop those messages */
static void gsf_quiet(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer data)
{
}

static void gsf_setup(void)
{
    gsf_init();
    g_log_set_handler("libgsf", G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE, gsf_quiet, NULL);
}

struct ole_walk {
    unsigned nodes;
    struct mime_facts *f;
    bool encrypted;
};

static uint16_t le16(const guint8 *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

/* ole_stream - facts from one stream's name and first bytes */
static void ole_stream(GsfInput *in, const char *name, struct ole_walk *w)
{
    gsf_off_t size = gsf_input_size(in);

    if (strcmp(name, "\x01Ole10Native") == 0)
        w->f->ole_objects = true;
    else if (strcmp(name, "EncryptedPackage") == 0 || strcmp(name, "EncryptedSummary") == 0)
        w->encrypted = true;
    else if (strcmp(name, "_VBA_PROJECT") == 0)
        w->f->macros = true;
    else if (strcmp(name, "WordDocument") == 0 && size >= 12) {
        const guint8 *p = gsf_input_read(in, 12, NULL);
        if (p && le16(p) == 0xa5ec && (le16(p + 10) & 0x0100))
            w->encrypted = true; /* FIB fEncrypted */
    } else if ((strcmp(name, "Workbook") == 0 || strcmp(name, "Book") == 0) && size >= 4) {
        /* BIFF: FILEPASS (0x002F) comes right after BOF among the first records */
        gsf_off_t left = size;
        for (int rec = 0; rec < 64 && left >= 4; rec++) {
            const guint8 *h = gsf_input_read(in, 4, NULL);
            if (!h)
                break;
            uint16_t type = le16(h), len = le16(h + 2);
            left -= 4;
            if (type == 0x002f) {
                w->encrypted = true;
                break;
            }
            if (len > left || gsf_input_seek(in, len, G_SEEK_CUR))
                break;
            left -= len;
        }
    }
}

/* ole_dir - walk one storage, bounded in nodes and depth */
static void ole_dir(GsfInfile *dir, unsigned level, struct ole_walk *w)
{
    int n = gsf_infile_num_children(dir);
    for (int i = 0; i < n && w->nodes < OLE_MAX_NODES; i++) {
        const char *name = gsf_infile_name_by_index(dir, i);
        GsfInput *child = gsf_infile_child_by_index(dir, i);
        w->nodes++;
        if (!child)
            continue;
        if (!name)
            name = "";
        int kids = GSF_IS_INFILE(child) ? gsf_infile_num_children(GSF_INFILE(child)) : -1;
        if (kids >= 0) {
            if (strcmp(name, "_VBA_PROJECT_CUR") == 0 || strcmp(name, "VBA") == 0 ||
                (strcmp(name, "Macros") == 0 && kids > 0))
                w->f->macros = true;
            if ((strcmp(name, "ObjectPool") == 0 && kids > 0) || strncmp(name, "MBD", 3) == 0)
                w->f->ole_objects = true;
            if (level < OLE_MAX_DEPTH)
                ole_dir(GSF_INFILE(child), level + 1, w);
        } else {
            ole_stream(child, name, w);
        }
        g_object_unref(child);
    }
}

static void ole_scan(const unsigned char *data, size_t len, struct mime_facts *f, bool *encrypted)
{
    GsfInput *in;
    GsfInfile *ole;
    struct ole_walk w = {0, f, false};

    pthread_once(&gsf_once, gsf_setup);
    in = gsf_input_memory_new(data, (gsf_off_t)len, FALSE);
    if (!in)
        return;
    ole = gsf_infile_msole_new(in, NULL);
    if (ole) {
        ole_dir(ole, 0, &w);
        g_object_unref(ole);
    }
    g_object_unref(in);
    *encrypted = w.encrypted;
}

/* ---------------------------------------------------------------- OOXML / ODF */

static void zipdoc_scan(const unsigned char *data, size_t len, struct mime_facts *f)
{
    struct archive *ar = archive_read_new();
    struct archive_entry *e;
    unsigned n = 0;

    if (!ar)
        fatal("mime: archive_read_new failed");
    archive_read_support_format_zip(ar);
    if (archive_read_open_memory(ar, data, len) != ARCHIVE_OK) {
        archive_read_free(ar);
        return;
    }
    while (n++ < ZIP_MAX_ENTRIES && archive_read_next_header(ar, &e) >= ARCHIVE_WARN) {
        const char *name = archive_entry_pathname(e);
        if (!name)
            continue;
        size_t nl = strlen(name);
        const char *base = strrchr(name, '/');
        base = base ? base + 1 : name;
        if (nl >= 14 && strcasecmp(name + nl - 14, "vbaProject.bin") == 0)
            f->macros = true;
        if (strcasestr(name, "/embeddings/oleObject") || (strncasecmp(base, "oleObject", 9) == 0 &&
                                                          nl > 4 && strcasecmp(name + nl - 4, ".bin") == 0))
            f->ole_objects = true;
        if (strncmp(name, "Basic/", 6) == 0 && strcmp(base, "script-lc.xml") != 0 &&
            strcmp(base, "dialog-lc.xml") != 0 && nl > 4 && strcmp(name + nl - 4, ".xml") == 0)
            f->macros = true; /* ODF Basic module */
        if (strcmp(name, "EncryptedPackage") == 0)
            f->encrypted = true;
    }
    archive_read_free(ar);
}

/* ---------------------------------------------------------------- PDF */

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool pdf_delim(unsigned char c)
{
    return c <= ' ' || c == '(' || c == ')' || c == '<' || c == '>' || c == '[' || c == ']' ||
           c == '{' || c == '}' || c == '/' || c == '%' || c >= 0x7f;
}

struct pdf_state {
    struct mime_facts *f;
    bool encrypted;
};

/* pdf_names - every /Name in p, #xx-decoded, against the names we care for */
static void pdf_names(const unsigned char *p, size_t n, struct pdf_state *st)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '/')
            continue;
        char name[PDF_NAME_MAX + 1];
        size_t k = 0, j = i + 1;
        while (j < n && !pdf_delim(p[j])) {
            unsigned char c = p[j];
            if (c == '#' && j + 2 < n && hexval(p[j + 1]) >= 0 && hexval(p[j + 2]) >= 0) {
                c = (unsigned char)(hexval(p[j + 1]) * 16 + hexval(p[j + 2]));
                j += 2;
            }
            if (k < PDF_NAME_MAX)
                name[k] = (char)c;
            k++;
            j++;
        }
        i = j - 1;
        if (k == 0 || k > PDF_NAME_MAX)
            continue;
        name[k] = '\0';
        if (strcmp(name, "JavaScript") == 0 || strcmp(name, "JS") == 0)
            st->f->pdf_javascript = true;
        else if (strcmp(name, "Launch") == 0)
            st->f->pdf_launch = true;
        else if (strcmp(name, "OpenAction") == 0 || strcmp(name, "AA") == 0)
            st->f->pdf_open_action = true;
        else if (strcmp(name, "Encrypt") == 0)
            st->encrypted = true;
    }
}

/* pdf_inflate - zlib-inflate src into at most max bytes (GIO's zlib
 * converter: libz itself is not among our link dependencies); returns the
 * bytes produced (a truncated or corrupt stream yields what came out) */
static size_t pdf_inflate(const unsigned char *src, size_t srclen, unsigned char *out, size_t max)
{
    GZlibDecompressor *z = g_zlib_decompressor_new(G_ZLIB_COMPRESSOR_FORMAT_ZLIB);
    size_t in_done = 0, out_done = 0;

    for (int guard = 0; guard < 100000 && out_done < max; guard++) {
        gsize r = 0, w = 0;
        GError *err = NULL;
        GConverterResult res = g_converter_convert(G_CONVERTER(z), src + in_done, srclen - in_done,
                                                   out + out_done, max - out_done,
                                                   G_CONVERTER_INPUT_AT_END, &r, &w, &err);
        in_done += r;
        out_done += w;
        if (err) {
            g_error_free(err);
            break;
        }
        if (res == G_CONVERTER_FINISHED || res == G_CONVERTER_ERROR || (r == 0 && w == 0))
            break;
    }
    g_object_unref(z);
    return out_done;
}

static const unsigned char *find_bytes(const unsigned char *h, size_t hn, const char *needle)
{
    return memmem(h, hn, needle, strlen(needle));
}

void mime_pdf_scan(const unsigned char *data, size_t len, struct mime_facts *f)
{
    struct pdf_state st = {f, false};
    size_t budget = PDF_INFLATE_BUDGET;
    unsigned streams = 0;
    unsigned char *buf = NULL;

    pdf_names(data, len, &st);
    for (size_t pos = 0; pos < len && streams < PDF_MAX_STREAMS && budget > 0;) {
        const unsigned char *s = find_bytes(data + pos, len - pos, "stream");
        if (!s)
            break;
        size_t at = (size_t)(s - data) + 6;
        pos = at;
        if (s > data && s[-1] == 'd') /* "endstream" */
            continue;
        if (at < len && data[at] == '\r')
            at++;
        if (at < len && data[at] == '\n')
            at++;
        else
            continue;
        if (len - at < 2 || data[at] != 0x78 || ((data[at] << 8) | data[at + 1]) % 31 != 0)
            continue;
        const unsigned char *end = find_bytes(data + at, len - at, "endstream");
        size_t slen = end ? (size_t)(end - (data + at)) : len - at;
        size_t max = budget < PDF_STREAM_MAX ? budget : PDF_STREAM_MAX;
        if (!buf)
            buf = xmalloc(PDF_STREAM_MAX);
        size_t got = pdf_inflate(data + at, slen, buf, max);
        budget -= got;
        streams++;
        pdf_names(buf, got, &st);
        pos = at + slen;
    }
    free(buf);
    if (st.encrypted)
        f->encrypted = true;
}

/* ---------------------------------------------------------------- dispatch */

void mime_office_scan(struct mime_scan *s, const char *path, const char *true_type,
                      const unsigned char *data, size_t len, struct mime_facts *f)
{
    static const unsigned char ole_magic[8] = {0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1};
    bool encrypted = false;
    struct mime_facts df = {0};

    if (len >= 8 && memcmp(data, ole_magic, 8) == 0) {
        ole_scan(data, len, &df, &encrypted);
    } else if (len >= 4 && memcmp(data, "PK\x03\x04", 4) == 0) {
        zipdoc_scan(data, len, &df);
        encrypted = df.encrypted;
    } else if (find_bytes(data, len < 1024 ? len : 1024, "%PDF")) {
        mime_pdf_scan(data, len, &df);
        encrypted = df.encrypted;
    } else if (len >= 5 && memcmp(data, "{\\rt", 4) == 0) {
        if (find_bytes(data, len, "\\objdata") || find_bytes(data, len, "\\object"))
            df.ole_objects = true;
    }
    (void)true_type;
    if (encrypted) {
        char reason[1100];
        df.encrypted = true;
        snprintf(reason, sizeof reason, "%s: password-protected document", path);
        analysis_add_flag(s->a, "encrypted", reason);
    }
    f->encrypted |= df.encrypted;
    f->macros |= df.macros;
    f->ole_objects |= df.ole_objects;
    f->pdf_javascript |= df.pdf_javascript;
    f->pdf_launch |= df.pdf_launch;
    f->pdf_open_action |= df.pdf_open_action;
}

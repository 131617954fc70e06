/*
 * policy_apply.c - carrying out a disposition's modifications on the message
 * bytes: its subject tags, X-headers, stamps and attachment removals become
 * one rewrite_message call (src/rewrite, docs/rewrite.md). Used by the scan
 * worker's policy stage and by the quarantine release (the rules after
 * quarantine). Several tags of one recipient are joined with a space,
 * several stamps line by line; an archive member that must go takes its
 * whole attachment (archives are never re-packed). The removal note's
 * language is the message's: Japanese when its subject or text is.
 */
#include "core/core.h"
#include "policy/policy.h"
#include "rewrite/rewrite.h"

/* japanese - the text contains kana or CJK ideographs */
static bool japanese(const char *s)
{
    size_t len = s ? strlen(s) : 0;
    for (size_t i = 0; i < len && i < 65536;) {
        uint32_t cp;
        size_t n = core_utf8_next(s, len, i, &cp);
        if ((cp >= 0x3040 && cp <= 0x30FF) || (cp >= 0x4E00 && cp <= 0x9FFF))
            return true;
        i += n;
    }
    return false;
}

bool policy_disposition_modifies(const struct policy_disposition *d)
{
    return d->nremovals || d->nx_headers || d->nstamps || (d->ntags && !d->tag_skipped_signed);
}

const char *policy_message_lang(const struct analysis *a)
{
    return japanese(a->subject) || japanese(a->text) ? "ja" : "en";
}

int policy_apply_modifications(const struct policy_disposition *d, const struct analysis *a, const char *msg, size_t len,
                       struct buf *out, char *err, size_t errsz)
{
    struct rewrite_header hs[REWRITE_MAX_OP_HEADERS];
    struct rewrite_removal rm[REWRITE_MAX_OP_REMOVALS];
    char reasons[REWRITE_MAX_OP_REMOVALS][400];
    struct rewrite_ops ops;
    memset(&ops, 0, sizeof ops);
    struct buf tag, stamp, stamp_html;
    buf_init(&tag, REWRITE_MAX_OP_TEXT);
    buf_init(&stamp, REWRITE_MAX_OP_TEXT);
    buf_init(&stamp_html, REWRITE_MAX_OP_TEXT);
    if (!d->tag_skipped_signed)
        for (size_t i = 0; i < d->ntags; i++)
            buf_printf(&tag, "%s%s", tag.len ? " " : "", d->tags[i].tag);
    ops.subject_tag = tag.len ? buf_cstr(&tag) : NULL;
    for (size_t i = 0; i < d->nx_headers && ops.nheaders < REWRITE_MAX_OP_HEADERS; i++)
        hs[ops.nheaders++] = (struct rewrite_header){d->x_headers[i].name, d->x_headers[i].value};
    ops.headers = hs;
    bool html_differs = false;
    for (size_t i = 0; i < d->nstamps; i++) {
        const char *t = d->stamps[i].text ? d->stamps[i].text : d->stamps[i].html;
        const char *h = d->stamps[i].html ? d->stamps[i].html : d->stamps[i].text;
        html_differs |= d->stamps[i].html != NULL;
        if (t)
            buf_printf(&stamp, "%s%s", stamp.len ? "\n" : "", t);
        if (h)
            buf_printf(&stamp_html, "%s%s", stamp_html.len ? "\n" : "", h);
    }
    ops.stamp_text = stamp.len ? buf_cstr(&stamp) : NULL;
    ops.stamp_html = html_differs && stamp_html.len ? buf_cstr(&stamp_html) : NULL;
    /* removals: whole MIME parts (a member of an archive takes its archive) */
    for (size_t i = 0; i < d->nremovals; i++) {
        const struct policy_removal *r = &d->removals[i];
        if (r->attachment >= a->nattachments || !a->attachments[r->attachment].part_path)
            continue;
        const struct mime_attachment *at = &a->attachments[r->attachment];
        bool dup = false;
        for (size_t k = 0; k < ops.nremove; k++)
            dup |= strcmp(rm[k].part_path, at->part_path) == 0;
        if (dup || ops.nremove >= REWRITE_MAX_OP_REMOVALS)
            continue;
        const char *name = at->filename ? at->filename : "attachment";
        if (r->member != POLICY_WHOLE_ATTACHMENT && r->member < at->nmembers)
            snprintf(reasons[ops.nremove], sizeof reasons[0], "%.120s (%.120s): %s", name,
                     at->members[r->member].path, r->reason);
        else
            snprintf(reasons[ops.nremove], sizeof reasons[0], "%.200s: %s", name, r->reason);
        rm[ops.nremove] = (struct rewrite_removal){at->part_path, reasons[ops.nremove]};
        ops.nremove++;
    }
    ops.remove = rm;
    ops.removal_note_lang = policy_message_lang(a);
    struct rewrite_report rep;
    memset(&rep, 0, sizeof rep);
    int rc = rewrite_message(msg, len, &ops, out, &rep, err, errsz);
    rewrite_report_free(&rep);
    buf_free(&tag);
    buf_free(&stamp);
    buf_free(&stamp_html);
    return rc;
}


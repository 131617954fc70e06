/*
 * mime_json.c - the analysis as the `moatctl scan` JSON document
 * (INTERFACES.md), with jansson.
 *
 *   analysis_to_json   the document as a string (caller frees)
 *
 * Keys in a fixed order: message_id, size, subject, date, headers (from,
 * sender, reply_to, to, cc, return_path as [{name, address}], subject,
 * date, message_id, received [...], authentication_results [...], list
 * {List-* name: value}, all [{name, value}]), parts, attachments (with
 * members), urls, flags (distinct names), flag_reasons [{name, reason}],
 * security {signed_smime, signed_pgp, encrypted_smime, encrypted_pgp},
 * text, html_text, detections [{category, name, score, evidence, type
 * (virus only)}], spam null, verdict {categories []}
 * (the detectors fill the last three in a later stage).
 * Every string is UTF-8; a string that is not (from a module that forgot to
 * clean it) is cleaned here rather than dropped.
 */
#include <jansson.h>

#include "core/core.h"

#include "mime/mime_int.h"

static json_t *jstr(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    if (j)
        return j;
    char *c = mime_utf8_clean(s, strlen(s), MIME_MAX_TEXT);
    j = json_string(c);
    free(c);
    return j ? j : json_null();
}

static json_t *addresses(const struct mime_address *v, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr,
                              json_pack("{s:o,s:o}", "name", jstr(v[i].name), "address", jstr(v[i].address)));
    return arr;
}

static json_t *headers(const struct analysis *a)
{
    json_t *h = json_object();
    json_object_set_new(h, "from", addresses(a->from, a->nfrom));
    json_object_set_new(h, "sender", addresses(a->sender, a->nsender));
    json_object_set_new(h, "reply_to", addresses(a->reply_to, a->nreply_to));
    json_object_set_new(h, "to", addresses(a->to, a->nto));
    json_object_set_new(h, "cc", addresses(a->cc, a->ncc));
    json_object_set_new(h, "return_path", addresses(a->return_path, a->nreturn_path));
    json_object_set_new(h, "subject", jstr(a->subject));
    json_object_set_new(h, "date", jstr(a->date));
    json_object_set_new(h, "message_id", jstr(a->message_id));
    json_t *received = json_array(), *auth = json_array(), *list = json_object(), *all = json_array();
    for (size_t i = 0; i < a->nheaders; i++) {
        const struct mime_header *mh = &a->headers[i];
        if (strcasecmp(mh->name, "Received") == 0)
            json_array_append_new(received, jstr(mh->value));
        else if (strcasecmp(mh->name, "Authentication-Results") == 0 ||
                 strcasecmp(mh->name, "ARC-Authentication-Results") == 0 ||
                 strcasecmp(mh->name, "Received-SPF") == 0 || strcasecmp(mh->name, "DKIM-Signature") == 0 ||
                 strcasecmp(mh->name, "ARC-Seal") == 0 || strcasecmp(mh->name, "ARC-Message-Signature") == 0)
            json_array_append_new(auth,
                                  json_pack("{s:o,s:o}", "name", jstr(mh->name), "value", jstr(mh->value)));
        else if (strncasecmp(mh->name, "List-", 5) == 0 && !json_object_get(list, mh->name))
            json_object_set_new(list, mh->name, jstr(mh->value));
        json_array_append_new(all, json_pack("{s:o,s:o}", "name", jstr(mh->name), "value", jstr(mh->value)));
    }
    json_object_set_new(h, "received", received);
    json_object_set_new(h, "authentication", auth);
    json_object_set_new(h, "list", list);
    json_object_set_new(h, "all", all);
    return h;
}

static json_t *parts(const struct analysis *a)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < a->nparts; i++) {
        const struct mime_part *p = &a->parts[i];
        json_t *o = json_object();
        json_object_set_new(o, "path", jstr(p->path));
        json_object_set_new(o, "content_type", jstr(p->content_type));
        json_object_set_new(o, "charset", jstr(p->charset));
        json_object_set_new(o, "transfer_encoding", jstr(p->transfer_encoding));
        json_object_set_new(o, "disposition", jstr(p->disposition));
        json_object_set_new(o, "filename", jstr(p->filename));
        json_object_set_new(o, "size", json_integer((json_int_t)p->size));
        json_object_set_new(o, "is_text", json_boolean(p->is_text));
        json_array_append_new(arr, o);
    }
    return arr;
}

static void doc_facts(json_t *o, bool encrypted, bool decrypted, bool macros, bool ole, bool pdfjs,
                      bool pdflaunch, bool pdfopen)
{
    json_object_set_new(o, "encrypted", json_boolean(encrypted));
    json_object_set_new(o, "decrypted", json_boolean(decrypted));
    json_object_set_new(o, "macros", json_boolean(macros));
    json_object_set_new(o, "ole_objects", json_boolean(ole));
    json_object_set_new(o, "pdf_javascript", json_boolean(pdfjs));
    json_object_set_new(o, "pdf_launch", json_boolean(pdflaunch));
    json_object_set_new(o, "pdf_open_action", json_boolean(pdfopen));
}

static json_t *attachments(const struct analysis *a)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < a->nattachments; i++) {
        const struct mime_attachment *t = &a->attachments[i];
        json_t *o = json_object();
        json_object_set_new(o, "filename", jstr(t->filename));
        json_object_set_new(o, "extension", jstr(t->extension));
        json_object_set_new(o, "declared_type", jstr(t->declared_type));
        json_object_set_new(o, "true_type", jstr(t->true_type));
        json_object_set_new(o, "size", json_integer((json_int_t)t->size));
        json_object_set_new(o, "sha256", t->sha256[0] ? jstr(t->sha256) : json_null());
        json_object_set_new(o, "part_path", jstr(t->part_path));
        doc_facts(o, t->encrypted, t->decrypted, t->macros, t->ole_objects, t->pdf_javascript, t->pdf_launch,
                  t->pdf_open_action);
        json_object_set_new(o, "name_bidi", json_boolean(t->name_bidi));
        json_object_set_new(o, "double_extension", json_boolean(t->double_extension));
        json_object_set_new(o, "extracted", json_integer((json_int_t)t->extracted));
        json_t *members = json_array();
        for (size_t k = 0; k < t->nmembers; k++) {
            const struct mime_member *m = &t->members[k];
            json_t *mo = json_object();
            json_object_set_new(mo, "path", jstr(m->path));
            json_object_set_new(mo, "true_type", jstr(m->true_type));
            json_object_set_new(mo, "size", json_integer((json_int_t)m->size));
            json_object_set_new(mo, "sha256", m->sha256[0] ? jstr(m->sha256) : json_null());
            json_object_set_new(mo, "depth", json_integer((json_int_t)m->depth));
            doc_facts(mo, m->encrypted, m->decrypted, m->macros, m->ole_objects, m->pdf_javascript,
                      m->pdf_launch, m->pdf_open_action);
            json_array_append_new(members, mo);
        }
        json_object_set_new(o, "members", members);
        json_array_append_new(arr, o);
    }
    return arr;
}

static json_t *urls(const struct analysis *a)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < a->nurls; i++) {
        const struct mime_url *u = &a->urls[i];
        json_t *o = json_object();
        json_object_set_new(o, "url", jstr(u->url));
        json_object_set_new(o, "text", jstr(u->text));
        json_object_set_new(o, "host", jstr(u->host));
        json_object_set_new(o, "host_unicode", jstr(u->host_unicode));
        json_object_set_new(o, "source", jstr(u->source));
        json_array_append_new(arr, o);
    }
    return arr;
}

const char *const mime_spam_level_names[5] = {"lowest", "low", "moderate", "high", "highest"};

char *analysis_to_json(const struct analysis *a, bool pretty)
{
    json_t *root = json_object();
    json_object_set_new(root, "message_id", jstr(a->message_id));
    json_object_set_new(root, "size", json_integer((json_int_t)a->size));
    json_object_set_new(root, "subject", jstr(a->subject));
    json_object_set_new(root, "date", jstr(a->date));
    json_object_set_new(root, "headers", headers(a));
    json_object_set_new(root, "parts", parts(a));
    json_object_set_new(root, "attachments", attachments(a));
    json_object_set_new(root, "urls", urls(a));
    json_t *flags = json_array(), *reasons = json_array();
    for (size_t i = 0; i < a->nflags; i++) {
        bool seen = false;
        for (size_t k = 0; k < i; k++)
            seen |= strcmp(a->flags[k].name, a->flags[i].name) == 0;
        if (!seen)
            json_array_append_new(flags, jstr(a->flags[i].name));
        json_array_append_new(reasons, json_pack("{s:o,s:o}", "name", jstr(a->flags[i].name), "reason",
                                                 jstr(a->flags[i].reason)));
    }
    json_object_set_new(root, "flags", flags);
    json_object_set_new(root, "flag_reasons", reasons);
    json_object_set_new(root, "security",
                        json_pack("{s:b,s:b,s:b,s:b}", "signed_smime", a->signed_smime, "signed_pgp",
                                  a->signed_pgp, "encrypted_smime", a->encrypted_smime, "encrypted_pgp",
                                  a->encrypted_pgp));
    json_object_set_new(root, "text", jstr(a->text));
    json_object_set_new(root, "html_text", jstr(a->html_text));
    json_t *dets = json_array(), *cats = json_array();
    for (size_t i = 0; i < a->ndetections; i++) {
        const struct detection *d = &a->detections[i];
        json_t *dj = json_pack("{s:s,s:s,s:f,s:o}", "category", d->category, "name", d->name, "score",
                               d->score, "evidence", jstr(d->evidence));
        if (d->type)
            json_object_set_new(dj, "type", json_string(d->type));
        json_array_append_new(dets, dj);
        bool seen = false;
        for (size_t k = 0; k < json_array_size(cats); k++)
            seen |= strcmp(json_string_value(json_array_get(cats, k)), d->category) == 0;
        if (!seen)
            json_array_append_new(cats, json_string(d->category));
    }
    json_object_set_new(root, "detections", dets);
    json_t *spam = json_null();
    if (a->spam_scored) {
        json_t *lv = json_array();
        for (unsigned i = 0; i < 5; i++)
            if (a->spam_levels & (1u << i))
                json_array_append_new(lv, json_string(mime_spam_level_names[i]));
        spam = json_pack("{s:f,s:o}", "score", a->spam_score, "level_matched", lv);
    }
    json_object_set_new(root, "spam", spam);
    json_object_set_new(root, "verdict", json_pack("{s:o}", "categories", cats));
    char *s = json_dumps(root, (pretty ? JSON_INDENT(2) : JSON_COMPACT) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return s;
}

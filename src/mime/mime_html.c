/*
 * mime_html.c - HTML to what a reader sees: visible text, links with their
 * text, form actions, image sources.
 *
 *   mime_html_extract   parse (libxml2's HTML parser, no network, recovering
 *                       like a browser) and walk the tree
 *
 * Not visible (skipped): script, style, head/title, template, and any element
 * hidden by the hidden attribute or by inline CSS (display:none,
 * visibility:hidden, font-size:0, opacity:0, mso-hide:all, max-height:0 with
 * overflow:hidden). Such hidden text is the classic filter-evasion trick: it
 * never reaches a.text/a.html_text, so classifiers judge what the reader sees.
 *
 * Links: <a>/<area> href with the visible text inside the element (or the
 * alt text of an image inside it), <form action> and formaction=, <img src>,
 * background=, <meta http-equiv=refresh>. Relative URLs are ignored.
 * Bounds: the input is bounded by the caller (MIME_MAX_TEXT); libxml2 caps the
 * tree depth (256 without HTML_PARSE_HUGE) and so does our walk; link text
 * is capped at MIME_MAX_NAME.
 */
#include "core/core.h"

#include <libxml/HTMLparser.h>
#include <libxml/tree.h>

#include "mime/mime_int.h"

#define HTML_MAX_DEPTH 256

struct html_walk {
    struct analysis *a;
    struct buf *text;
    bool space;       /* the last thing appended was white space */
    struct buf *link; /* the visible text of the enclosing <a>, or NULL */
};

static bool name_is(const xmlNode *n, const char *name)
{
    return n->name && strcasecmp((const char *)n->name, name) == 0;
}

static char *attr(const xmlNode *n, const char *name)
{
    for (xmlAttr *at = n->properties; at; at = at->next) {
        if (at->name && strcasecmp((const char *)at->name, name) == 0) {
            xmlChar *v = xmlNodeListGetString(n->doc, at->children, 1);
            if (!v)
                return xstrdup("");
            char *r = xstrdup((const char *)v);
            xmlFree(v);
            return r;
        }
    }
    return NULL;
}

/* style_hides - inline CSS that makes an element invisible */
static bool style_hides(const char *style)
{
    char s[512];
    size_t n = 0;
    /* lower-case without white space, bounded: enough for the usual tricks */
    for (const char *p = style; *p && n + 1 < sizeof s; p++) {
        char c = *p;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
            continue;
        s[n++] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
    s[n] = '\0';
    static const char *const hide[] = {"display:none", "visibility:hidden", "mso-hide:all",  "opacity:0;",
                                       "font-size:0;", "font-size:0px",     "font-size:0pt", "font-size:0em"};
    for (size_t i = 0; i < sizeof hide / sizeof hide[0]; i++)
        if (strstr(s, hide[i]))
            return true;
    /* at the very end without ';' */
    size_t l = strlen(s);
    if ((l >= 9 && strcmp(s + l - 9, "opacity:0") == 0) ||
        (l >= 11 && strcmp(s + l - 11, "font-size:0") == 0))
        return true;
    if (strstr(s, "max-height:0") && strstr(s, "overflow:hidden"))
        return true;
    return false;
}

static bool is_hidden(const xmlNode *n)
{
    char *v = attr(n, "hidden");
    if (v) {
        free(v);
        return true;
    }
    v = attr(n, "style");
    bool h = v && style_hides(v);
    free(v);
    if (!h && name_is(n, "input")) {
        v = attr(n, "type");
        h = v && strcasecmp(v, "hidden") == 0;
        free(v);
    }
    return h;
}

static bool is_block(const xmlNode *n)
{
    static const char *const blocks[] = {
        "p",       "div",    "br",     "tr", "li", "h1",    "h2",         "h3",     "h4",
        "h5",      "h6",     "table",  "ul", "ol", "hr",    "blockquote", "pre",    "section",
        "article", "header", "footer", "dt", "dd", "title", "address",    "center", "form"};
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++)
        if (name_is(n, blocks[i]))
            return true;
    return false;
}

/* emit - append visible text, collapsing white space runs to one space
 * (newline for block boundaries) */
static void emit(struct html_walk *w, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ws = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
        if (ws) {
            if (!w->space) {
                buf_append(w->text, " ", 1);
                if (w->link)
                    buf_append(w->link, " ", 1);
            }
            w->space = true;
            continue;
        }
        size_t k = i;
        while (k < n && s[k] != ' ' && s[k] != '\t' && s[k] != '\n' && s[k] != '\r' && s[k] != '\f')
            k++;
        buf_append(w->text, s + i, k - i);
        if (w->link)
            buf_append(w->link, s + i, k - i);
        w->space = false;
        i = k - 1;
    }
}

static void newline(struct html_walk *w)
{
    if (w->text->len && w->text->ptr[w->text->len - 1] == '\n')
        return;
    while (w->text->len && w->text->ptr[w->text->len - 1] == ' ')
        w->text->len--;
    buf_append(w->text, "\n", 1);
    w->space = true;
}

static void add_url_attr(struct html_walk *w, const xmlNode *n, const char *name, const char *text,
                         const char *source)
{
    char *v = attr(n, name);
    if (v && *v)
        mime_url_add(w->a, v, strlen(v), text, source);
    free(v);
}

static void walk(struct html_walk *w, xmlNode *node, unsigned depth)
{
    for (xmlNode *n = node; n; n = n->next) {
        if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
            if (n->content)
                emit(w, (const char *)n->content, strlen((const char *)n->content));
            continue;
        }
        if (n->type != XML_ELEMENT_NODE)
            continue;
        if (name_is(n, "script") || name_is(n, "style") || name_is(n, "head") || name_is(n, "template") ||
            name_is(n, "title"))
            continue;
        if (name_is(n, "meta"))
            continue;
        bool hidden = is_hidden(n);
        if (name_is(n, "img")) {
            char *alt = attr(n, "alt");
            add_url_attr(w, n, "src", alt, "html_img");
            if (w->link && alt && !hidden)
                buf_printf(w->link, " %s ", alt);
            free(alt);
        }
        add_url_attr(w, n, "background", NULL, "html_img");
        if (name_is(n, "form"))
            add_url_attr(w, n, "action", NULL, "html_form");
        if (name_is(n, "input") || name_is(n, "button"))
            add_url_attr(w, n, "formaction", NULL, "html_form");
        if (hidden || depth >= HTML_MAX_DEPTH)
            continue;
        bool block = is_block(n);
        if (block)
            newline(w);
        if ((name_is(n, "a") || name_is(n, "area")) && !w->link) {
            struct buf link;
            buf_init(&link, MIME_MAX_NAME);
            w->link = &link;
            walk(w, n->children, depth + 1);
            w->link = NULL;
            char *alt = name_is(n, "area") ? attr(n, "alt") : NULL;
            add_url_attr(w, n, "href", link.len ? buf_cstr(&link) : alt, "html_href");
            free(alt);
            buf_free(&link);
        } else {
            walk(w, n->children, depth + 1);
        }
        if (block)
            newline(w);
    }
}

/* meta_refresh - <meta http-equiv="refresh" content="0; url=..."> anywhere */
static void meta_refresh(struct html_walk *w, xmlNode *node, unsigned depth)
{
    for (xmlNode *n = node; n && depth < HTML_MAX_DEPTH; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        if (name_is(n, "meta")) {
            char *he = attr(n, "http-equiv");
            char *c = he && strcasecmp(he, "refresh") == 0 ? attr(n, "content") : NULL;
            const char *u = c ? strcasestr(c, "url=") : NULL;
            if (u)
                mime_url_add(w->a, u + 4, strlen(u + 4), NULL, "html_href");
            free(he);
            free(c);
        }
        meta_refresh(w, n->children, depth + 1);
    }
}

void mime_html_extract(struct analysis *a, const char *html, size_t len, struct buf *text)
{
    if (len > MIME_MAX_TEXT)
        len = MIME_MAX_TEXT;
    if (!len)
        return;
    htmlDocPtr doc =
        htmlReadMemory(html, (int)len, NULL, "UTF-8",
                       HTML_PARSE_NONET | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_RECOVER);
    if (!doc)
        return;
    struct html_walk w = {.a = a, .text = text, .space = true};
    xmlNode *root = xmlDocGetRootElement(doc);
    if (root) {
        meta_refresh(&w, root, 0);
        walk(&w, root, 0);
    }
    xmlFreeDoc(doc);
}

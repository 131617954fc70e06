/*
 * mime.js - the safe preview of a quarantined message: a small MIME reader
 * (header unfolding, RFC 2047 words, multipart, base64 / quoted-printable,
 * charsets through TextDecoder: ISO-2022-JP, Shift_JIS, EUC-JP, UTF-8 ...)
 * over the message's exact bytes (the API's headers_b64 / body_b64, read as
 * a binary string: one character per byte), so 8-bit parts in any charset
 * come out right; without them, over the API's UTF-8 text
 * and an HTML sanitiser. The preview never renders the message's HTML in
 * the console's page: Moat.sanitizeHtml parses it in an inert document
 * (DOMParser: nothing loads, nothing runs), keeps an allow-list of plain
 * formatting elements without any attribute that could fetch or run
 * anything (no src, href, style, on*), and the result is shown in an
 * <iframe sandbox> (no scripts, no same origin) under the console's CSP
 * (images only from data: URLs - and those were removed with <img>).
 */
'use strict';
(function (M) {
  const MAX_DEPTH = 12, MAX_PARTS = 200;

  function unfold(text) { return text.replace(/\r?\n[ \t]+/g, ' '); }

  M.parseHeaders = function (text) {
    const out = [];
    for (const line of unfold(text).split(/\r?\n/)) {
      const i = line.indexOf(':');
      if (i > 0) out.push([line.slice(0, i).trim(), line.slice(i + 1).trim()]);
    }
    return out;
  };
  function header(hs, name) {
    name = name.toLowerCase();
    const f = hs.find(([n]) => n.toLowerCase() === name);
    return f ? f[1] : '';
  }
  function param(value, name) {
    const m = new RegExp(';\\s*' + name + '\\s*=\\s*(?:"([^"]*)"|([^;\\s]*))', 'i').exec(value || '');
    return m ? (m[1] !== undefined ? m[1] : m[2]) : '';
  }

  function bytesFromBinaryString(s) {
    const b = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i) & 0xff;
    return b;
  }
  function b64(s) {
    try { return bytesFromBinaryString(atob(s.replace(/[^A-Za-z0-9+/]/g, ''))); } catch (e) { return new Uint8Array(0); }
  }
  let binary = false; // parsing a binary string (one character per byte)
  function qp(s, header) {
    if (header) s = s.replace(/_/g, ' ');
    s = s.replace(/=\r?\n/g, '');
    const out = [];
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (s[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(s.substr(i + 1, 2))) { out.push(parseInt(s.substr(i + 1, 2), 16)); i += 2; }
      else if (c < 0x80 || binary) out.push(c & 0xff);
      else for (const x of new TextEncoder().encode(s[i])) out.push(x);
    }
    return new Uint8Array(out);
  }
  function decode(bytes, charset) {
    let cs = (charset || 'utf-8').toLowerCase();
    if (cs === 'us-ascii' || cs === 'ascii') cs = 'utf-8';
    try { return new TextDecoder(cs).decode(bytes); } catch (e) { return new TextDecoder('utf-8').decode(bytes); }
  }
  // guess - raw bytes without a (usable) charset label: ESC designations are
  // ISO-2022-JP, valid UTF-8 is UTF-8, else the legacy Japanese encodings
  // (EUC-JP when every 8-bit byte sits in EUC's 0xA1-0xFE range, else Shift_JIS)
  function guess(bytes) {
    let esc = false, high = false, euc = true;
    for (const b of bytes) {
      if (b === 0x1b) esc = true;
      if (b >= 0x80) { high = true; if (b < 0xa1 && b !== 0x8e && b !== 0x8f) euc = false; }
    }
    if (esc && !high) return 'iso-2022-jp';
    if (!high) return 'utf-8';
    try { new TextDecoder('utf-8', { fatal: true }).decode(bytes); return 'utf-8'; } catch (e) { /* not UTF-8 */ }
    return euc ? 'euc-jp' : 'shift_jis';
  }
  // rawText - a binary string's bytes as text: its label when it has one, else guessed
  function rawText(s, charset) {
    const bytes = bytesFromBinaryString(s);
    const cs = (charset || '').toLowerCase();
    return decode(bytes, cs && cs !== 'us-ascii' && cs !== 'ascii' ? cs : guess(bytes));
  }
  // M.bytesText - base64 of raw header bytes as display text (8-bit header
  // values decoded like an unlabelled part; controls but tab / CR / LF shown as U+FFFD)
  M.bytesText = function (b64text) {
    let s;
    try { s = atob(b64text || ''); } catch (e) { return ''; }
    return rawText(s, '').replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, '\uFFFD');
  };
  // decodeWords - RFC 2047 encoded words in a header value
  M.decodeWords = function (v) {
    return (v || '').replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=(\s+(?==\?))?/g, (all, cs, enc, text) =>
      decode(enc.toUpperCase() === 'B' ? b64(text) : qp(text, true), cs.replace(/\*.*$/, '')));
  };

  // jis7 - a 7bit ISO-2022-JP part: the API's preview replaces control characters, so
  // each ESC arrives as U+FFFD; one before an ISO-2022-JP designation ($B $@ $(D (B (J)
  // can only have been an ESC. Restored, then decoded.
  function jis7(text, cs) {
    const s = text.replace(/\uFFFD(?=\$[@B]|\$\(D|\([BJ])/g, '\x1b');
    if (/[^\x00-\x7f]/.test(s)) return text; // not 7bit after all: leave it as it came
    return decode(bytesFromBinaryString(s), cs);
  }

  function splitPart(raw) {
    const m = /\r?\n\r?\n/.exec(raw);
    if (!m) return [raw, ''];
    return [raw.slice(0, m.index), raw.slice(m.index + m[0].length)];
  }

  function walk(hs, body, depth, out) {
    if (out.length >= MAX_PARTS) return;
    const ct = header(hs, 'content-type') || 'text/plain';
    const type = ct.split(';')[0].trim().toLowerCase();
    if (type.startsWith('multipart/') && depth < MAX_DEPTH) {
      const boundary = param(ct, 'boundary');
      if (boundary) {
        const chunks = body.split(new RegExp('^--' + boundary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + '(?:--)?[ \\t]*\\r?$', 'm'));
        const closed = body.indexOf('--' + boundary + '--') >= 0; // else truncated: the last chunk is a part
        for (const c of closed ? chunks.slice(1, -1) : chunks.slice(1)) {
          const [ph, pb] = splitPart(c.replace(/^\r?\n/, ''));
          walk(M.parseHeaders(ph), pb, depth + 1, out);
        }
        return;
      }
    }
    const cte = (header(hs, 'content-transfer-encoding') || '').toLowerCase();
    const disp = header(hs, 'content-disposition');
    const filename = M.decodeWords(param(disp, 'filename') || param(ct, 'name'));
    const bytes = cte === 'base64' ? b64(body) : cte === 'quoted-printable' ? qp(body, false) : null;
    if ((type === 'text/plain' || type === 'text/html') && !/^attachment/i.test(disp)) {
      const cs = param(ct, 'charset');
      const text = bytes ? decode(bytes, cs || (binary ? guess(bytes) : '')) : binary ? rawText(body, cs)
        : /^iso-2022-jp/i.test(cs) ? jis7(body, cs) : body;
      out.push({ kind: type === 'text/html' ? 'html' : 'text', text });
    } else if (type === 'message/rfc822' && depth < MAX_DEPTH) {
      const [ph, pb] = splitPart(body);
      out.push({ kind: 'attachment', type, filename: filename || 'message.eml', size: body.length });
      walk(M.parseHeaders(ph), pb, depth + 1, out);
    } else {
      out.push({ kind: 'attachment', type, filename, size: bytes ? bytes.length : body.length });
    }
  }

  // parseMessage - {headers: [[name, value]], parts: [{kind: text|html|attachment, ...}]};
  // isBinary: the texts are binary strings of the message's bytes (M.fromBase64)
  M.parseMessage = function (headerText, bodyText, isBinary) {
    const hs = M.parseHeaders(headerText || '');
    const parts = [];
    binary = !!isBinary;
    try { walk(hs, bodyText || '', 0, parts); } finally { binary = false; }
    return { headers: hs, parts };
  };
  // fromBase64 - the API's *_b64 field as a binary string ('' when absent or bad)
  M.fromBase64 = function (b64text) {
    try { return atob(b64text || ''); } catch (e) { return ''; }
  };

  // ---------------------------------------------------------------- sanitiser
  const KEEP = new Set(['p', 'br', 'div', 'span', 'b', 'i', 'u', 's', 'strong', 'em', 'small', 'big', 'sub', 'sup',
    'table', 'thead', 'tbody', 'tfoot', 'tr', 'td', 'th', 'caption', 'ul', 'ol', 'li', 'dl', 'dt', 'dd',
    'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'blockquote', 'pre', 'code', 'hr', 'a', 'font', 'center', 'tt', 'q', 'abbr']);
  const DROP = new Set(['script', 'style', 'head', 'title', 'iframe', 'frame', 'frameset', 'object', 'embed', 'applet',
    'svg', 'math', 'template', 'noscript', 'link', 'meta', 'base', 'form', 'button', 'input', 'select', 'textarea',
    'audio', 'video', 'source', 'track', 'picture', 'canvas', 'portal', 'xmp', 'plaintext', 'noembed', 'param']);
  const ATTRS = new Set(['colspan', 'rowspan', 'align', 'valign']);

  function clean(node, doc) {
    for (const child of Array.from(node.childNodes)) {
      if (child.nodeType === 3) continue;           // text
      if (child.nodeType !== 1) { child.remove(); continue; }
      const tag = child.localName;
      if (DROP.has(tag) || child.namespaceURI !== 'http://www.w3.org/1999/xhtml') { child.remove(); continue; }
      if (tag === 'img') {
        const alt = child.getAttribute('alt');
        child.replaceWith(doc.createTextNode('[' + (alt ? alt : 'image') + ']'));
        continue;
      }
      clean(child, doc);
      if (!KEEP.has(tag)) {                          // unknown element: keep its content only
        while (child.firstChild) child.parentNode.insertBefore(child.firstChild, child);
        child.remove();
        continue;
      }
      const href = tag === 'a' ? child.getAttribute('href') : null;
      for (const a of Array.from(child.attributes)) if (!ATTRS.has(a.name.toLowerCase())) child.removeAttribute(a.name);
      if (href) child.setAttribute('title', href.slice(0, 2000)); // the link target, shown on hover, never followed
    }
  }
  M.sanitizeHtml = function (html) {
    const doc = new DOMParser().parseFromString(html, 'text/html');
    clean(doc.body, doc);
    return '<!doctype html><html><head><meta charset="utf-8"></head><body>' + doc.body.innerHTML + '</body></html>';
  };
})(window.Moat);

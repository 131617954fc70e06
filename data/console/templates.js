/*
 * templates.js - notification templates: the six shipped ones (Japanese and
 * English, by name), the tenant's own templates and overrides (the tenant
 * document's notification_templates: name, lang, subject, body) with an
 * editor and a preview that fills the variables (%SENDER%, %SUBJECT%, ...)
 * with sample values the way the daemon substitutes them (%% is a percent
 * sign, anything else stays as written). The preview is text only.
 */
'use strict';
(function (M) {
  const h = M.h, t = (k, ...a) => M.t(k, ...a);
  const SHIPPED = ['Virus detection', 'Attachment deleted', 'Non-delivery report', 'Message size exceeded',
    'Security settings violation', 'Rule triggered'];
  const SAMPLE = {
    SENDER: 'sender@example.net', RECIPIENTS: 'user@example.com', SUBJECT: 'Invoice 2026-11', RULE: 'Virus',
    DETECTIONS: 'Eicar-Test-Signature', DATE: 'Sat, 28 Nov 2026 09:00:00 +0900', QID: '6615747248AF6078D9C6',
    TENANT: 'example', QUARANTINE_ID: '1e008ed27cf63538cd3d7c12caca4242', ATTACHMENTS: 'invoice.zip',
    SIZE: '12345678', SIZE_LIMIT: '10485760', REASON: 'matched: quarantine (virus: Eicar-Test-Signature)',
  };
  M.renderTemplate = function (text) {
    return (text || '').replace(/%([A-Z_]*)%/g, (all, name) => (name === '' ? '%' : (SAMPLE[name] !== undefined ? SAMPLE[name] : all)));
  };

  M.page('templates', async function render(main, args) {
    const { tenant } = await M.policyLoad();
    const own = tenant.notification_templates || [];
    const writable = M.session.role === 'full';
    const err = M.errorBox();
    const editIndex = args[0] === 'new' ? own.length : args[0] !== undefined ? parseInt(args[0], 10) : null;
    const card = h('section', { class: 'card', id: 'templates' }, h('h1', null, t('nav.templates')),
      h('p', { class: 'hint' }, t('tpl.hint')),
      h('h2', null, t('tpl.shipped')), h('p', null, SHIPPED.join(' · ')),
      h('h2', null, t('tpl.own')), err,
      h('table', { class: 'list', id: 'tpl-table' },
        h('thead', null, h('tr', null, ['tpl.name', 'tpl.lang', 'tpl.subject', ''].map((k) => h('th', null, k ? t(k) : '')))),
        h('tbody', null, own.map((x, i) => h('tr', { 'data-name': x.name },
          h('td', null, h('a', { href: '#/templates/' + i }, x.name), SHIPPED.includes(x.name) ? h('span', { class: 'badge' }, t('tpl.override')) : null),
          h('td', null, x.lang), h('td', { class: 'subject' }, x.subject),
          h('td', null, writable ? h('button', { type: 'button', class: 'link danger', onclick: async () => {
            if (!window.confirm(t('tpl.confirm.delete', x.name))) return;
            const copy = JSON.parse(JSON.stringify(tenant));
            copy.notification_templates.splice(i, 1);
            try { await M.policySave(copy); M.go('templates'); } catch (e) { err.show(e.message); }
          } }, t('delete')) : null))))),
      writable ? h('div', { class: 'actions' }, h('a', { class: 'button', href: '#/templates/new', id: 'tpl-add' }, t('tpl.add'))) : null);
    main.appendChild(card);
    if (editIndex === null || (editIndex !== own.length && !own[editIndex])) return;

    const cur = own[editIndex] || { name: '', lang: M.lang, subject: '', body: '' };
    const name = h('input', { type: 'text', id: 'tpl-name', value: cur.name, maxlength: 128, list: 'tpl-names' });
    const names = h('datalist', { id: 'tpl-names' }, SHIPPED.map((n) => h('option', { value: n })));
    const lang = M.select({ id: 'tpl-lang' }, [['ja', '日本語 (ja)'], ['en', 'English (en)']], cur.lang);
    const subject = h('input', { type: 'text', id: 'tpl-subject', value: cur.subject, maxlength: 600 });
    const body = h('textarea', { id: 'tpl-body', rows: 12 }, cur.body);
    const pv = h('pre', { id: 'tpl-preview', class: 'msgtext' });
    const ferr = M.errorBox();
    function preview() { pv.textContent = t('tpl.subject') + ': ' + M.renderTemplate(subject.value) + '\n\n' + M.renderTemplate(body.value); }
    [subject, body].forEach((el) => el.addEventListener('input', preview));
    preview();
    const save = h('button', { type: 'button', id: 'tpl-save', disabled: !writable }, t('save'));
    save.addEventListener('click', async () => {
      ferr.show('');
      const copy = JSON.parse(JSON.stringify(tenant));
      copy.notification_templates = copy.notification_templates || [];
      copy.notification_templates[editIndex] = { name: name.value.trim(), lang: lang.value, subject: subject.value, body: body.value };
      try { await M.policySave(copy); M.notice(t('saved'), 'ok'); M.go('templates'); } catch (e) { ferr.show(e.message); }
    });
    main.appendChild(h('section', { class: 'card', id: 'tpl-editor' }, h('h2', null, cur.name ? cur.name : t('tpl.add')),
      h('div', { class: 'two' },
        h('div', null, M.field(t('tpl.name'), name, t('tpl.name.hint')), names, M.field(t('tpl.lang'), lang),
          M.field(t('tpl.subject'), subject), M.field(t('tpl.body'), body, t('tpl.vars')), ferr,
          h('div', { class: 'actions' }, save, h('a', { class: 'button secondary', href: '#/templates' }, t('cancel')))),
        h('div', null, h('h3', null, t('tpl.preview')), pv))));
  });
})(window.Moat);

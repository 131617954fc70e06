/*
 * endusers.js - end-user administration (PRODUCT.md §7): the tenant's End
 * User Console settings (on/off, local accounts, 2FA required, which
 * quarantine categories users see) and its end users: a table with search
 * and paging, enable / disable toggles, "send the password-set mail again",
 * delete with a confirmation, an add form, CSV import (a file read in the
 * browser and posted as text; the API's errors are listed by line) and a
 * CSV export link. Operators pick the tenant first. Everything from the API
 * is shown as text (Moat.h); read-only administrators see the same page
 * without the controls that change something.
 */
'use strict';
(function (M) {
  const h = M.h, t = (k, ...a) => M.t(k, ...a);
  const CATEGORIES = ['spam', 'phishing', 'graymail', 'bec', 'web_reputation', 'social_engineering', 'virus', 'content'];
  const PAGE = 100;
  let operatorTenant = null;
  let search = '', offset = 0;

  // tenantQuery - "?tenant=ID" for an operator (merged into params), "" for a tenant administrator
  function q(params) {
    return M.qs(Object.assign(M.session.tenant ? {} : { tenant: operatorTenant }, params || {}));
  }

  M.page('endusers', async function render(main) {
    const writable = M.session.role === 'full';
    const rerender = () => { M.clear(main); render(main); };
    if (!M.session.tenant) {
      const r = await M.api('GET', '/api/v1/tenants');
      const ids = (r.tenants || []).map((x) => (typeof x === 'string' ? x : x.company_id));
      if (!ids.length) { main.appendChild(h('p', null, t('pol.notenant'))); return; }
      if (!operatorTenant || !ids.includes(operatorTenant)) operatorTenant = ids[0];
      const pick = M.select({ id: 'eu-tenant', 'aria-label': t('account.tenant') }, ids.map((x) => [x, x]), operatorTenant);
      pick.addEventListener('change', () => { operatorTenant = pick.value; offset = 0; rerender(); });
      main.appendChild(h('div', { class: 'actions' }, h('span', null, t('account.tenant')), pick));
    }
    const [set, list] = await Promise.all([
      M.api('GET', '/api/v1/end-user-console' + q()),
      M.api('GET', '/api/v1/endusers' + q({ q: search, offset, limit: PAGE }))]);
    main.appendChild(settingsCard(set, writable, rerender));
    main.appendChild(usersCard(set, list, writable, rerender));
  });

  // ---------------------------------------------------------------- settings
  function settingsCard(set, writable, rerender) {
    const err = M.errorBox();
    const box = (id, on, label) => {
      const c = h('input', { type: 'checkbox', id, checked: on, disabled: !writable });
      return [c, h('label', { class: 'check' }, c, ' ', label)];
    };
    const [en, enL] = box('euc-enabled', set.enabled, t('eu.enabled'));
    const [la, laL] = box('euc-local', set.local_accounts, t('eu.local'));
    const [tf, tfL] = box('euc-2fa', set.enforce_2fa, t('eu.2fa'));
    const cats = CATEGORIES.map((c) => box('euc-cat-' + c, (set.quarantine_categories || []).includes(c), t('eu.cat.' + c)));
    const form = h('form', { class: 'card', id: 'euc-settings' }, h('h1', null, t('title.endusers')),
      h('p', { class: 'hint' }, t('eu.hint')), enL, laL, tfL,
      h('fieldset', null, h('legend', null, t('eu.categories')), h('div', { class: 'checks' }, cats.map((x) => x[1]))),
      err, writable ? h('div', { class: 'actions' }, h('button', { type: 'submit', id: 'euc-save' }, t('save'))) : null);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.show('');
      const body = { enabled: en.checked, local_accounts: la.checked, enforce_2fa: tf.checked,
        quarantine_categories: CATEGORIES.filter((c, i) => cats[i][0].checked) };
      try { await M.api('PUT', '/api/v1/end-user-console' + q(), body); M.notice(t('saved'), 'ok'); rerender(); } catch (e) { err.show(e.message); }
    });
    return form;
  }

  // ---------------------------------------------------------------- the accounts
  function usersCard(set, list, writable, rerender) {
    const err = M.errorBox();
    const act = async (fn, done) => {
      err.show('');
      try { const r = await fn(); if (done) M.notice(done(r), 'ok'); rerender(); } catch (e) { err.show(e.message); }
    };
    const find = h('input', { type: 'text', id: 'eu-search', value: search, maxlength: 254, placeholder: t('eu.search.hint') });
    const sf = h('form', { class: 'actions', id: 'eu-search-form' }, find, h('button', { type: 'submit' }, t('search')),
      h('span', { class: 'count', id: 'eu-count' }, t('results.count', list.total)),
      h('span', { class: 'spacer' }),
      h('a', { class: 'button secondary', id: 'eu-export', href: '/api/v1/endusers/export' + q(), download: 'endusers.csv' }, t('csv.export')));
    sf.addEventListener('submit', (ev) => { ev.preventDefault(); search = find.value.trim(); offset = 0; rerender(); });
    const rows = (list.endusers || []).map((u) => {
      const tg = h('button', { type: 'button', class: 'toggle ' + (u.enabled ? 'on' : 'off'), 'aria-pressed': u.enabled ? 'true' : 'false',
        disabled: !writable, title: t(u.enabled ? 'adm.disable' : 'adm.enable') }, u.enabled ? t('pol.on') : t('pol.off'));
      tg.addEventListener('click', () => act(() => M.api('PATCH', '/api/v1/endusers/' + u.id, { enabled: !u.enabled })));
      return h('tr', { 'data-email': u.email },
        h('td', null, u.email), h('td', null, u.name), h('td', null, tg),
        h('td', null, u.password_set ? t('eu.pw.set') : t('eu.pw.notset')),
        h('td', null, M.fmtTime(u.password_mail_sent)), h('td', null, M.fmtTime(u.last_login)),
        h('td', null, writable ? [
          h('button', { type: 'button', class: 'link eu-mail', onclick: () => act(() => M.api('POST', '/api/v1/endusers/' + u.id + '/password-mail'),
            () => t('eu.mail.sent', u.email)) }, t('eu.mail')), ' ',
          h('button', { type: 'button', class: 'link danger eu-delete', onclick: () => {
            if (window.confirm(t('eu.confirm.delete', u.email))) act(() => M.api('DELETE', '/api/v1/endusers/' + u.id), () => t('eu.deleted', u.email));
          } }, t('delete'))] : null));
    });
    const paging = h('div', { class: 'actions small' },
      offset > 0 ? h('button', { type: 'button', class: 'secondary', onclick: () => { offset = Math.max(0, offset - PAGE); rerender(); } }, t('prev')) : null,
      offset + PAGE < list.total ? h('button', { type: 'button', class: 'secondary', onclick: () => { offset += PAGE; rerender(); } }, t('next')) : null);
    const card = h('section', { class: 'card', id: 'endusers' }, h('h2', null, t('eu.accounts')),
      set.enabled ? null : h('p', { class: 'warn', id: 'eu-off' }, t('eu.off')),
      sf, err,
      h('table', { class: 'list', id: 'eu-table' },
        h('thead', null, h('tr', null, ['login.email', 'eu.name', 'pol.status', 'eu.pw', 'eu.mailsent', 'account.lastlogin', '']
          .map((k) => h('th', { scope: 'col' }, k ? t(k) : '')))),
        h('tbody', null, rows)), paging);
    if (writable) {
      card.appendChild(addForm(rerender));
      card.appendChild(importForm(rerender));
    }
    return card;
  }

  // mailNote - what the API said about the password-set mail
  function mailNote(r) {
    return r.password_mail === 'queued' ? t('eu.mail.sent', r.email) : t('eu.mail.notsent', r.password_mail_reason || '');
  }

  function addForm(rerender) {
    const err = M.errorBox();
    const email = h('input', { type: 'email', id: 'eu-email', maxlength: 254, required: true });
    const name = h('input', { type: 'text', id: 'eu-name', maxlength: 128 });
    const on = h('input', { type: 'checkbox', id: 'eu-enabled', checked: true });
    const f = h('form', { class: 'add', id: 'eu-add' }, h('h2', null, t('eu.add')),
      h('div', { class: 'grid' }, M.field(t('login.email'), email, t('eu.email.hint')), M.field(t('eu.name'), name)),
      h('label', { class: 'check' }, on, ' ', t('eu.enabled.account')), err,
      h('button', { type: 'submit' }, t('eu.add')));
    f.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.show('');
      try {
        const r = await M.api('POST', '/api/v1/endusers' + q(), { email: email.value.trim(), name: name.value.trim(), enabled: on.checked });
        M.notice(mailNote(r), 'ok'); rerender();
      } catch (e) { err.show(e.message); }
    });
    return f;
  }

  function importForm(rerender) {
    const err = M.errorBox();
    const file = h('input', { type: 'file', id: 'eu-file', accept: '.csv,text/csv', required: true });
    const mail = h('input', { type: 'checkbox', id: 'eu-import-mail', checked: true });
    const errors = h('div', { id: 'eu-import-errors' });
    const f = h('form', { class: 'add', id: 'eu-import' }, h('h2', null, t('csv.import')),
      h('p', { class: 'hint' }, t('eu.import.hint')), file,
      h('label', { class: 'check' }, mail, ' ', t('eu.import.mail')), err, errors,
      h('button', { type: 'submit', id: 'eu-import-submit' }, t('csv.import')));
    f.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.show('');
      M.clear(errors);
      const fl = file.files && file.files[0];
      if (!fl) { err.show(t('eu.import.nofile')); return; }
      if (fl.size > 2 * 1024 * 1024) { err.show(t('eu.import.toolarge')); return; }
      try {
        const r = await M.api('POST', '/api/v1/endusers/import' + q(), { csv: await fl.text(), send_mail: mail.checked });
        M.notice(t('eu.import.done', r.created, r.updated, r.unchanged, r.password_mails), 'ok');
        rerender();
      } catch (e) {
        err.show(e.message);
        const list = (e.data && e.data.errors) || [];
        if (list.length) {
          errors.appendChild(h('table', { class: 'list', id: 'eu-import-table' },
            h('thead', null, h('tr', null, h('th', { scope: 'col' }, t('eu.line')), h('th', { scope: 'col' }, t('eu.problem')))),
            h('tbody', null, list.map((x) => h('tr', null, h('td', { class: 'num' }, x.line ? String(x.line) : '-'), h('td', null, x.error))))));
        }
      }
    });
    return f;
  }
})(window.Moat);

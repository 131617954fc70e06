/*
 * admin.js - administration: the tenant's administrators (add with a role,
 * change role, disable / enable, reset TOTP, delete), the tenant's
 * "require two-factor authentication" setting, and the audit log (who
 * changed what, when).
 */
'use strict';
(function (M) {
  const h = M.h, t = (k, ...a) => M.t(k, ...a);

  M.page('admins', async function render(main) {
    const writable = M.session.role === 'full';
    const rerender = () => { M.clear(main); render(main); };
    const r = await M.api('GET', '/api/v1/accounts');
    const err = M.errorBox();
    async function patch(a, body, done) {
      err.show('');
      try { await M.api('PATCH', '/api/v1/accounts/' + a.id, body); M.notice(done, 'ok'); rerender(); } catch (e) { err.show(e.message); }
    }
    const card = h('section', { class: 'card', id: 'admins' }, h('h1', null, t('nav.admins')), err,
      h('table', { class: 'list', id: 'admins-table' },
        h('thead', null, h('tr', null, ['login.email', 'account.tenant', 'account.role', 'account.totp', 'pol.status', 'account.lastlogin', ''].map((k) => h('th', null, k ? t(k) : '')))),
        h('tbody', null, (r.accounts || []).map((a) => {
          const me = a.email === M.session.email;
          const role = M.select({ disabled: !writable || me, 'aria-label': t('account.role') }, [['full', t('role.full')], ['read-only', t('role.readonly')]], a.role);
          role.addEventListener('change', () => patch(a, { role: role.value }, t('saved')));
          return h('tr', { 'data-email': a.email },
            h('td', null, a.email), h('td', null, a.tenant || t('who.operator')), h('td', null, role),
            h('td', null, a.totp_enabled ? t('pol.on') : t('pol.off')),
            h('td', null, a.disabled ? t('adm.disabled') : a.locked ? t('adm.locked') : t('pol.on')),
            h('td', null, M.fmtTime(a.last_login)),
            h('td', null, writable && !me ? [
              h('button', { type: 'button', class: 'link', onclick: () => patch(a, { disabled: !a.disabled }, t('saved')) }, a.disabled ? t('adm.enable') : t('adm.disable')), ' ',
              a.totp_enabled ? h('button', { type: 'button', class: 'link', onclick: () => {
                if (window.confirm(t('adm.confirm.totp', a.email))) patch(a, { reset_totp: true }, t('saved'));
              } }, t('adm.resettotp')) : null, ' ',
              h('button', { type: 'button', class: 'link danger', onclick: async () => {
                if (!window.confirm(t('adm.confirm.delete', a.email))) return;
                try { await M.api('DELETE', '/api/v1/accounts/' + a.id); rerender(); } catch (e) { err.show(e.message); }
              } }, t('delete'))] : null));
        }))));
    if (writable) {
      const email = h('input', { type: 'email', id: 'adm-email', maxlength: 254, required: true });
      const pw = h('input', { type: 'password', id: 'adm-password', autocomplete: 'new-password', minlength: 10, maxlength: 256, required: true });
      const role = M.select({ id: 'adm-role' }, [['full', t('role.full')], ['read-only', t('role.readonly')]], 'read-only');
      const f = h('form', { class: 'add' }, h('h2', null, t('adm.add')), h('div', { class: 'grid' },
        M.field(t('login.email'), email), M.field(t('login.password'), pw, t('account.password.hint')), M.field(t('account.role'), role)),
        h('button', { type: 'submit' }, t('adm.add')));
      f.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        err.show('');
        try {
          await M.api('POST', '/api/v1/accounts', { email: email.value.trim(), password: pw.value, role: role.value });
          M.notice(t('saved'), 'ok'); rerender();
        } catch (e) { err.show(e.message); }
      });
      card.appendChild(f);
    }
    main.appendChild(card);
    {
      const sec = await M.api('GET', '/api/v1/security');
      const box = h('input', { type: 'checkbox', id: 'sec-totp', checked: !!sec.totp_required, disabled: !writable || sec.totp_required });
      box.addEventListener('change', async () => {
        if (!window.confirm(t('adm.confirm.require'))) { box.checked = false; return; }
        try { await M.api('PUT', '/api/v1/security', { totp_required: true }); M.notice(t('saved'), 'ok'); rerender(); } catch (e) { box.checked = false; err.show(e.message); }
      });
      main.appendChild(h('section', { class: 'card' }, h('h2', null, t('adm.security')),
        h('label', { class: 'check' }, box, ' ', t(M.session.tenant ? 'adm.require' : 'adm.require.op')), h('p', { class: 'hint' }, t('adm.require.hint'))));
    }
  });

  M.page('audit', async function (main) {
    const r = await M.api('GET', '/api/v1/audit?limit=500');
    main.appendChild(h('section', { class: 'card', id: 'audit' }, h('h1', null, t('nav.audit')),
      h('table', { class: 'list', id: 'audit-table' },
        h('thead', null, h('tr', null, ['tr.col.time', 'audit.actor', 'audit.action', 'account.tenant', 'audit.detail'].map((k) => h('th', null, t(k))))),
        h('tbody', null, (r.entries || []).map((e) => h('tr', null, h('td', null, M.fmtTime(e.time)), h('td', null, e.actor),
          h('td', null, h('code', null, e.action)), h('td', null, e.tenant || ''), h('td', { class: 'subject' }, e.detail || '')))))));
  });
})(window.Moat);

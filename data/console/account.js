/*
 * account.js - two-factor authentication: the "strengthen your security"
 * page offered at every login until TOTP is on (the seed's first-login
 * screen), enrolment (QR code and secret from POST /api/v1/account/totp,
 * confirmation with one code, the recovery codes shown once), and the
 * account page (TOTP state, password change).
 */
'use strict';
(function (M) {
  const h = M.h, t = (k, ...a) => M.t(k, ...a);

  M.page('totp-intro', function (main) {
    main.appendChild(h('section', { class: 'card narrow', id: 'totp-intro' },
      h('h1', null, t('totp.intro.title')),
      h('p', null, t('totp.intro.what')),
      h('p', null, t('totp.intro.why')),
      h('div', { class: 'actions' },
        h('button', { type: 'button', id: 'totp-start', onclick: () => M.go('totp') }, t('totp.intro.setup')),
        h('button', { type: 'button', class: 'secondary', id: 'totp-skip', onclick: () => {
          sessionStorage.setItem('moat.skip2fa', M.session.email);
          M.go(M.session.wizard_pending ? 'welcome' : 'dashboard');
        } }, t('totp.intro.skip')))));
  });

  M.page('totp', async function (main) {
    const box = h('section', { class: 'card narrow', id: 'totp-enrol' }, h('h1', null, t('totp.title')));
    main.appendChild(box);
    if (M.session.totp_enrolment_required) box.appendChild(h('p', { class: 'warn' }, t('totp.required')));
    if (M.session.totp_enabled) {
      box.appendChild(h('p', null, t('totp.already')));
      return;
    }
    const e = await M.api('POST', '/api/v1/account/totp', {});
    box.appendChild(h('p', null, t('totp.scan')));
    if (e.qr_svg) {
      // the SVG as an image: an <img> never runs anything inside it
      const src = 'data:image/svg+xml;base64,' + btoa(unescape(encodeURIComponent(e.qr_svg)));
      box.appendChild(h('img', { class: 'qr', id: 'totp-qr', src, alt: t('totp.qr.alt'), width: 220, height: 220 }));
    }
    box.appendChild(h('p', null, t('totp.secret'), ' ', h('code', { id: 'totp-secret' }, e.secret)));
    const code = h('input', { type: 'text', id: 'totp-code', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: 6, pattern: '[0-9]{6}', required: true });
    const err = M.errorBox();
    const form = h('form', { id: 'totp-form' }, M.field(t('totp.code'), code), err,
      h('button', { type: 'submit', id: 'totp-confirm' }, t('totp.confirm')));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.show('');
      try {
        const r = await M.api('POST', '/api/v1/account/totp/confirm', { code: code.value.trim() });
        M.session = await M.api('GET', '/api/v1/session');
        M.clear(box);
        box.appendChild(h('h1', null, t('totp.done')));
        box.appendChild(h('p', null, t('totp.recovery')));
        box.appendChild(h('ol', { class: 'codes', id: 'recovery-codes' }, (r.recovery_codes || []).map((c) => h('li', null, h('code', null, c)))));
        box.appendChild(h('button', { type: 'button', id: 'totp-continue', onclick: () => M.go(M.session.wizard_pending ? 'welcome' : 'dashboard') }, t('totp.continue')));
      } catch (x) {
        err.show(x.message);
      }
    });
    box.appendChild(form);
    code.focus();
  });

  M.page('account', async function (main) {
    const s = await M.api('GET', '/api/v1/session');
    M.session = s;
    const sec = h('section', { class: 'card narrow' }, h('h1', null, t('account.title')),
      h('dl', { class: 'kv' },
        h('dt', null, t('login.email')), h('dd', null, s.email),
        h('dt', null, t('account.tenant')), h('dd', null, s.tenant || t('who.operator')),
        h('dt', null, t('account.role')), h('dd', null, s.role === 'full' ? t('role.full') : t('role.readonly')),
        h('dt', null, t('account.totp')), h('dd', { id: 'account-totp' }, s.totp_enabled ? t('account.totp.on', s.recovery_codes_left || 0) : t('account.totp.off')),
        h('dt', null, t('account.lastlogin')), h('dd', null, M.fmtTime(s.last_login))));
    if (!s.totp_enabled) sec.appendChild(h('button', { type: 'button', id: 'account-totp-setup', onclick: () => M.go('totp') }, t('totp.intro.setup')));
    main.appendChild(sec);

    const cur = h('input', { type: 'password', autocomplete: 'current-password', required: true });
    const nw = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 10, maxlength: 256 });
    const err = M.errorBox();
    const form = h('form', { class: 'card narrow' }, h('h2', null, t('account.password')),
      M.field(t('account.password.current'), cur), M.field(t('account.password.new'), nw, t('account.password.hint')), err,
      h('button', { type: 'submit' }, t('save')));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.show('');
      try {
        await M.api('POST', '/api/v1/account/password', { current: cur.value, new: nw.value });
        cur.value = ''; nw.value = '';
        M.notice(t('account.password.changed'), 'ok');
      } catch (x) { err.show(x.message); }
    });
    main.appendChild(form);
  });
})(window.Moat);

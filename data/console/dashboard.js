/*
 * dashboard.js - the dashboard (PRODUCT.md §5) from GET /api/v1/stats:
 * per domain and period, the totals, messages and threats over time and
 * threats by type over time (inline SVG charts built with createElementNS -
 * no library, no HTML strings), threats by type (SVG bars), recipients by status, the top
 * targeted recipients, top recipients and top senders.
 */
'use strict';
(function (M) {
  const h = M.h, t = (k, ...a) => M.t(k, ...a);
  let state = { domain: '', period: '24h' };

  // lineChart - lines: [{values: [n per bucket], cls, label}], starts: bucket start times
  function lineChart(lines, starts, bucket, id, label) {
    const W = 720, H = 220, L = 44, R = 10, T = 12, B = 28;
    const n = starts.length;
    const max = Math.max(1, ...lines.map((l) => Math.max(0, ...l.values)));
    const x = (i) => L + (n <= 1 ? 0 : (i * (W - L - R)) / (n - 1));
    const y = (v) => T + (H - T - B) * (1 - v / max);
    const svg = h('svg:svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'chart', role: 'img', id, 'aria-label': label });
    for (let k = 0; k <= 4; k++) {
      const v = Math.round((max * k) / 4);
      svg.appendChild(h('svg:line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
      svg.appendChild(h('svg:text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, String(v)));
    }
    if (!n) return svg;
    lines.forEach((l) => {
      svg.appendChild(h('svg:path', { d: l.values.map((v, i) => (i ? 'L' : 'M') + x(i).toFixed(1) + ' ' + y(v || 0).toFixed(1)).join(' '),
        class: 'line ' + l.cls }));
      l.values.forEach((v, i) => {
        if (!v) return;
        const c = h('svg:circle', { cx: x(i), cy: y(v), r: 3, class: 'dot ' + l.cls });
        c.appendChild(h('svg:title', null, M.fmtTime(starts[i]) + ': ' + l.label + ' ' + v));
        svg.appendChild(c);
      });
    });
    const step = Math.max(1, Math.ceil(n / 6));
    for (let i = 0; i < n; i += step) {
      const d = new Date(starts[i] * 1000);
      const lab = bucket >= 86400 ? (d.getMonth() + 1) + '/' + d.getDate() : d.getHours() + ':' + String(d.getMinutes()).padStart(2, '0');
      svg.appendChild(h('svg:text', { x: x(i), y: H - 8, 'text-anchor': 'middle', class: 'axis' }, lab));
    }
    return svg;
  }
  function catLabel(c) { return t('cat.' + c) === 'cat.' + c ? c : t('cat.' + c); }
  function legend(lines) {
    return h('p', { class: 'legend' }, lines.map((l) => [h('span', { class: 'key ' + l.cls }, '■'), ' ', l.label, '  ']));
  }

  function bars(items, key, id) {
    const W = 360, row = 24, H = Math.max(row, items.length * row);
    const max = Math.max(1, ...items.map((x) => x.count));
    const svg = h('svg:svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'bars', id, role: 'img' });
    items.forEach((it, i) => {
      const label = catLabel(it[key]);
      const w = Math.max(2, ((W - 170) * it.count) / max);
      svg.appendChild(h('svg:text', { x: 0, y: i * row + 16, class: 'axis' }, label));
      svg.appendChild(h('svg:rect', { x: 120, y: i * row + 4, width: w, height: row - 8, class: 'bar c-' + it[key] }));
      svg.appendChild(h('svg:text', { x: 126 + w, y: i * row + 16, class: 'axis' }, String(it.count)));
    });
    return svg;
  }

  function top(title, items, key, id) {
    return h('section', { class: 'card small' }, h('h2', null, title),
      items.length ? h('table', { class: 'list', id }, h('tbody', null, items.map((x) =>
        h('tr', null, h('td', null, x[key] === '' ? '<>' : x[key]), h('td', { class: 'num' }, M.fmtNum(x.count))))))
        : h('p', { class: 'hint' }, t('dash.nodata')));
  }

  M.page('dashboard', async function (main) {
    let domains = [];
    try { domains = (await M.api('GET', '/api/v1/domains')).domains || []; } catch (e) { domains = []; }
    const dom = M.select({ id: 'dash-domain' }, [['', t('dash.alldomains')]].concat(domains.map((d) => [d.name, d.name])), state.domain);
    const per = M.select({ id: 'dash-period' }, [['1h', t('period.1h')], ['24h', t('period.24h')], ['7d', t('period.7d')], ['30d', t('period.30d')]], state.period);
    const out = h('div', { id: 'dash-body' });
    const err = M.errorBox();
    main.append(h('section', { class: 'card search' }, h('h1', null, t('title.dashboard')),
      h('div', { class: 'grid' }, M.field(t('dash.domain'), dom), M.field(t('tr.period'), per)), err), out);
    async function run() {
      state = { domain: dom.value, period: per.value };
      err.show('');
      let s;
      try { s = await M.api('GET', '/api/v1/stats' + M.qs({ domain: state.domain, since: state.period })); } catch (e) { err.show(e.message); return; }
      M.clear(out);
      const tot = s.totals || {};
      out.appendChild(h('div', { class: 'tiles', id: 'dash-totals' },
        [['messages', 'dash.messages'], ['recipients', 'dash.recipients'], ['threats', 'dash.threats'], ['rejected', 'dash.rejected']]
          .map(([k, l]) => h('div', { class: 'tile t-' + k }, h('span', { class: 'big', 'data-total': k }, M.fmtNum(tot[k] || 0)), h('span', null, t(l))))));
      const series = s.series || [], starts = series.map((p) => p.start), bucket = s.bucket_seconds || 3600;
      const main2 = [{ values: series.map((p) => p.messages || 0), cls: 'messages', label: t('dash.messages') },
        { values: series.map((p) => p.threats || 0), cls: 'threats', label: t('dash.threats') }];
      out.appendChild(h('section', { class: 'card' }, h('h2', null, t('dash.overtime')), legend(main2),
        lineChart(main2, starts, bucket, 'dash-chart', t('dash.overtime'))));
      const byType = Object.entries(s.series_by_type || {}).map(([c, v]) => ({ values: v, cls: 'c-' + c, label: catLabel(c) }));
      if (byType.length) {
        out.appendChild(h('section', { class: 'card' }, h('h2', null, t('dash.typetime')), legend(byType),
          lineChart(byType, starts, bucket, 'dash-typechart', t('dash.typetime'))));
      }
      const threats = s.threats_by_type || [];
      out.appendChild(h('div', { class: 'two' },
        h('section', { class: 'card small' }, h('h2', null, t('dash.bytype')), threats.length ? bars(threats, 'type', 'dash-threats') : h('p', { class: 'hint' }, t('dash.nothreats'))),
        h('section', { class: 'card small' }, h('h2', null, t('dash.bystatus')),
          h('table', { class: 'list', id: 'dash-status' }, h('tbody', null, (s.recipients_by_status || []).map((x) =>
            h('tr', null, h('td', null, M.statusLabel ? M.statusLabel(x.status) : x.status), h('td', { class: 'num' }, M.fmtNum(x.count)))))))));
      out.appendChild(h('div', { class: 'three' },
        top(t('dash.targeted'), s.top_targeted_recipients || [], 'rcpt', 'dash-targeted'),
        top(t('dash.toprcpt'), s.top_recipients || [], 'rcpt', 'dash-toprcpt'),
        top(t('dash.topsend'), s.top_senders || [], 'sender', 'dash-topsend')));
    }
    dom.addEventListener('change', run);
    per.addEventListener('change', run);
    await run();
  });
})(window.Moat);

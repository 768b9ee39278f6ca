// Socius emulator console: the only script. It shows new calls on the request log page
// as they arrive (when the user asks for it), by long-polling the admin API and then
// reloading the log table; and it puts the default silhouette in place of a profile
// photo that does not load, as the Comments plugin does. Every page works without it.
'use strict';

(function () {
  const fallback = '/_emulator/static/avatar.svg';
  for (const img of document.querySelectorAll('img.avatar')) {
    const swap = () => {
      if (!img.src.endsWith(fallback)) img.src = fallback;
    };
    img.addEventListener('error', swap);
    if (img.complete && img.naturalWidth === 0) swap();
  }
})();

(function () {
  const box = document.querySelector('[data-refresh-target]');
  if (!box) return;
  let target = document.getElementById(box.dataset.refreshTarget);
  const toggle = box.querySelector('input[type=checkbox]');
  let last = box.dataset.refreshLast;
  let running = false;
  box.hidden = false;
  toggle.checked = sessionStorage.getItem('socius-log-refresh') === '1';

  async function poll() {
    if (running) return;
    running = true;
    while (toggle.checked) {
      try {
        const r = await fetch('/_emulator/api/log?limit=1&wait=15s&after=' + encodeURIComponent(last), { cache: 'no-store' });
        const page = await r.json();
        if (page.last > Number(last)) {
          last = String(page.last);
          const html = await (await fetch(location.href, { cache: 'no-store' })).text();
          const fresh = new DOMParser().parseFromString(html, 'text/html').getElementById(target.id);
          if (fresh) target.replaceWith(fresh);
          target = document.getElementById(fresh ? fresh.id : target.id);
        }
      } catch (e) {
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    }
    running = false;
  }
  toggle.addEventListener('change', () => {
    sessionStorage.setItem('socius-log-refresh', toggle.checked ? '1' : '0');
    if (toggle.checked) poll();
  });
  if (toggle.checked) poll();
})();

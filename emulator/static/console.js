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

  const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // One long poll at a time. The answer's last is the newest call's number: another
  // number than ours means news, a smaller one too (a restarted server counts from 0
  // again, and waiting for calls after our old number would show nothing for as long).
  // A refusal or an answer without a number waits 2 s before the next try, and a poll
  // that came back early with nothing new waits 1 s, so that the loop never spins.
  async function poll() {
    if (running) return;
    running = true;
    while (toggle.checked) {
      const started = Date.now();
      try {
        const r = await fetch('/_emulator/api/log?limit=1&wait=15s&after=' + encodeURIComponent(last), { cache: 'no-store' });
        if (!r.ok) throw new Error('HTTP ' + r.status);
        const page = await r.json();
        if (!Number.isSafeInteger(page.last)) throw new Error('no last in the answer');
        if (page.last !== Number(last)) {
          last = String(page.last);
          const html = await (await fetch(location.href, { cache: 'no-store' })).text();
          const fresh = new DOMParser().parseFromString(html, 'text/html').getElementById(target.id);
          if (fresh) target.replaceWith(fresh);
          target = document.getElementById(fresh ? fresh.id : target.id);
        } else if (Date.now() - started < 1000) {
          await pause(1000);
        }
      } catch (e) {
        await pause(2000);
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

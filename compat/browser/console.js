'use strict';
// console.js: opens the Socius emulator's web console in Debian's headless Chromium
// (driven by playwright-core, pinned in package.json / package-lock.json; no browser is
// downloaded) and checks what a developer relies on: the console loads, lists a seeded
// user, finds it by e-mail, shows it as the Comments plugin would, shows the base
// string the server signed for a call with a wrong signature, follows new calls, its
// forms work from a real browser (same-origin checks included), and a page of another
// origin may link to it but not load it. It saves screenshots. cmd/socius/browser_test.go runs it; by hand:
//
//   CONSOLE_URL=http://127.0.0.1:8080/_emulator/ EXPECT_UID=alice EXPECT_EMAIL=alice@example.com \
//   EXPECT_NAME=ally EXPECT_CALL_ID=<callId of a 403003> EXPECT_BASE_STRING='POST&http%3A...' \
//   SCREENSHOT=test-artifacts/console.png node console.js
//
// Environment: CHROMIUM (default /usr/bin/chromium) and the variables above. Prints one
// line per check; exits 1 at the first failure.

const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

function required(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`console.js: environment variable ${name} is required`);
    process.exit(2);
  }
  return v;
}

const consoleURL = required('CONSOLE_URL');
const expectUID = required('EXPECT_UID');
const expectEmail = required('EXPECT_EMAIL');
const expectName = required('EXPECT_NAME');
const expectCallID = required('EXPECT_CALL_ID');
const expectBase = required('EXPECT_BASE_STRING');
const screenshot = required('SCREENSHOT');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const origin = new URL(consoleURL).origin;

function ok(what) {
  console.log(`ok   ${what}`);
}

class CheckError extends Error {}
function check(cond, what) {
  if (!cond) throw new CheckError(what);
  ok(what);
}

// a11y checks what every page must have: a language, one h1, a main landmark, alt
// text on every image, a label for every form control, th headers in every table.
async function a11y(page, name) {
  const problems = await page.evaluate(() => {
    const out = [];
    if (!document.documentElement.lang) out.push('no lang on <html>');
    const h1 = document.querySelectorAll('h1').length;
    if (h1 !== 1) out.push(`${h1} h1 elements`);
    if (!document.querySelector('main')) out.push('no <main>');
    for (const img of document.querySelectorAll('img')) {
      if (!img.hasAttribute('alt')) out.push(`img ${img.src} has no alt`);
    }
    for (const el of document.querySelectorAll('input, select, textarea')) {
      if (el.type === 'hidden') continue;
      if (el.labels.length === 0 && !el.getAttribute('aria-label')) out.push(`${el.tagName.toLowerCase()}#${el.id || el.name} has no label`);
    }
    for (const t of document.querySelectorAll('table')) {
      if (!t.querySelector('th')) out.push('a table without th');
    }
    return out;
  });
  check(problems.length === 0, `${name}: accessibility basics${problems.length ? ': ' + problems.join('; ') : ''}`);
}

async function main() {
  // A fresh profile each run; nothing leaves the machine.
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'socius-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
    timeout: 60000,
  });
  const errors = [];
  // Another origin of this machine (another port of 127.0.0.1, as a developer's own
  // app under development is): a page of it probes the emulator (see below).
  const other = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><html lang="en"><title>Another site</title><p><a id="go" href="${consoleURL}">The console</a></p>`);
  });
  await new Promise((resolve) => other.listen(0, '127.0.0.1', resolve));
  const otherOrigin = `http://127.0.0.1:${other.address().port}`;
  try {
    // Only the emulator and that page are reachable: users' photo URLs point
    // elsewhere, as they do in real profiles, and are answered with a failure at once.
    await context.route('**/*', (route) => {
      const u = route.request().url();
      return u.startsWith(origin + '/') || u.startsWith(otherOrigin + '/') ? route.continue() : route.abort();
    });
    const page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(20000);
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) errors.push(`console error: ${m.text()}`);
    });

    // Overview.
    const resp = await page.goto(consoleURL);
    check(resp && resp.status() === 200, `GET ${consoleURL}: HTTP ${resp && resp.status()}`);
    check((await page.locator('h1').textContent()) === 'Overview', 'the overview loads');
    check(await page.getByRole('table', { name: /Sites/ }).isVisible(), 'the sites table is shown');
    await a11y(page, 'overview');

    // Users: the seeded user is listed, and found by e-mail.
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Users' }).click();
    await page.waitForURL(/\/_emulator\/users/);
    check(await page.getByRole('rowheader', { name: expectUID, exact: true }).isVisible(), `the users page lists ${expectUID}`);
    await a11y(page, 'users');
    await page.getByLabel('Search by UID, e-mail or name').fill(expectEmail);
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForURL(/q=/);
    const rows = page.locator('#users tbody tr');
    check((await rows.count()) === 1 && (await rows.first().textContent()).includes(expectEmail), `searching ${expectEmail} finds exactly ${expectUID}`);

    // The user as the Comments plugin shows it.
    await page.getByRole('link', { name: expectUID, exact: true }).click();
    await page.waitForURL(/\/_emulator\/user\?/);
    const userURL = new URL(page.url());
    const card = page.getByRole('article');
    check((await card.locator('.comment-name').textContent()) === expectName, `the Comments card names the user "${expectName}"`);
    check((await card.getByRole('img').getAttribute('alt')) === `Photo of ${expectName}`, 'the photo has alt text');
    await a11y(page, 'user');
    await page.screenshot({ path: screenshot.replace(/\.png$/, '-user.png'), fullPage: true });

    // The request log: the failed call, with the base string the server signed.
    await page.getByRole('link', { name: 'Request log' }).click();
    await page.waitForURL(/\/_emulator\/log/);
    const call = page.locator(`#call-${expectCallID}`);
    check(await call.isVisible(), `the log shows call ${expectCallID}`);
    check((await call.locator('tr').first().textContent()).includes('403003'), 'the call is a 403003');
    const base = call.locator('details.sigdebug pre.base').first();
    check(await base.isVisible(), 'its signature debugging is open');
    check((await base.textContent()) === expectBase, 'it shows the base string the server signed');
    await a11y(page, 'log');
    await base.scrollIntoViewIfNeeded();
    fs.mkdirSync(path.dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
    ok(`screenshot ${screenshot}`);

    // New calls appear on their own once asked for (the console's one script).
    await page.getByLabel('Show new calls as they arrive').check();
    const r = await fetch(new URL('/socialize.logout', origin), { method: 'POST' });
    check(r.ok, 'a new call was made');
    await page.locator('table.log th', { hasText: 'socialize.logout' }).first().waitFor();
    ok('the new call appeared without a reload');

    // The log API refusing, then answering as a restarted server does (its numbers
    // start again from 0): the script neither spins nor waits for the old number.
    let mode = 'refuse';
    let polls = 0;
    let afters = [];
    let restartedServed = false; // the first answer as a restarted server went out
    const logAPI = '**/_emulator/api/log?*';
    await page.route(logAPI, (route) => {
      polls++;
      afters.push(new URL(route.request().url()).searchParams.get('after'));
      if (mode === 'refuse') return route.fulfill({ status: 403, contentType: 'application/json', body: '{"error":"refused"}' });
      restartedServed = true;
      return route.fulfill({ status: 200, contentType: 'application/json', body: '{"entries":[],"last":0}' });
    });
    // The poll in flight ends with the next call; the later ones meet the route.
    check((await fetch(new URL('/socialize.logout', origin), { method: 'POST' })).ok, 'another call was made');
    await page.waitForTimeout(3000);
    check(polls >= 1 && polls <= 3, `a refusing log API was asked ${polls} times in 3 s (1 to 3: the script waits 2 s after a refusal)`);
    mode = 'restarted';
    // The poll answered first as a restarted server still names the old number; the
    // script polls one at a time, so every poll after it names the new one. (A fixed
    // 2.5 s wait for it left a loaded machine about 1.5 s of room.)
    for (let waited = 0; !restartedServed && waited < 10000; waited += 50) await page.waitForTimeout(50);
    check(restartedServed, 'the script polled the log API again within 10 s of its refusals');
    polls = 0;
    afters = [];
    await page.waitForTimeout(3000);
    check(afters.length > 0 && afters.every((a) => a === '0'), `after a restart the script polls from the new number (after=${afters.join(',')})`);
    check(polls >= 1 && polls <= 4, `a log API with nothing new at once was asked ${polls} times in 3 s (1 to 4: the script waits 1 s)`);
    await page.unroute(logAPI);
    await page.getByLabel('Show new calls as they arrive').uncheck();

    // The clock's forms, from a real browser (its Origin header passes the same-origin
    // check).
    await page.getByRole('link', { name: 'Clock' }).click();
    await a11y(page, 'clock');
    await page.getByRole('button', { name: '+1 hour' }).click();
    await page.waitForURL(/done=clock/);
    check(await page.getByRole('status').isVisible(), 'the clock form answers');
    check((await page.locator('.moved').textContent()).includes('1h0m0s'), 'the header says the clock is moved by 1 h');
    await page.getByRole('button', { name: 'Reset to the system time' }).click();
    await page.waitForURL(/done=clock/);
    check((await page.locator('.moved').count()) === 0, 'the clock is back to the system time');

    // A fault rule, added and deleted through the forms.
    await page.getByRole('link', { name: 'Faults' }).click();
    await a11y(page, 'faults');
    await page.getByLabel('Method (empty: every method)').fill('socialize.getUserInfo');
    await page.getByLabel('Answer with').selectOption('500001');
    await page.getByLabel('Number of calls (empty: no limit)').fill('3');
    await page.getByRole('button', { name: 'Add the rule' }).click();
    await page.waitForURL(/done=fault-added/);
    check(await page.getByRole('cell', { name: '500001 General Server error' }).isVisible(), 'the fault rule is listed');
    await page.getByRole('button', { name: 'Delete rule 1' }).click();
    await page.waitForURL(/done=fault-deleted/);
    check(await page.getByText('No fault rules').isVisible(), 'the fault rule is deleted');

    check(errors.length === 0, `no script or CSP errors${errors.length ? ': ' + errors.join('; ') : ''}`);

    // A page of another origin may link to the console but not load it: an <img> of a
    // user search, a <script> of /_emulator/api/user, a no-cors fetch of the log's long
    // poll (which ends when the next API call comes) are refused, 403. Those answers
    // are hidden from the page (Chromium's ORB blocks them), so their status is read
    // from what the browser received (DevTools protocol).
    const probePage = await context.newPage();
    const cdp = await context.newCDPSession(probePage);
    await cdp.send('Network.enable');
    const urls = {};
    const status = {};
    cdp.on('Network.requestWillBeSent', (e) => { urls[e.requestId] = e.request.url; });
    cdp.on('Network.responseReceivedExtraInfo', (e) => { status[e.requestId] = e.statusCode; });
    await probePage.goto(otherOrigin + '/');
    const api = new URL(userURL);
    api.pathname = '/_emulator/api/user';
    const probes = [api.href, new URL('/_emulator/users?q=a', origin).href, new URL('/_emulator/api/log?limit=1&wait=2s&after=999999999', origin).href];
    await probePage.evaluate(([script, img, poll]) => Promise.all([
      new Promise((resolve) => {
        const s = document.createElement('script');
        s.src = script;
        s.onload = s.onerror = resolve;
        document.head.appendChild(s);
      }),
      new Promise((resolve) => {
        const i = new Image();
        i.onload = i.onerror = resolve;
        i.src = img;
      }),
      fetch(poll, { mode: 'no-cors' }).catch(() => {}),
    ]), probes);
    const statusOf = async (u) => {
      for (let i = 0; i < 50; i++) {
        const id = Object.keys(urls).find((k) => urls[k] === u);
        if (id && status[id] !== undefined) return status[id];
        await probePage.waitForTimeout(100);
      }
      return undefined;
    };
    for (const u of probes) {
      const got = await statusOf(u);
      check(got === 403, `a page of ${otherOrigin} loading ${u} is refused (HTTP ${got})`);
    }

    // Nor change it: a seed POSTed by that page as fetch sends a string (text/plain, no
    // preflight), and as a form of enctype text/plain (an old browser's, naming no
    // origin, is refused for its Content-Type: emulator/guard_test.go), is refused, and
    // stores nothing.
    const seedURL = new URL('/_emulator/api/seed', origin).href;
    const line = '{"kind":"user","apiKey":"' + new URL(userURL).searchParams.get('apiKey') + '","UID":"mallory","x":"';
    await probePage.evaluate(([u, l]) => fetch(u, { method: 'POST', mode: 'no-cors', body: l + '"}' }).catch(() => {}), [seedURL, line]);
    check(await statusOf(seedURL) === 403, `a page of ${otherOrigin} POSTing a seed with fetch is refused (HTTP ${await statusOf(seedURL)})`);
    for (const k of Object.keys(urls)) delete urls[k];
    await Promise.all([probePage.waitForNavigation(), probePage.evaluate(([u, l]) => {
      const f = document.createElement('form');
      f.method = 'POST';
      f.action = u;
      f.enctype = 'text/plain';
      const i = document.createElement('input');
      i.type = 'hidden';
      i.name = l;
      i.value = '"}';
      f.appendChild(i);
      document.body.appendChild(f);
      f.submit();
    }, [seedURL, line])]);
    check(await statusOf(seedURL) === 403, `a page of ${otherOrigin} POSTing a seed with a text/plain form is refused (HTTP ${await statusOf(seedURL)})`);
    const planted = new URL(userURL);
    planted.pathname = '/_emulator/api/user';
    planted.searchParams.set('UID', 'mallory');
    check(await page.evaluate(async (u) => (await fetch(u)).status, planted.href) === 404, 'the refused seeds stored no user');
    await probePage.goto(otherOrigin + '/');
    await probePage.click('#go');
    await probePage.waitForURL(consoleURL);
    check((await probePage.locator('h1').textContent()) === 'Overview', `a link from ${otherOrigin} opens the console`);
    await probePage.close();
  } finally {
    other.close();
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e instanceof CheckError ? `FAIL ${e.message}` : `console.js: ${(e && e.stack) || e}`);
  process.exit(1);
});

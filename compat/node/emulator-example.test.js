// Tests of an application's Gigya code (here: the gigya npm package itself) against
// `socius serve --emulator`. Run by emulator-ci.sh; see the README.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const { Gigya } = require('gigya');

const emulatorURL = process.env.SOCIUS_URL || 'http://127.0.0.1:8080';
const gigya = new Gigya(process.env.GIGYA_API_KEY, 'localtest', process.env.GIGYA_SECRET);
Gigya.RETRY_DELAY = 0; // the package tries a 500001 up to five times, 5 s apart

// emulator calls the emulator's admin API.
async function emulator(method, path, body) {
  const init = { method };
  if (typeof body === 'string') init.body = body, init.headers = { 'Content-Type': 'application/x-ndjson' }; // a seed
  else if (body) init.body = JSON.stringify(body), init.headers = { 'Content-Type': 'application/json' };
  const r = await fetch(`${emulatorURL}/_emulator/api/${path}`, init);
  if (!r.ok) throw new Error(`${method} ${path}: HTTP ${r.status} ${await r.text()}`);
  return r.json();
}

// Each test starts from the seed, with no fault rules and the real time.
test.beforeEach(async () => {
  await emulator('POST', 'reset?all=true');
  await emulator('POST', 'seed', fs.readFileSync(`${__dirname}/emulator-seed.jsonl`, 'utf8'));
});

test('reads a seeded user', async () => {
  const user = await gigya.socialize.getUserInfo({ UID: 'alice' });
  assert.strictEqual(user.nickname, 'ally');
});

test('logs a new user in and saves a profile', async () => {
  await gigya.socialize.notifyLogin({ siteUID: 'bob' });
  await gigya.socialize.setUserInfo({ UID: 'bob', userInfo: { firstName: 'Bob' } });
  assert.strictEqual((await gigya.socialize.getUserInfo({ UID: 'bob' })).firstName, 'Bob');
});

test('survives two server errors in a row (the package retries 500001)', async () => {
  await emulator('POST', 'faults', { method: 'socialize.getUserInfo', errorCode: 500001, count: 2 });
  const user = await gigya.socialize.getUserInfo({ UID: 'alice' });
  assert.strictEqual(user.UID, 'alice');
});

test('reports a rate limit', async () => {
  await emulator('POST', 'faults', { method: 'socialize.setUserInfo', errorCode: 403048, count: 1 });
  await assert.rejects(gigya.socialize.setUserInfo({ UID: 'alice', userInfo: { nickname: 'al' } }),
    (e) => e.errorCode === 403048);
});

test('refuses a stale UIDSignature without sleeping', async () => {
  // Our rule: a UIDSignature older than 3 minutes is refused.
  const fresh = (r) => Math.abs(Date.now() / 1000 - Number(r.signatureTimestamp)) < 180 &&
    gigya.sigUtils.validateUserSignature(r.UID, r.signatureTimestamp, r.UIDSignature, process.env.GIGYA_SECRET);
  assert.ok(fresh(await gigya.socialize.notifyLogin({ siteUID: 'alice' })));
  await emulator('POST', 'clock', { advance: '-10m' }); // the server now signs 10 minutes ago
  assert.ok(!fresh(await gigya.socialize.notifyLogin({ siteUID: 'alice' })));
});

test('a wrong key secret: the server says what it signed', async () => {
  const wrong = new Gigya(process.env.GIGYA_API_KEY, 'localtest', 'ASociusCIKey', 'bm90LXRoZS11c2VyLWtleS1zZWNyZXQ=');
  await assert.rejects(wrong.socialize.getUserInfo({ UID: 'alice' }), (e) => e.errorCode === 403003 &&
    e.gigyaResponse.errorDetails.includes('the server signed POST&https%3A%2F%2Fsocialize.localtest.gigya.com%2Fsocialize.getUserInfo&'));
});

test('0 or false as a number, signed: the server says the package signed it as empty', async () => {
  const signed = new Gigya(process.env.GIGYA_API_KEY, 'localtest', 'ASociusCIKey', 'dXNlci1zZWNyZXQtZm9yLWxhYg==');
  await assert.rejects(signed.socialize.notifyLogin({ siteUID: 'alice', sessionExpiration: 0 }), (e) => e.errorCode === 403003 &&
    e.gigyaResponse.errorDetails.includes('the gigya npm package (Node), which signs the number 0, NaN and false as empty'));
  await signed.socialize.notifyLogin({ siteUID: 'alice', sessionExpiration: '0' }); // as a string it is signed
});

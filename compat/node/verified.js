'use strict';
// verified.js: the `gigya` npm package, unmodified, sending to Socius through
// transport.js, with Socius' certificate verified: no proxy and no
// NODE_TLS_REJECT_UNAUTHORIZED. cmd/socius/node_compat_test.go runs it and asserts on
// the JSON lines it prints, one a step.
//
// Environment: SOCIUS_URL (https://host:port of the HTTPS listener), SOCIUS_CA_FILE (its
// certificate, PEM), GIGYA_API_KEY, GIGYA_PARTNER_SECRET, GIGYA_USER_KEY,
// GIGYA_USER_SECRET, GIGYA_UID_PREFIX.
const fs = require('fs');
const { Gigya } = require('gigya');
const { sociusTransport } = require('./transport');

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(name + ' is not set');
  return v;
};
const url = env('SOCIUS_URL');
const ca = fs.readFileSync(env('SOCIUS_CA_FILE'));
const apiKey = env('GIGYA_API_KEY');
const prefix = process.env.GIGYA_UID_PREFIX || 'verified';

function out(step, fields) {
  process.stdout.write(JSON.stringify(Object.assign({ step }, fields)) + '\n');
}

async function step(name, fn) {
  try {
    out(name, { ok: true, result: await fn() });
  } catch (e) {
    out(name, { ok: false, errorCode: e.errorCode, code: e.code, error: String(e.message || e) });
  }
}

(async () => {
  const transport = sociusTransport({ url, ca });
  // Plain partner secret, the production data center's name kept.
  const plain = new Gigya(apiKey, 'us1', transport).setCredentials({ secret: env('GIGYA_PARTNER_SECRET') });
  const uid = prefix + '-plain';
  await step('plain-notifyLogin', () => plain.socialize.notifyLogin({ siteUID: uid }).then((r) => r.UID));
  await step('plain-setUserInfo', () => plain.socialize.setUserInfo({ UID: uid, userInfo: { nickname: 'Verified' } }).then((r) => r.errorCode));
  await step('plain-getUserInfo', () => plain.socialize.getUserInfo({ UID: uid }).then((r) => r.nickname));
  // userKey + secret: signed, with the package's millisecond timestamp, for its own host.
  const signed = new Gigya(apiKey, 'eu1', transport).setCredentials({ userKey: env('GIGYA_USER_KEY'), secret: env('GIGYA_USER_SECRET') });
  await step('signed-setUserInfo', () => signed.socialize.setUserInfo({ UID: uid, userInfo: { firstName: 'Signed' } }).then((r) => r.errorCode));
  await step('signed-getUserInfo', () => signed.socialize.getUserInfo({ UID: uid }).then((r) => r.firstName));
  // A server named by host name: the certificate checked against that name.
  const named = url.replace('://127.0.0.1:', '://localhost:');
  if (named !== url) {
    const byName = new Gigya(apiKey, 'us1', sociusTransport({ url: named, ca })).setCredentials({ secret: env('GIGYA_PARTNER_SECRET') });
    await step('named-getUserInfo', () => byName.socialize.getUserInfo({ UID: uid }).then((r) => r.firstName));
  }
  // A Gigya error still comes back as the package's error.
  await step('signed-unknownUser', () => signed.socialize.getUserInfo({ UID: prefix + '-nobody' }).then((r) => r.UID));
  // Without Socius' certificate the connection is refused: verification is on.
  const unverified = new Gigya(apiKey, 'us1', sociusTransport({ url })).setCredentials({ secret: env('GIGYA_PARTNER_SECRET') });
  await step('no-ca-getUserInfo', () => unverified.socialize.getUserInfo({ UID: uid }).then((r) => r.UID));
  // Plain HTTP is refused by the transport itself.
  await step('http-url', () => sociusTransport({ url: url.replace(/^https:/, 'http:') }));
})();

'use strict';
// drive.js: drives a Socius server with the real, unmodified `gigya` npm package
// (pinned at 3.0.1 in package.json / package-lock.json), the way an application uses it,
// and prints one JSON line per API call on stdout. cmd/socius/node_compat_test.go runs it
// and asserts on the lines; it can also be run by hand (see "Pointing the package at
// Socius" below for the environment it needs).
//
// Environment:
//   GIGYA_API_KEY              site apiKey
//   GIGYA_DATA_CENTER          data center; the package calls https://socialize.<dc>.gigya.com
//   GIGYA_PARTNER_SECRET       the site's partner secret (plain-secret mode)
//   GIGYA_USER_KEY             a userKey of the site and ...
//   GIGYA_USER_SECRET          ... its secret (signed mode)
//   GIGYA_WRONG_PARTNER_SECRET a valid-looking but wrong partner secret (must get 403003)
//   GIGYA_WRONG_USER_SECRET    a valid-looking but wrong userKey secret (must get 403003)
//   GIGYA_UID_PREFIX           prefix of the siteUIDs created (default "node-compat")
//   GIGYA_BEARER_USER_KEY      a userKey whose RSA public key is registered, and ...
//   GIGYA_BEARER_PRIVATE_KEY   ... its private key (PEM): bearer-JWT mode
//   GIGYA_WRONG_PRIVATE_KEY    another RSA private key (PEM; must get 403003)
//
// Pointing the package at Socius, without touching its files:
//
// The package always builds https://socialize.<dataCenter>.gigya.com/<method>
// (RequestFactory.getRequestHost) and signs exactly that URL: "https://" + lowercased
// host + "/" + method, no port (CredentialsSigner). Its default transport
// (helpers/default-http-request.js) POSTs with the `request` library, which honours
// HTTPS_PROXY: for an https URL it opens a CONNECT tunnel through the proxy and speaks
// TLS inside it to the real host name. So the test sets
//   HTTPS_PROXY=http://127.0.0.1:<port>   a tiny CONNECT proxy that forwards every
//                                         tunnel to Socius' HTTPS listener
//   NO_PROXY (cleared)                    so nothing bypasses the proxy
// and uses GIGYA_DATA_CENTER=localtest: the request arrives at Socius over TLS with
// "Host: socialize.localtest.gigya.com" and path /socialize.<method>, and the signature
// covers https://socialize.localtest.gigya.com/socialize.<method>, one of the candidate
// URLs Socius verifies (it routes on the path and tries the received Host without the
// port). Signing, URL building, form encoding and response handling all stay the
// package's own.
//
// Trusting the server's certificate: the package passes `ca: <its own
// assets/cacert.pem>` to every request. An explicit `ca` REPLACES Node's root store, and
// NODE_EXTRA_CA_CERTS only extends the default store, so it is ignored for these requests
// (checked with Node 20: NODE_EXTRA_CA_CERTS=<Socius cert> still fails with
// DEPTH_ZERO_SELF_SIGNED_CERT when `ca` is given). No option adds a CA to the package's
// own transport (a transport of one's own can: transport.js, run by verified.js), so
// the test sets NODE_TLS_REJECT_UNAUTHORIZED=0 for this child process only (Node
// prints a warning about it on stderr). The proxy only ever connects to the test's own
// server, so nothing else is reached without verification.
//
// The alternative, replacing the public `gigya.httpRequest` hook with a function that
// sends to Socius directly, would swap out the package's transport (the `request` form
// encoder, its headers, TLS and response parsing), which is part of what this test is
// meant to exercise; the proxy keeps all of it. (observe() below only wraps the hook to
// record what goes out, and hands every call to the package's own transport.)
//
// Modes: "plain" (partner secret in plain), "signed" (userKey + secret, signed with a
// millisecond timestamp), "token" (an access token from socialize.getToken, passed per
// call as the oauth_token parameter: the package then sends no apiKey and does not
// sign), "bearer" (userKey + RSA private key: the package sends an
// "Authorization: Bearer <RS256 JWT>" header and no userKey, secret or signature), and
// the same modes with wrong credentials.
//
// Output: one JSON object per line, for every call:
//   {"mode", "step", "ok", "errorCode", "ms", "wire", "response"|..., "sent"?, ...}
// "wire" lists what the package handed to its transport for the call (see observe).
// A failed call (the package throws its GigyaError for any errorCode != 0) has ok=false,
// gigyaError=true, errorCode, errorMessage, errorDetails and the full answer in
// "response". A transport failure (no GigyaError) has ok=false, gigyaError=false and
// "error"/"code". The last line is {"step":"done"}.

const gigyaModule = require('gigya');
const Gigya = gigyaModule.Gigya;

function required(name) {
  const v = process.env[name];
  if (!v) {
    process.stderr.write(`drive.js: environment variable ${name} is required\n`);
    process.exit(2);
  }
  return v;
}

const apiKey = required('GIGYA_API_KEY');
const dataCenter = required('GIGYA_DATA_CENTER');
const partnerSecret = required('GIGYA_PARTNER_SECRET');
const userKey = required('GIGYA_USER_KEY');
const userSecret = required('GIGYA_USER_SECRET');
const wrongPartnerSecret = required('GIGYA_WRONG_PARTNER_SECRET');
const wrongUserSecret = required('GIGYA_WRONG_USER_SECRET');
const uidPrefix = process.env.GIGYA_UID_PREFIX || 'node-compat';
const bearerUserKey = required('GIGYA_BEARER_USER_KEY');
const bearerPrivateKey = required('GIGYA_BEARER_PRIVATE_KEY');
const wrongPrivateKey = required('GIGYA_WRONG_PRIVATE_KEY');

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

// observe records what the package hands to its transport, without changing anything:
// Gigya#httpRequest is the package's public transport hook; the wrapper notes the host,
// the endpoint and the names of the form fields (plus the timestamp, never a secret) and
// then calls the package's own default transport with the same arguments. It shows which
// credential fields each mode really sends (plain: secret; signed: userKey, timestamp,
// nonce, sig) and catches retries (two transport calls for one API call).
let wire = [];
function observe(gigya) {
  const transport = gigya.httpRequest;
  gigya.httpRequest = function (endpoint, host, params, headers) {
    wire.push({
      host,
      endpoint,
      params: Object.keys(params).sort(),
      timestamp: params.timestamp === undefined ? undefined : String(params.timestamp),
      authorization: headers && headers.Authorization !== undefined,
    });
    return transport.call(this, endpoint, host, params, headers);
  };
  return gigya;
}

// redact keeps an issued access token out of the output (it ends up in test logs):
// only its kind prefix is printed.
function redact(res) {
  if (res && typeof res.access_token === 'string') {
    return Object.assign({}, res, { access_token: res.access_token.slice(0, 7) + '...(redacted)' });
  }
  return res;
}

// call runs one package call and prints its outcome. It returns the answer, or null
// when the call threw.
async function call(mode, step, fn, extra) {
  const started = Date.now();
  wire = [];
  try {
    const res = await fn();
    emit(Object.assign({ mode, step, ok: true, errorCode: res.errorCode, ms: Date.now() - started, wire, response: redact(res) }, extra));
    return res;
  } catch (e) {
    // The package's GigyaError is compiled to ES5 (`_super.apply(this, arguments) || this`),
    // so `new GigyaError(...)` returns a plain Error and `instanceof GigyaError` is false
    // for every error the package throws. What identifies its API errors is what
    // Gigya.createErrorFromResponse puts on them: errorCode and gigyaResponse.
    const isGigyaError = !!e && typeof e === 'object' && e.gigyaResponse !== undefined;
    const out = { mode, step, ok: false, ms: Date.now() - started, wire, gigyaError: isGigyaError };
    if (isGigyaError) {
      const r = e.gigyaResponse || {};
      out.errorCode = e.errorCode;
      out.errorMessage = r.errorMessage;
      out.errorDetails = r.errorDetails;
      out.message = e.message;
      out.response = r;
    } else {
      out.error = String((e && e.message) || e);
      out.code = e && e.code;
    }
    emit(Object.assign(out, extra));
    return null;
  }
}

// scenario: log a new site user in, set a profile, read it back, and validate the
// UIDSignatures with the package's own SigUtils.
async function scenario(mode, gigya, userInfo) {
  const siteUID = `${uidPrefix}-${mode}`;
  const login = await call(mode, 'notifyLogin', () => gigya.socialize.notifyLogin({ siteUID }), { siteUID });
  if (login) {
    emit({
      mode, step: 'validateLoginSignature', ok: true,
      valid: gigya.sigUtils.validateUserSignature(login.UID, login.signatureTimestamp, login.UIDSignature, partnerSecret),
    });
  }
  const UID = login ? login.UID : siteUID;
  await call(mode, 'setUserInfo', () => gigya.socialize.setUserInfo({ UID, userInfo }), { sent: userInfo });
  const got = await call(mode, 'getUserInfo', () => gigya.socialize.getUserInfo({ UID }));
  if (got) {
    emit({
      mode, step: 'validateUserInfoSignature', ok: true,
      valid: gigya.sigUtils.validateUserSignature(got.UID, got.signatureTimestamp, got.UIDSignature, partnerSecret),
    });
  }
  // Must fail: the UID was never created.
  await call(mode, 'setUserInfoUnknownUID',
    () => gigya.socialize.setUserInfo({ UID: `${uidPrefix}-${mode}-never-logged-in`, userInfo: { firstName: 'Nobody' } }));
  return UID;
}

async function main() {
  // Plain-secret mode: apiKey + secret as form fields, over HTTPS.
  const plain = observe(new Gigya(apiKey, dataCenter, partnerSecret));
  const plainUID = await scenario('plain', plain, {
    firstName: 'Dávid',
    lastName: "O'Brien & Sons",
    nickname: 'a+b c~d*e/f=g%h',
    gender: 'm',
    age: 30,
    email: 'david+lab@example.com',
    photoURL: 'https://example.com/p.jpg?x=1&y=2',
    thumbnailURL: 'https://example.com/t.jpg',
  });

  // Signed mode: apiKey + userKey + timestamp (milliseconds) + nonce + sig.
  const signed = observe(new Gigya(apiKey, dataCenter, userKey, userSecret));
  await scenario('signed', signed, {
    firstName: 'Zoë 🎉',
    lastName: 'Ünal',
    nickname: 'zoe [the] "best"',
    gender: 'f',
    age: 41,
    email: 'zoe@example.org',
    photoURL: 'https://example.org/zoe.png',
  });
  // A user created in plain mode is visible to the userKey of the same site.
  await call('signed', 'getUserInfoOtherMode', () => signed.socialize.getUserInfo({ UID: plainUID }));

  // Wrong credentials must be refused: proves the server checks both credential kinds.
  const plainWrong = observe(new Gigya(apiKey, dataCenter, wrongPartnerSecret));
  await call('plainWrongSecret', 'getUserInfo', () => plainWrong.socialize.getUserInfo({ UID: plainUID }));
  const signedWrong = observe(new Gigya(apiKey, dataCenter, userKey, wrongUserSecret));
  await call('signedWrongSecret', 'getUserInfo', () => signedWrong.socialize.getUserInfo({ UID: plainUID }));

  await tokenMode(plain, plainUID);
  await bearerMode(plainUID);

  emit({ step: 'done' });
}

// tokenMode: the OAuth 2.0 flow. The package has no getToken method, so the plain
// instance calls it through request(); then a Gigya with no credentials at all uses
// the token per call, as the package documents: { oauth_token } in the params.
async function tokenMode(plain, plainUID) {
  const siteUID = `${uidPrefix}-token`;
  const userInfo = { firstName: 'Tóken', nickname: 'o&a=u+th', age: 52 };
  const grant = await call('plain', 'getToken',
    () => plain.request('socialize.getToken', { grant_type: 'none', x_siteUID: siteUID, x_userInfo: { lastName: 'Granted' } }),
    { siteUID });
  const oauth_token = grant ? grant.access_token : 'no-token';
  const user = observe(new Gigya(undefined, dataCenter));
  await call('token', 'setUserInfo', () => user.socialize.setUserInfo({ oauth_token, userInfo }), { sent: userInfo });
  await call('token', 'getUserInfo', () => user.socialize.getUserInfo({ oauth_token }), { siteUID });
  // Bound to its user: another UID is refused.
  await call('token', 'getUserInfoOtherUID', () => user.socialize.getUserInfo({ oauth_token, UID: plainUID }));
  await call('token', 'getUserInfoUnknownToken', () => user.socialize.getUserInfo({ oauth_token: oauth_token + 'x' }));
  // logout ends the token.
  await call('token', 'logout', () => user.socialize.logout({ oauth_token }));
  await call('token', 'getUserInfoAfterLogout', () => user.socialize.getUserInfo({ oauth_token }));
}

// bearerMode: userKey + RSA private key; every call carries a fresh RS256 JWT.
async function bearerMode(plainUID) {
  const bearer = observe(new Gigya(apiKey, dataCenter, { userKey: bearerUserKey, privateKey: bearerPrivateKey }));
  await scenario('bearer', bearer, {
    firstName: 'Bea',
    lastName: 'Rer',
    nickname: 'jwt/rs256',
    gender: 'u',
    age: 7,
  });
  const wrong = observe(new Gigya(apiKey, dataCenter, { userKey: bearerUserKey, privateKey: wrongPrivateKey }));
  await call('bearerWrongKey', 'getUserInfo', () => wrong.socialize.getUserInfo({ UID: plainUID }));
}

main().catch((e) => {
  process.stderr.write(`drive.js: ${(e && e.stack) || e}\n`);
  process.exit(1);
});

'use strict';
// transport.js: a transport for the `gigya` npm package that sends its calls to a
// Socius server with the server's certificate verified. The package's own transport
// always posts to https://socialize.<dataCenter>.gigya.com and trusts only the CA
// bundle it ships (NODE_EXTRA_CA_CERTS cannot add to it), so pointing it at Socius
// otherwise needs a proxy and NODE_TLS_REJECT_UNAUTHORIZED=0 (drive.js), which is for
// tests only. The package takes a transport of its own as a constructor argument
// (its ProxyHttpRequest overload: new Gigya(apiKey, dataCenter, transport)), so:
//
//   const { Gigya } = require('gigya');
//   const { sociusTransport } = require('./transport');
//   const gigya = new Gigya(apiKey, 'us1', sociusTransport({
//     url: 'https://profiles.example.com',          // where Socius' HTTPS listener is
//     ca: fs.readFileSync('socius-data/tls-cert.pem'), // omit for a publicly trusted certificate
//   })).setCredentials({ userKey, secret });
//
// Everything but the connection stays the package's: it builds the call, signs it for
// its own host (https://socialize.<dataCenter>.gigya.com/<method>), retries and reads
// the answer. So the request keeps that host in its Host header, which is what Socius
// checks the signature against; the TLS connection, its server name and the
// certificate check are those of url.
const https = require('https');
const net = require('net');
const querystring = require('querystring');
const tls = require('tls');

const maxAnswer = 16 << 20; // bytes: Socius' answers are far smaller

function sociusTransport({ url, ca, timeoutMs = 30000 } = {}) {
  const base = new URL(url);
  if (base.protocol !== 'https:') {
    throw new Error('sociusTransport: url must be https:// (Socius takes secrets and tokens over HTTPS only)');
  }
  if (base.pathname !== '/' || base.search || base.hash || base.username || base.password) {
    throw new Error('sociusTransport: url is the server alone (https://host[:port]), with no path, query or user');
  }
  const hostname = base.hostname.replace(/^\[(.*)\]$/, '$1');
  return function send(endpoint, host, params, headers) {
    return new Promise((resolve, reject) => {
      const body = querystring.stringify(params);
      const options = {
        host: hostname,
        port: base.port || 443,
        method: 'POST',
        path: '/' + endpoint,
        headers: Object.assign({}, headers, {
          Host: host, // the host the package signed for
          'Content-Type': 'application/x-www-form-urlencoded',
          'Content-Length': Buffer.byteLength(body),
        }),
        timeout: timeoutMs,
      };
      if (ca) options.ca = ca;
      // The certificate is checked against url's host, not the Host header's (which
      // Node would otherwise take as the TLS server name), and that host is the SNI
      // (none for an IP address).
      options.servername = net.isIP(hostname) ? '' : hostname;
      options.checkServerIdentity = (_, cert) => tls.checkServerIdentity(hostname, cert);
      const req = https.request(options, (res) => {
        const chunks = [];
        let size = 0;
        res.on('data', (c) => {
          size += c.length;
          if (size > maxAnswer) {
            req.destroy(new Error('sociusTransport: answer larger than ' + maxAnswer + ' bytes'));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve(JSON.parse(text));
          } catch (e) {
            reject(new Error('sociusTransport: HTTP ' + res.statusCode + ', not a JSON answer: ' + text.slice(0, 200)));
          }
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('sociusTransport: no answer within ' + timeoutMs + ' ms')));
      req.on('error', reject);
      req.end(body);
    });
  };
}

module.exports = { sociusTransport };

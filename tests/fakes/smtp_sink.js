#!/usr/bin/env node
// A real SMTP server for tests (the npm package smtp-server), on 127.0.0.1 only. Every message it
// accepts becomes <dir>/<n>.eml (the raw RFC 5322 data, as received after the final dot) and
// <dir>/<n>.json (the envelope: {"mail_from", "rcpt_to", "user"}), n = 1, 2, ...; the .json is
// renamed into place last, so a reader that sees it finds both complete.
//
//   node smtp_sink.js --port P --dir D [--reject-rcpt ADDR]... [--defer-rcpt ADDR]...
//                     [--tools DIR]
//
// --reject-rcpt answers 550 (permanent) to RCPT TO of that address, --defer-rcpt 451 (try again
// later). Any AUTH is accepted and none is needed; STARTTLS is off. --tools is where scripts/
// bootstrap installed the npm tools (default: the checkout's .chorus/tools). Prints
// "listening on <port>" once it accepts connections.
'use strict';

const fs = require('fs');
const path = require('path');

const args = { reject: new Set(), defer: new Set(),
               tools: path.join(__dirname, '..', '..', '.chorus', 'tools') };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const value = argv[i + 1];
  switch (argv[i]) {
    case '--port': args.port = Number(value); i++; break;
    case '--dir': args.dir = value; i++; break;
    case '--reject-rcpt': args.reject.add(value.toLowerCase()); i++; break;
    case '--defer-rcpt': args.defer.add(value.toLowerCase()); i++; break;
    case '--tools': args.tools = value; i++; break;
    default:
      console.error(`smtp_sink: unknown argument ${argv[i]}`);
      process.exit(2);
  }
}
if (!Number.isInteger(args.port) || !args.dir) {
  console.error('usage: smtp_sink.js --port P --dir D [--reject-rcpt A] [--defer-rcpt A] [--tools DIR]');
  process.exit(2);
}

const { SMTPServer } = require(path.join(args.tools, 'node_modules', 'smtp-server'));

let count = 0;

function write_atomically(file, data) {
  fs.writeFileSync(file + '.tmp', data);
  fs.renameSync(file + '.tmp', file);
}

const server = new SMTPServer({
  authOptional: true,
  allowInsecureAuth: true,
  disabledCommands: ['STARTTLS'],
  logger: false,
  onAuth(auth, session, callback) {
    callback(null, { user: auth.username });
  },
  onRcptTo(address, session, callback) {
    const rcpt = address.address.toLowerCase();
    if (args.reject.has(rcpt)) {
      const err = new Error(`5.1.1 <${address.address}>: recipient refused by the test sink`);
      err.responseCode = 550;
      return callback(err);
    }
    if (args.defer.has(rcpt)) {
      const err = new Error(`4.2.1 <${address.address}>: try again later`);
      err.responseCode = 451;
      return callback(err);
    }
    callback();
  },
  onData(stream, session, callback) {
    const chunks = [];
    stream.on('data', (chunk) => chunks.push(chunk));
    stream.on('error', callback);
    stream.on('end', () => {
      const n = ++count;
      const base = path.join(args.dir, String(n));
      write_atomically(base + '.eml', Buffer.concat(chunks));
      write_atomically(base + '.json', JSON.stringify({
        mail_from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
        rcpt_to: session.envelope.rcptTo.map((r) => r.address),
        user: session.user || '',
      }) + '\n');
      callback(null, `2.0.0 queued as ${n}`);
    });
  },
});

server.on('error', (err) => console.error(`smtp_sink: ${err.message}`));
server.listen(args.port, '127.0.0.1', () => console.log(`listening on ${args.port}`));

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));

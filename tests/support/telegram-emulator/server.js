'use strict';
// Starts the telegram-test-api emulator for the Python test harness
// (tests/support/telegram_emulator.py) and prints its address as one JSON line on stdout:
//   {"port": 43125, "host": "127.0.0.1"}
// Usage: node server.js [--port N] [--host H]   (port 0, the default, picks a free one)
// The process ends on SIGTERM/SIGINT and when its stdin closes (the Python side died).

const path = require('path');
const TelegramServer = require('telegram-test-api'); // module.exports is the class

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const host = arg('host', '127.0.0.1');
const port = Number(arg('port', '0'));

// The emulator POSTs updates to a webhook with its own copy of axios and never sends the
// X-Telegram-Bot-Api-Secret-Token header; add it from the secret the bot registered.
const axiosPath = require.resolve('axios', { paths: [path.dirname(require.resolve('telegram-test-api'))] });
const axios = require(axiosPath);

async function main() {
  // storeTimeout: the emulator forgets messages older than this (default 60 s): keep them.
  const server = new TelegramServer({ port: port || 1, host, storeTimeout: 24 * 3600 });
  // normalizeConfig() turns port 0 into 9000 (`port || 9000`); listen on the real 0 instead.
  server.config.port = port;

  axios.interceptors.request.use((config) => {
    const hook = Object.values(server.webhooks).find((w) => w.url === config.url);
    if (hook && hook.secret_token) {
      // axios 0.27 (the package's): headers is a plain object
      config.headers = { ...config.headers, 'X-Telegram-Bot-Api-Secret-Token': hook.secret_token };
    }
    return config;
  });

  await server.start();
  const actual = server.server.address().port;
  server.config.port = actual;
  server.config.apiURL = `${server.config.protocol}://${host}:${actual}`;

  let stopping = false;
  const stop = async (code) => {
    if (stopping) return;
    stopping = true;
    try {
      await Promise.race([server.stop(), new Promise((r) => { setTimeout(r, 1000); })]);
    } finally {
      process.exit(code);
    }
  };
  process.on('SIGTERM', () => stop(0));
  process.on('SIGINT', () => stop(0));
  process.stdin.on('end', () => stop(0));
  process.stdin.on('close', () => stop(0));
  process.stdin.resume();

  process.stdout.write(`${JSON.stringify({ port: actual, host })}\n`);
}

// A failed webhook delivery (or any other async slip) rejects a promise nobody awaits inside
// the package; by default node would crash and take every later test down with it.
process.on('unhandledRejection', (reason) => {
  process.stderr.write(`telegram-emulator: unhandled rejection: ${reason && reason.stack ? reason.stack : reason}\n`);
});

main().catch((err) => {
  process.stderr.write(`telegram-emulator: failed to start: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});

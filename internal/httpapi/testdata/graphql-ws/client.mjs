// Conformance client: drives wagate's GraphQL WebSocket endpoint with the reference client
// of the graphql-transport-ws protocol (graphql-ws, on the `ws` package). It is run by
// TestGraphQLWSConformance in internal/httpapi/graphqlws_test.go, which starts the server,
// prepares the data and passes it in the environment:
//
//   WAGATE_WS_URL       ws://host:port/query
//   WAGATE_TOKEN        a user session token (an OWNER of WAGATE_ORG_ID)
//   WAGATE_USER_ID      that user's id
//   WAGATE_ORG_ID       the user's organization
//   WAGATE_API_KEY      an API key secret of WAGATE_ORG_ID (role MEMBER)
//   WAGATE_API_KEY_ID   its id
//   WAGATE_SESSION_ID   a CONNECTED sandbox session of WAGATE_ORG_ID
//   WAGATE_FOREIGN_ORG  an organization the user is not a member of
//
// Protocol with the Go test, one JSON object per line:
//   stdout  {"check": name, "ok": bool, "detail": any}   one result
//           {"need": "simulate", "texts": [...]}          asks Go to simulate incoming messages
//                                                         over HTTP; Go answers on stdin with
//                                                         {"ids": [...]} or {"error": "..."}
//           {"note": text}                                an observation that is not a failure
//           {"done": true, "failures": n}                 the end
//   stderr  free-form diagnostics
// The exit code is 0 when every check passed.

import readline from 'node:readline';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const STEP_TIMEOUT = 10_000;

function env(name) {
  const v = process.env[name];
  if (!v) {
    process.stderr.write(`missing environment variable ${name}\n`);
    process.exit(2);
  }
  return v;
}

const url = env('WAGATE_WS_URL');
const token = env('WAGATE_TOKEN');
const userID = env('WAGATE_USER_ID');
const orgID = env('WAGATE_ORG_ID');
const apiKey = env('WAGATE_API_KEY');
const apiKeyID = env('WAGATE_API_KEY_ID');
const sessionID = env('WAGATE_SESSION_ID');
const foreignOrg = env('WAGATE_FOREIGN_ORG');

// --- output ---------------------------------------------------------------------------

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
let failures = 0;

function check(name, ok, detail) {
  if (!ok) failures++;
  out({ check: name, ok: Boolean(ok), detail: detail === undefined ? null : detail });
  return Boolean(ok);
}

const note = (text) => out({ note: text });

// --- requests to the Go side ------------------------------------------------------------

const replies = [];
let replyWaiter = null;
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (replyWaiter) {
    const w = replyWaiter;
    replyWaiter = null;
    w(line);
  } else {
    replies.push(line);
  }
});

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// simulate asks the Go test to deliver incoming messages with these texts (over HTTP, as
// the organization's owner) and returns the ids of the stored messages.
async function simulate(...texts) {
  out({ need: 'simulate', texts });
  const line = replies.length
    ? replies.shift()
    : await withTimeout(new Promise((r) => (replyWaiter = r)), STEP_TIMEOUT, `simulate ${texts}`);
  const reply = JSON.parse(line);
  if (reply.error) throw new Error(`simulate ${texts}: ${reply.error}`);
  return reply.ids;
}

// --- graphql-ws helpers ------------------------------------------------------------------

const normalClients = []; // clients that must only ever close normally

// client creates a graphql-ws client that records its lifecycle. Retries are off: a refused
// or dropped connection must surface, not be papered over by a reconnect.
function client(name, connectionParams, extra = {}) {
  const life = { name, acks: 0, closes: [], errors: [], pingsSent: 0, pongsReceived: 0, messages: [] };
  let n = 0;
  const c = createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams,
    retryAttempts: 0,
    generateID: () => `${name}-${++n}`,
    on: {
      connected: () => life.acks++,
      closed: (e) => life.closes.push({ code: e?.code, reason: e?.reason }),
      error: (e) => life.errors.push(String(e?.message ?? e)),
      ping: (received) => { if (!received) life.pingsSent++; },
      pong: (received) => { if (received) life.pongsReceived++; },
      message: (m) => life.messages.push({ at: Date.now(), id: m.id, type: m.type }),
    },
    ...extra,
  });
  c.life = life;
  return c;
}

// open starts an operation and records what it yields.
function open(c, query, variables) {
  const s = { values: [], error: null, completed: false, waiters: new Set() };
  const wake = () => { for (const w of [...s.waiters]) w(); };
  s.dispose = c.subscribe(
    { query, variables },
    {
      next: (v) => { s.values.push(v); wake(); },
      error: (e) => { s.error = e; wake(); },
      complete: () => { s.completed = true; wake(); },
    },
  );
  // until resolves once pred holds, or the operation has ended (the caller looks at why).
  s.until = (pred, what, ms = STEP_TIMEOUT) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      s.waiters.delete(attempt);
      reject(new Error(`timed out after ${ms} ms waiting for ${what}; got ${describe(s)}`));
    }, ms);
    function attempt() {
      if (pred(s) || s.error || s.completed) {
        clearTimeout(timer);
        s.waiters.delete(attempt);
        resolve(s);
      }
    }
    s.waiters.add(attempt);
    attempt();
  });
  return s;
}

function describe(s) {
  const err = s.error && (s.error.code !== undefined ? { code: s.error.code, reason: s.error.reason } : s.error);
  return JSON.stringify({ values: s.values, error: err, completed: s.completed });
}

// execute runs a query or mutation and returns its single result.
async function execute(c, query, variables) {
  const s = open(c, query, variables);
  await s.until((x) => x.completed, `the result of ${query}`);
  if (s.error) throw new Error(`${query}: ${describe(s)}`);
  if (s.values.length !== 1 || s.values[0].errors) throw new Error(`${query}: ${describe(s)}`);
  return s.values[0].data;
}

const EVENTS = `subscription Events($after: String, $types: [EventType!], $sessionIDs: [ID!]) {
  events(after: $after, types: $types, sessionIDs: $sessionIDs) {
    id cursor type session { id } payload message { id text }
  }
}`;

function events(c, after) {
  return open(c, EVENTS, { after, types: ['MESSAGE_RECEIVED'], sessionIDs: [sessionID] });
}

const eventOf = (v) => v?.data?.events;

// increasing reports whether cursors are strictly increasing. Cursors are opaque strings;
// wagate's are decimal sequence numbers, compared as such.
function increasing(cursors) {
  if (!cursors.every((c) => typeof c === 'string' && /^\d+$/.test(c))) return false;
  return cursors.every((c, i) => i === 0 || BigInt(c) > BigInt(cursors[i - 1]));
}

// sameEvents checks that stream values are exactly the events of the messages ids/texts.
function sameEvents(values, ids, texts) {
  const evs = values.map(eventOf);
  const problems = [];
  if (values.some((v) => v.errors)) problems.push('errors in a result');
  if (evs.length !== ids.length) problems.push(`${evs.length} events, want ${ids.length}`);
  evs.forEach((e, i) => {
    if (!e) return problems.push(`result ${i} carries no event`);
    if (e.type !== 'MESSAGE_RECEIVED') problems.push(`event ${i} has type ${e.type}`);
    if (e.message?.id !== ids[i]) problems.push(`event ${i} is for message ${e.message?.id}, want ${ids[i]}`);
    if (texts && e.payload?.text !== texts[i]) problems.push(`event ${i} payload text ${e.payload?.text}, want ${texts[i]}`);
    if (e.session?.id !== sessionID) problems.push(`event ${i} session ${e.session?.id}`);
  });
  return { ok: problems.length === 0, detail: { problems, cursors: evs.map((e) => e?.cursor) } };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// closed waits until a client's socket has closed (lazy clients close once idle).
async function closed(c, what) {
  const t0 = Date.now();
  while (c.life.closes.length === 0) {
    if (Date.now() - t0 > STEP_TIMEOUT) throw new Error(`timed out waiting for ${what} to close`);
    await sleep(10);
  }
  return c.life.closes[c.life.closes.length - 1];
}

// --- the checks ---------------------------------------------------------------------------

let lastCursor; // the newest MESSAGE_RECEIVED cursor seen so far

// 3. Refused connections close with the documented graphql-transport-ws codes.
async function refusals() {
  const cases = [
    ['invalid token closes with 4401', { authorization: 'Bearer wst_forged' }, 4401],
    ['missing credentials close with 4401', undefined, 4401],
    ['a foreign organizationId closes with 4403', { authorization: `Bearer ${token}`, organizationId: foreignOrg }, 4403],
  ];
  for (const [name, params, want] of cases) {
    const c = client('refused', params);
    const s = open(c, '{ viewer { user { id } } }');
    await s.until(() => false, name);
    const code = s.error?.code;
    check(name, code === want && c.life.acks === 0 && s.values.length === 0, {
      code, reason: s.error?.reason, acks: c.life.acks, values: s.values, error: code === undefined ? String(s.error) : undefined,
    });
  }
}

// 1. A session token connects; a subscription receives the events produced meanwhile, in
// order, with increasing cursors; unsubscribing completes it and the idle client closes 1000.
async function tokenLive() {
  const c = client('token', { authorization: `Bearer ${token}` });
  normalClients.push(c);
  const s = events(c); // no cursor: MESSAGE_RECEIVED events of the session, none exist yet
  const t0 = Date.now();
  while (c.life.acks === 0 && !s.error && Date.now() - t0 < STEP_TIMEOUT) await sleep(5);
  if (!check('token in connectionParams gets connection_ack', c.life.acks === 1, { acks: c.life.acks, stream: describe(s) })) return null;
  await sleep(50); // the subscribe message follows the ack; give the server a moment to start it
  const texts = ['live-0', 'live-1', 'live-2'];
  const ids = await simulate(...texts);
  await s.until((x) => x.values.length >= 3, 'three live events');
  const same = sameEvents(s.values, ids, texts);
  check('subscription receives live events in order', same.ok && !s.error, same.detail);
  check('live events carry increasing cursors', increasing(same.detail.cursors), same.detail.cursors);
  s.dispose();
  await s.until(() => false, 'complete after unsubscribe');
  check('complete (unsubscribe) ends the subscription without error', s.completed && !s.error, describe(s));
  const close = await closed(c, 'the idle token client');
  check('an idle client closes the socket normally (1000)', close.code === 1000, close);
  lastCursor = same.detail.cursors.at(-1);
  return { ids, cursors: same.detail.cursors };
}

// 2. Resuming after a cursor replays exactly what followed it, then goes on live with no
// duplicate.
async function resume(first) {
  const offline = ['offline-3', 'offline-4'];
  const offlineIDs = await simulate(...offline); // nobody is subscribed now
  const c = client('resume', { authorization: `Bearer ${token}` });
  normalClients.push(c);
  const s = events(c, first.cursors[1]);
  await s.until((x) => x.values.length >= 3, 'three replayed events');
  const replayIDs = [first.ids[2], ...offlineIDs];
  const replay = sameEvents(s.values.slice(0, 3), replayIDs, ['live-2', ...offline]);
  check('resume with after replays exactly the events after the cursor', replay.ok && s.values.length === 3, {
    ...replay.detail, after: first.cursors[1], received: s.values.length,
  });
  check('replayed cursors continue after the resume cursor',
    increasing([first.cursors[1], ...replay.detail.cursors]), [first.cursors[1], ...replay.detail.cursors]);
  const liveIDs = await simulate('live-5');
  await s.until((x) => x.values.length >= 4, 'the live event after the replay');
  await sleep(300); // a duplicate would arrive now
  const all = sameEvents(s.values, [...replayIDs, ...liveIDs], ['live-2', ...offline, 'live-5']);
  check('after the replay the stream goes on live with no duplicate', all.ok && increasing(all.detail.cursors), all.detail);
  s.dispose();
  await closed(c, 'the resume client');
  lastCursor = all.detail.cursors.at(-1);
}

// 4. An API key works like a token (and, per API.md, ignores organizationId).
async function apiKeyWorks() {
  const c = client('key', { Authorization: `Bearer ${apiKey}`, organizationId: foreignOrg });
  normalClients.push(c);
  const v = await execute(c, '{ viewer { user { id } apiKey { id } organization { id } role } }');
  check('API key in connectionParams gets connection_ack', c.life.acks === 1, { acks: c.life.acks });
  check('API key acts as itself in its own organization', v.viewer.apiKey?.id === apiKeyID &&
    v.viewer.organization?.id === orgID && v.viewer.role === 'MEMBER' && v.viewer.user === null, v);
  const s = events(c, lastCursor);
  await sleep(50);
  const ids = await simulate('key-6');
  await s.until((x) => x.values.length >= 1, 'an event on the API key connection');
  await sleep(200);
  const got = sameEvents(s.values, ids, ['key-6']);
  check('API key subscription receives events', got.ok && increasing([lastCursor, ...got.detail.cursors]), got.detail);
  s.dispose();
  await closed(c, 'the API key client');
  lastCursor = got.detail.cursors.at(-1) ?? lastCursor;
}

// 5. Client pings are answered with pongs; completing one of two subscriptions on one
// socket ends it cleanly while the other goes on.
async function keepAliveAndComplete() {
  const c = client('keepalive', { authorization: `Bearer ${token}` }, { keepAlive: 100 });
  normalClients.push(c);
  const s1 = events(c, lastCursor);
  const s2 = events(c, lastCursor);
  const t0 = Date.now();
  while (c.life.pongsReceived < 3 && Date.now() - t0 < STEP_TIMEOUT && !s1.error && !s2.error) await sleep(10);
  check('keepAlive pings are answered with pongs', c.life.pingsSent >= 3 && c.life.pongsReceived >= 3 && c.life.closes.length === 0, {
    pingsSent: c.life.pingsSent, pongsReceived: c.life.pongsReceived, closes: c.life.closes,
  });
  const s1ID = 'keepalive-1';
  s1.dispose();
  await s1.until(() => false, 'complete of the first subscription');
  const completedAt = Date.now();
  check('complete ends one subscription cleanly', s1.completed && !s1.error && c.life.closes.length === 0, describe(s1));
  const ids = await simulate('ka-7');
  await s2.until((x) => x.values.length >= 1, 'an event on the remaining subscription');
  await sleep(200);
  const got = sameEvents(s2.values, ids, ['ka-7']);
  check('the other subscription on the socket goes on', got.ok, got.detail);
  const after = c.life.messages.filter((m) => m.id === s1ID && m.at >= completedAt);
  check('no next or error for a completed subscription', s1.values.length === 0 &&
    after.every((m) => m.type === 'complete'), { values: s1.values, messagesAfterComplete: after });
  if (after.some((m) => m.type === 'complete')) {
    note('the server answers a client complete with a complete of its own (ignored by graphql-ws; the spec does not require it)');
  }
  s2.dispose();
  const close = await closed(c, 'the keep-alive client');
  check('the socket closes normally (1000) once the last subscription completes', close.code === 1000, close);
  lastCursor = got.detail.cursors.at(-1) ?? lastCursor;
}

// 6. Queries and mutations run over the socket, next to a subscription.
async function queryAndMutation() {
  const c = client('ops', { authorization: `Bearer ${token}` });
  normalClients.push(c);
  const s = events(c, lastCursor);
  const v = await execute(c, '{ viewer { user { id } organization { id } role } }');
  check('a query over the WebSocket', v.viewer.user?.id === userID && v.viewer.organization?.id === orgID && v.viewer.role === 'OWNER', v);
  const m = await execute(c,
    'mutation($in: SimulateIncomingMessageInput!) { simulateIncomingMessage(input: $in) { id text } }',
    { in: { sessionID, from: '+4915112345678', text: 'ws-8' } });
  check('a mutation over the WebSocket', typeof m.simulateIncomingMessage?.id === 'string' && m.simulateIncomingMessage.text === 'ws-8', m);
  await s.until((x) => x.values.length >= 1, 'the event of the mutation');
  const got = sameEvents(s.values, [m.simulateIncomingMessage?.id], ['ws-8']);
  check('the mutation\'s event reaches a subscription on the same socket', got.ok, got.detail);
  s.dispose();
  await closed(c, 'the operations client');
}

async function main() {
  const steps = [
    ['refusals', refusals],
    ['token live', async () => {
      const first = await tokenLive();
      if (first) await resume(first);
      else check('resume with after replays exactly the events after the cursor', false, 'skipped: no live events');
    }],
    ['api key', apiKeyWorks],
    ['keep-alive and complete', keepAliveAndComplete],
    ['query and mutation', queryAndMutation],
  ];
  for (const [name, step] of steps) {
    try {
      await step();
    } catch (err) {
      check(`${name}: ran to the end`, false, String(err?.stack ?? err));
    }
  }
  const unexpected = normalClients.map((c) => ({
    client: c.life.name,
    errors: c.life.errors,
    closes: c.life.closes.filter((e) => e.code !== 1000),
  })).filter((x) => x.errors.length || x.closes.length);
  check('no client saw a protocol error or an abnormal close', unexpected.length === 0, unexpected);
  out({ done: true, failures });
  process.exit(failures === 0 ? 0 : 1);
}

main().catch((err) => {
  process.stderr.write(`${err?.stack ?? err}\n`);
  process.exit(3);
});

// The benchmark's minimal Node reference, modelled on graphql-ws's own benchmark servers:
// graphql-js + graphql-ws (useServer over ws), the same event shape as wagate's subscription,
// an in-memory broker per organization (taken from connection_init: {"org": "..."}), and
//   POST /inject {"org", "text"}   publishes an event
//   GET  /stats                    process.memoryUsage()
// Listens on 127.0.0.1:$PORT; WebSocket path /query.
import http from 'node:http';
import { WebSocketServer } from 'ws';
import { useServer } from 'graphql-ws/use/ws';
import {
  GraphQLSchema, GraphQLObjectType, GraphQLString, GraphQLNonNull, GraphQLScalarType,
} from 'graphql';

const MapScalar = new GraphQLScalarType({ name: 'Map', serialize: (v) => v });
const Event = new GraphQLObjectType({
  name: 'Event',
  fields: {
    cursor: { type: new GraphQLNonNull(GraphQLString) },
    type: { type: new GraphQLNonNull(GraphQLString) },
    payload: { type: new GraphQLNonNull(MapScalar) },
  },
});

// subs: org -> Set of push functions; seq: org -> last cursor.
const subs = new Map();
const seq = new Map();

// A minimal push-based async iterator per subscription (what graphql-ws consumes).
function subscribe(org) {
  const queue = [];
  let wake = null;
  let done = false;
  const push = (ev) => {
    if (wake) { const w = wake; wake = null; w({ value: ev, done: false }); } else queue.push(ev);
  };
  if (!subs.has(org)) subs.set(org, new Set());
  subs.get(org).add(push);
  const end = () => {
    done = true;
    subs.get(org)?.delete(push);
    if (wake) { const w = wake; wake = null; w({ value: undefined, done: true }); }
    return Promise.resolve({ value: undefined, done: true });
  };
  return {
    [Symbol.asyncIterator]() { return this; },
    next() {
      if (queue.length) return Promise.resolve({ value: queue.shift(), done: false });
      if (done) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve) => { wake = resolve; });
    },
    return: end,
    throw: end,
  };
}

const schema = new GraphQLSchema({
  query: new GraphQLObjectType({
    name: 'Query',
    fields: { hello: { type: new GraphQLNonNull(GraphQLString), resolve: () => 'world' } },
  }),
  subscription: new GraphQLObjectType({
    name: 'Subscription',
    fields: {
      events: {
        type: new GraphQLNonNull(Event),
        subscribe: (_root, _args, ctx) => subscribe(String(ctx.connectionParams?.org ?? '')),
        resolve: (ev) => ev,
      },
    },
  }),
});

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/stats') {
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify(process.memoryUsage()));
    return;
  }
  if (req.method === 'POST' && req.url === '/inject') {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const { org, text } = JSON.parse(body);
      const n = (seq.get(org) ?? 0) + 1;
      seq.set(org, n);
      const ev = { cursor: String(n), type: 'MESSAGE_RECEIVED', payload: { text, fromMe: false } };
      for (const push of subs.get(org) ?? []) push(ev);
      res.statusCode = 204;
      res.end();
    });
    return;
  }
  res.statusCode = 404;
  res.end();
});

const wss = new WebSocketServer({ server, path: '/query', perMessageDeflate: false });
// The same heartbeat period as wagate's PingPongInterval (20 s).
// context: the resolvers read the organization from ctx.connectionParams.
useServer({ schema, context: (ctx) => ctx }, wss, 20_000);
server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});

// Many conversations through a balancer, with the official socket.io-client (default transports:
// polling, then the upgrade to a websocket), kept across reconnects by their conversationId:
//   node conversations.mjs URL CLIENTS TURNS_BEFORE
// Each client connects, says TURNS_BEFORE text turns ("c<i> t<k>"), each after the previous reply,
// and prints {ready, client, conversationId}. After that it only reports what happens to it
// ({disconnect} / {connect}) until a line "go" arrives on stdin: then it says one more turn (sent
// as soon as it is connected again, if it is not) and prints {reply, client, conversationId,
// resumed, text, ms, at, reconnectedAt}: ms from "go" to the reply, `at` and `reconnectedAt` as
// Date.now() (the reply, and this client's latest reconnect, if it had one). Exits when every
// client has replied, 2 on an error, 3 after 60 s.
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const [url, count, before] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const out = (o) => console.log(JSON.stringify(o));
const clients = [];

function client(i) {
  const c = { i, id: null, resumed: null, replies: [], waiting: null, connects: 0 };
  // auth as a function: asked again at every reconnect, so it carries the latest id
  c.socket = io(url, { withCredentials: true, reconnectionDelay: 200, reconnectionDelayMax: 1000,
                       auth: (cb) => cb(c.id ? { conversationId: c.id } : {}) });
  c.socket.on("conversation", (p) => { c.id = p.conversationId; c.resumed = p.resumed; });
  c.socket.on("connect", () => {
    c.connects += 1;
    if (c.connects > 1) { c.reconnectedAt = Date.now(); out({ connect: true, client: i, at: c.reconnectedAt }); }
  });
  c.socket.on("disconnect", (reason) => out({ disconnect: reason, client: i }));
  c.socket.on("ai-response", (p) => { c.replies.push(p.text); if (c.waiting) { const w = c.waiting; c.waiting = null; w(p.text); } });
  c.socket.on("error", (p) => out({ error: p, client: i }));
  c.say = (text) => new Promise((resolve) => { c.waiting = resolve; c.socket.emit("text-message", text); });
  return c;
}

for (let i = 0; i < count; i++) clients.push(client(i));
await Promise.all(clients.map(async (c) => {
  for (let k = 1; k <= before; k++) await c.say(`c${c.i} t${k}`);
  out({ ready: true, client: c.i, conversationId: c.id });
}));

setTimeout(() => { out({ timeout: true }); process.exit(3); }, 90000).unref();
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line.trim() !== "go") continue;
  const t0 = Date.now();
  await Promise.all(clients.map(async (c) => {
    // socket.io-client buffers an emit made while disconnected and sends it once connected again
    const text = await c.say(`c${c.i} t${before + 1}`);
    out({ reply: true, client: c.i, conversationId: c.id, resumed: c.resumed, text, ms: Date.now() - t0,
          at: Date.now(), reconnectedAt: c.reconnectedAt ?? null, connects: c.connects });
  }));
  break;
}
for (const c of clients) c.socket.close();
process.exit(0);

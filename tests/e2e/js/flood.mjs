// A client that floods with the official socket.io-client: node flood.mjs URL SECONDS
// Sends a 1,000,000-byte `audio-stream` chunk every 5 ms (far over the byte limit) for up to
// SECONDS, without ever slowing down, and prints one JSON line when it is disconnected (or the
// time is up): {disconnect, at, sent, errors: [[at, code, message], ...]}, times in seconds.
import { io } from "socket.io-client";

const [url, seconds] = [process.argv[2], Number(process.argv[3])];
const socket = io(url, { transports: ["websocket"], reconnection: false });
const chunk = new Uint8Array(1_000_000);
const errors = [];
let t0 = 0;
let sent = 0;
const since = () => (Date.now() - t0) / 1000;
const done = (disconnect) => {
  console.log(JSON.stringify({ disconnect, at: since(), sent, errors }));
  process.exit(0);
};
socket.on("error", (p) => errors.push([since(), p.code, p.message]));
socket.on("disconnect", (reason) => done(reason));
socket.on("connect", async () => {
  t0 = Date.now();
  socket.emit("start-recording", { format: "pcm16", sampleRate: 16000 });
  while (since() < seconds) {
    socket.emit("audio-stream", chunk);
    sent += 1;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  done(null);
});

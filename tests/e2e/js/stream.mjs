// A frontend's view of voicegraph, with the official socket.io-client:
// node stream.mjs URL FILE MIME DURATION_S [TOKEN]
// Streams FILE as `audio-stream` slices of ~100 ms (paced in real time), then prints every
// event it receives as one JSON line and exits after `ai-response` (or after 60 s).
import { readFileSync } from "node:fs";
import { io } from "socket.io-client";

const [url, file, mime, durationS, token] = process.argv.slice(2);
const data = readFileSync(file);
const slices = Math.max(1, Math.round(Number(durationS) / 0.1));
const size = Math.ceil(data.length / slices);
const socket = io(url, { transports: ["websocket"], auth: token ? { token } : undefined });
const t0 = Date.now();
const log = (event, payload) => {
  if (payload && typeof payload.audio === "string") {
    payload = { ...payload, audio: `<${payload.audio.length} base64 chars>`, audioB64: payload.audio };
  }
  console.log(JSON.stringify({ t: Date.now() - t0, event, payload }));
};
socket.onAny((event, payload) => {
  log(event, payload);
  if (event === "ai-response") { socket.close(); process.exit(0); }
});
socket.on("connect_error", (err) => { log("connect_error", { message: err.message }); process.exit(2); });
socket.on("connect", async () => {
  socket.emit("start-recording", { mimeType: mime });
  for (let i = 0; i < data.length; i += size) {
    socket.emit("audio-stream", data.subarray(i, i + size));
    await new Promise((r) => setTimeout(r, 100));
  }
  log("sent", { bytes: data.length, slices });
});
setTimeout(() => { log("timeout", {}); process.exit(3); }, 60000);

"""Server settings from the environment (and a `.env` file), named as the seed backend named them.

Only the runtime's own settings live here. Providers read theirs (API keys, endpoints) from
`Settings.env`, the environment the settings were read from; it never appears in a repr or dump,
and secrets held here (`token`) are `SecretStr`s, so no log line or error message shows them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful voice assistant. Answer briefly and conversationally, "
    "in plain sentences without markdown."
)


class Settings(BaseModel):
    """Everything a running server reads from its environment."""

    model_config = ConfigDict(frozen=True)

    host: str = "0.0.0.0"
    port: int = Field(3001, ge=0, le=65535)
    graph: str | None = None
    """Graph file (`VOICEGRAPH_GRAPH`); None picks `graphs/default.yaml`."""
    cors_origins: tuple[str, ...] = ("*",)
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    log_level: str = "INFO"
    token: SecretStr | None = None
    """`VOICEGRAPH_TOKEN`: when set, a connect without `auth: {token}` is refused."""
    max_message_bytes: int = Field(1 << 20, ge=1024)
    """Largest accepted Socket.IO payload (`VOICEGRAPH_MAX_MESSAGE_BYTES`)."""
    max_sessions: int = Field(200, ge=1)
    """Concurrent sessions (`VOICEGRAPH_MAX_SESSIONS`); one more connect is refused with
    `server_full`. This machine class serves ~50 real-time sessions within the turn-latency target
    (BENCHMARKS.md); the default leaves room for idle ones."""
    audio_bytes_per_second: int = Field(256 * 1024, ge=16_000)
    """Sustained `audio-stream` bytes per second per session (`VOICEGRAPH_AUDIO_BYTES_PER_SECOND`):
    8x real-time 16 kHz PCM16, more than 48 kHz stereo PCM16. A session may send
    `AUDIO_BURST_SECONDS` of it at once (a recording uploaded in one go); over it, `rate_limited`."""
    flood_disconnect_s: float = Field(10.0, ge=0, le=3600)
    """A client refused by its rate limits without a break of a second for this long is disconnected
    (`VOICEGRAPH_FLOOD_DISCONNECT_S`; 0: never): each packet it keeps sending still costs its parsing,
    ~35 % of a core for one flooder, and the other sessions' turns wait for it."""
    max_backlog_bytes: int = Field(8 << 20, ge=64 * 1024)
    """Outbound bytes that may wait for a client that reads too slowly before it is disconnected
    with `slow_consumer` (`VOICEGRAPH_MAX_BACKLOG_BYTES`; see `flow.transport.outbox`)."""
    ping_interval_s: float = Field(4.0, ge=1, le=300)
    """Engine.IO ping interval in seconds (`VOICEGRAPH_PING_INTERVAL`): the server pings each client
    this long after its last pong (whole seconds: clients are told it in milliseconds, truncated
    to the second). Engine.io's own default (25 s, with a 20 s timeout) keeps a
    vanished client's session and decoder for up to 45 s."""
    ping_timeout_s: float = Field(4.0, ge=0.5, le=300)
    """Engine.IO ping timeout in seconds (`VOICEGRAPH_PING_TIMEOUT`): how long a ping may go unanswered.
    Interval + timeout is the longest a live client stays silent, so a client whose network vanished
    (no FIN, no RST) loses its session within that: 8 s by default (see `flow.transport.liveness`)."""
    preload: bool = True
    """Load offline models and workers at start-up (`VOICEGRAPH_PRELOAD=0`: on first use)."""
    ui: bool = True
    """Serve the dashboard (`VOICEGRAPH_UI=0` or `--no-ui` turns it off)."""
    ui_host: str = "127.0.0.1"
    """Dashboard bind address (`VOICEGRAPH_UI_HOST`): loopback unless told otherwise."""
    ui_port: int = Field(8080, ge=0, le=65535)
    """Dashboard port (`VOICEGRAPH_UI_PORT`, `--ui-port`)."""
    store: str = "memory"
    """Where conversations are kept (`VOICEGRAPH_STORE`): `memory`, `sqlite:///path.db` or
    `redis://host:port/db` (see `flow.conversations`)."""
    conversation_ttl_s: float = Field(24 * 3600, gt=0)
    """How long a conversation nobody continues is kept (`VOICEGRAPH_CONVERSATION_TTL`, seconds)."""
    redis_url: str | None = None
    """`VOICEGRAPH_REDIS_URL`: workers share this Redis (Socket.IO's `AsyncRedisManager`, the
    dashboard's monitoring relay, graph Apply)."""
    worker: str | None = None
    """This worker's name in a cluster (`VOICEGRAPH_WORKER`; default host:pid)."""
    drain_s: float = Field(10.0, ge=0, le=600)
    """On SIGTERM, how long replies in flight may take to finish before the server closes
    (`VOICEGRAPH_DRAIN_S`)."""
    heap_trim_s: float = Field(30.0, ge=0, le=3600)
    """How often `voicegraph serve` hands freed C heap back to the OS (`VOICEGRAPH_HEAP_TRIM_S`,
    seconds; 0: never). Without it the RSS keeps the worst burst's high-water mark (`flow.heap`)."""
    record_dir: str | None = None
    """Record every session to this directory (`VOICEGRAPH_RECORD_DIR`, `--record`); off when unset.
    The files hold the users' audio (see `flow.transport.session_log`)."""
    record_max_session_bytes: int = Field(64 << 20, ge=64 * 1024)
    """One session's recording stops growing here (`VOICEGRAPH_RECORD_MAX_SESSION_BYTES`)."""
    record_max_bytes: int = Field(1 << 30, ge=64 * 1024)
    """The recording directory's cap (`VOICEGRAPH_RECORD_MAX_BYTES`): oldest recordings go first."""
    env: Mapping[str, str] = Field(default_factory=dict, repr=False, exclude=True)
    """The environment these settings were read from (`.env` included): where providers find
    their own settings. Holds secrets, so it is left out of repr and dumps. Empty by default, so
    `Settings()` in a test is offline whatever the test process's environment says."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")) -> Settings:
        """Read `env`, or the process environment after loading `.env` (which never overrides it)."""
        if env is None:
            if dotenv is not None and dotenv.is_file():
                from dotenv import load_dotenv

                load_dotenv(dotenv, override=False)
            env = dict(os.environ)
        origins = env.get("CORS_ORIGIN") or env.get("FRONTEND_URL") or "*"
        values: dict = {
            "cors_origins": tuple(o.strip() for o in origins.split(",") if o.strip()),
        }
        mapping = {
            "HOST": "host",
            "PORT": "port",
            "VOICEGRAPH_GRAPH": "graph",
            "SYSTEM_PROMPT": "system_prompt",
            "LOG_LEVEL": "log_level",
            "VOICEGRAPH_TOKEN": "token",
            "VOICEGRAPH_MAX_MESSAGE_BYTES": "max_message_bytes",
            "VOICEGRAPH_MAX_BACKLOG_BYTES": "max_backlog_bytes",
            "VOICEGRAPH_MAX_SESSIONS": "max_sessions",
            "VOICEGRAPH_AUDIO_BYTES_PER_SECOND": "audio_bytes_per_second",
            "VOICEGRAPH_FLOOD_DISCONNECT_S": "flood_disconnect_s",
            "VOICEGRAPH_PING_INTERVAL": "ping_interval_s",
            "VOICEGRAPH_PING_TIMEOUT": "ping_timeout_s",
            "VOICEGRAPH_PRELOAD": "preload",
            "VOICEGRAPH_UI": "ui",
            "VOICEGRAPH_UI_HOST": "ui_host",
            "VOICEGRAPH_UI_PORT": "ui_port",
            "VOICEGRAPH_STORE": "store",
            "VOICEGRAPH_CONVERSATION_TTL": "conversation_ttl_s",
            "VOICEGRAPH_REDIS_URL": "redis_url",
            "VOICEGRAPH_WORKER": "worker",
            "VOICEGRAPH_DRAIN_S": "drain_s",
            "VOICEGRAPH_HEAP_TRIM_S": "heap_trim_s",
            "VOICEGRAPH_RECORD_DIR": "record_dir",
            "VOICEGRAPH_RECORD_MAX_SESSION_BYTES": "record_max_session_bytes",
            "VOICEGRAPH_RECORD_MAX_BYTES": "record_max_bytes",
        }
        for var, name in mapping.items():
            if env.get(var):
                values[name] = env[var]
        return cls(**values, env=dict(env))

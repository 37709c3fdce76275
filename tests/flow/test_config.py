"""Settings from the environment and `.env`, and ffmpeg on a machine without a system ffmpeg."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from flow.config import Settings


def test_env_names_of_the_seed_and_dotenv(tmp_path: Path) -> None:
    env = {"PORT": "4000", "FRONTEND_URL": "http://a.example,http://b.example", "OPENAI_API_KEY": "sk-secret-123",
           "SYSTEM_PROMPT": "Be brief.", "OPENAI_BASE_URL": "http://127.0.0.1:1/v1", "VOICEGRAPH_TOKEN": "t0k"}
    s = Settings.from_env(env)
    assert s.port == 4000 and s.cors_origins == ("http://a.example", "http://b.example")
    assert s.system_prompt == "Be brief." and s.env["OPENAI_API_KEY"] == "sk-secret-123"  # for the providers
    assert "sk-secret-123" not in repr(s) and "sk-secret-123" not in str(s.model_dump())
    assert "sk-secret-123" not in s.model_dump_json() and "sk-secret-123" not in str(s.model_copy(update={"port": 1}))
    assert "t0k" not in repr(s)
    assert Settings.from_env({"CORS_ORIGIN": "http://c.example", "FRONTEND_URL": "http://x"}).cors_origins == (
        "http://c.example",)


def test_dotenv_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PORT=4123\nSYSTEM_PROMPT=from dotenv\nLOG_LEVEL=DEBUG\n"
                                   "OPENAI_BASE_URL=http://dotenv/v1\nOPENAI_TIMEOUT=7\n")
    code = ("from pathlib import Path; from flow.config import Settings; "
            "s = Settings.from_env(dotenv=Path('.env')); print(s.port, s.system_prompt, s.log_level); "
            "print(s.env['OPENAI_BASE_URL'], s.env['OPENAI_TIMEOUT'])")
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "SYSTEM_PROMPT", "LOG_LEVEL")
           and not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    env["LOG_LEVEL"] = "WARNING"
    env["OPENAI_TIMEOUT"] = "3"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["4123", "from", "dotenv", "WARNING", "http://dotenv/v1", "3"]  # .env reaches providers too


def test_ffmpeg_comes_from_the_wheel_when_the_system_has_none(tmp_path: Path) -> None:
    code = ("import subprocess; from flow.audio.ffmpeg import ffmpeg_path; p = ffmpeg_path(); "
            "wav = subprocess.run([p, '-loglevel', 'error', '-f', 's16le', '-ar', '16000', '-i', 'pipe:0', "
            "'-f', 'wav', 'pipe:1'], input=b'\\0\\1' * 16000, capture_output=True, check=True).stdout; "
            "print(p); print(len(wav))")
    env = dict(os.environ, PATH=str(Path(sys.executable).parent), PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    path, size = out.split()
    assert "imageio_ffmpeg" in path and int(size) > 1000

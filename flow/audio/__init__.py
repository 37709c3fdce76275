"""Audio: formats a client may declare, PCM conversion and levels, incremental decoding, ffmpeg."""

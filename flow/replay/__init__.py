"""Reproduce a recorded session (`voicegraph replay`): read a recording, feed its input to a server, compare."""

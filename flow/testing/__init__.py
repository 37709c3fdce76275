"""Test helpers shipped with voicegraph: an OpenAI-compatible stub server, a recording Socket.IO
client, real test speech, and an in-loop server. The test suite and `voicegraph bench` use them;
so can a project that builds its own nodes and graphs."""

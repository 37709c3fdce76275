"""The Socket.IO edge: the aiohttp server, one `Session` per connection, the wire contract."""

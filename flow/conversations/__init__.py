"""Conversations that outlive a connection: their history, under an id, in a store with a TTL."""

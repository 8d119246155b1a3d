"""What crosses Redis: key layout, msgpack messages, signed blobs, connections."""

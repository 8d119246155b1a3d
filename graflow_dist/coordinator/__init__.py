"""The coordinator: drives runs from the event stream, holds the leader lease."""

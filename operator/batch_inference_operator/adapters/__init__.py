"""One adapter per external system: wire formats in, plain values out. Never decisions, never kopf."""

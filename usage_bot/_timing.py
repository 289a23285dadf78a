"""The bot's shared timings, each written once: what several modules must agree on."""

from __future__ import annotations

# The longest wait anyone asks of us is honoured up to an hour (a 429's retry-after, a
# chat platform's rate limit), never longer.
MAX_RETRY_AFTER = 3600.0
# Of the 10 s a container gets between SIGTERM and SIGKILL: the whole stop ...
STOP_WITHIN = 9.0
# ... of which work under way (answers being prepared, posts in flight) gets this much.
STOP_GRACE = 5.0
# /healthz stays green while a chat connection reconnects (Slack asks for a new Socket
# Mode connection every few hours); down for longer than this, a front end is unwell.
RECONNECT_GRACE = 60.0
# One HTTP request to a chat platform (a post, a doctor check): the courier retries.
CHAT_REQUEST_TIMEOUT = 10.0
# What makes sense to ask of the demo: faster than real time, no longer than two weeks.
DEMO_MAX_SPEED = 1_000_000.0
DEMO_MAX_HOURS = 14 * 24.0

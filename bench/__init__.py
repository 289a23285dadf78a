"""The benchmark suite (issue 8): the real ``usage-bot run`` against local fakes.

``python -m bench`` runs every benchmark, prints the table and rewrites the generated part
of ``docs/benchmarks.md``; ``python -m bench --short`` is the quick form CI runs to prove
the suite still works (its figures mean little and are written nowhere unless asked).

The bot is a subprocess started as a user starts it, with its real HTTP server,
slack-bolt and discord.py; Slack, Discord and the upstream are the test suite's fakes
(``tests/fakes``) and :class:`usage_bot._simulator.SimulatedUpstream`, served from this
process. See ``docs/benchmarks.md`` for what each benchmark measures and how.
"""

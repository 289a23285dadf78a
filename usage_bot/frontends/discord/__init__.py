"""Discord: ``/claude-usage`` as an application command, and Discord alert destinations.

Importing this package imports no Discord SDK: ``app`` does; ``notify`` posts with plain
HTTP requests, so a webhook-only setup never loads discord.py.
"""

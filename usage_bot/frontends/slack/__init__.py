"""Slack: ``/claude-usage`` in Socket Mode or HTTP mode, and Slack alert destinations.

Importing this package imports no Slack SDK: ``app`` and ``notify`` do; ``webhook`` needs
only aiohttp, so a webhook-only setup never loads slack-bolt or slack-sdk.
"""

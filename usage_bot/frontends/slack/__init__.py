"""Slack: ``/claude-usage`` in Socket Mode or HTTP mode, Slack alert destinations, and
Slack's lines of ``usage-bot doctor``.

- ``app``: the front end, slack-bolt's wiring and the translation to and from the
  command core;
- ``http_mode``: what arrives at ``POST /slack/events``, checked before Bolt sees it;
- ``render``: Block Kit from a reply or an alert;
- ``notify``: alerts with ``chat.postMessage``, and Slack's errors as ours;
- ``webhook``: alerts through an incoming webhook;
- ``web_api``: the Web API client (slack-sdk), and the sign-in check at start;
- ``errors``: what Slack's errors mean, the sentences that start-up, alerts and doctor
  share;
- ``doctor``: the Slack lines of ``usage-bot doctor``, asked with httpx.

Importing this package imports no Slack SDK; ``webhook`` (with ``render`` and
``http_mode``) needs only aiohttp, so a webhook-only setup never loads slack-bolt or
slack-sdk; ``doctor`` (with ``errors``) needs none either.
"""

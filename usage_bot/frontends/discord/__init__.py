"""Discord: ``/claude-usage`` as an application command, and Discord alert destinations.

- ``app``: the front end (discord.py's client and command tree; an interaction in, the
  reply out);
- ``sync``: registering the command only when its definition changed;
- ``render``: Discord's embeds for replies and alerts, as JSON;
- ``notify``: the alert channel and the webhook, and Discord's errors as DeliveryError;
- ``doctor``: the Discord lines of ``usage-bot doctor``, asked with httpx;
- ``shim``: the one place that sets discord.py's process-wide globals.

Importing this package imports no Discord SDK. ``app``, ``sync`` and ``shim`` do;
``render``, ``notify`` and ``doctor`` do not, so neither a webhook-only setup nor
``usage-bot doctor`` ever loads discord.py.
"""

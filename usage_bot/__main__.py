"""``python -m usage_bot`` is the ``usage-bot`` command."""

from usage_bot._cli import main

raise SystemExit(main())

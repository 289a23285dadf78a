"""usage-bot: your team's Claude subscription quota, in Slack and Discord."""

__version__ = "0.1.0"

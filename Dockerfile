# syntax=docker/dockerfile:1
# usage-bot: a slim image that runs as a non-root user and reads the Claude login from a
# read-only mount at /claude. See README, "Run it next to your workstation".

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/usage-bot
COPY pyproject.toml README.md LICENSE ./
COPY usage_bot ./usage_bot
RUN /opt/usage-bot/bin/pip install --no-compile . \
 && /opt/usage-bot/bin/python -m compileall -q /opt/usage-bot/lib \
 && /opt/usage-bot/bin/pip uninstall -y -q pip setuptools

FROM python:3.11-slim
# /data is writable by any user id (sticky, like /tmp): the container often runs with the
# workstation user's id so that it can read ~/.claude, and the state file is 0600 itself.
RUN groupadd --gid 10001 usagebot \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin usagebot \
 && mkdir -p /data /claude && chmod 1777 /data
COPY --from=build /opt/usage-bot /opt/usage-bot
ENV PATH=/opt/usage-bot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CLAUDE_CONFIG_DIR=/claude \
    USAGE_BOT_STATE=/data/usage-bot.sqlite3 \
    USAGE_BOT_HTTP_HOST=0.0.0.0 \
    USAGE_BOT_HTTP_PORT=8080
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["usage-bot", "health"]
ENTRYPOINT ["usage-bot"]
CMD ["run"]

"""E-mail: the embedded backend (one .eml file per message under var/mail/) and a helper
that sends a text + HTML message rendered from auto-escaped templates."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.base import BaseEmailBackend
from django.template.loader import render_to_string

from .text import header_safe


class EmlFileBackend(BaseEmailBackend):
    """Write each message as ``<time>-<random>.eml`` (0600), readable by any mail client."""

    def __init__(self, *args, file_path=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.folder = Path(file_path or settings.EMAIL_FILE_PATH)

    def send_messages(self, email_messages):
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        sent = 0
        for message in email_messages:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            path = self.folder / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
            partial = path.with_suffix(".partial")
            fd = os.open(partial, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(message.message().as_bytes(linesep="\r\n"))
            os.replace(partial, path)  # a reader never sees half a message
            sent += 1
        return sent


def send_templated(
    to: str,
    subject: str,
    template: str,
    context: dict,
    *,
    reply_to: str | None = None,
    attachments: list[tuple[str, bytes, str]] = (),
) -> None:
    """Send ``<template>.txt`` and ``<template>.html`` (both auto-escaped) to ``to``, in
    the active language, with ``attachments`` as (file name, content, MIME type).

    The subject is made one line here, whatever the names put in it hold: a stored name
    with a line break must neither forge a header nor make the sending fail."""
    text = render_to_string(f"{template}.txt", context)
    html = render_to_string(f"{template}.html", context)
    message = EmailMultiAlternatives(
        header_safe(subject),
        text,
        settings.DEFAULT_FROM_EMAIL,
        [header_safe(to)],
        reply_to=[header_safe(reply_to)] if reply_to else None,
    )
    message.attach_alternative(html, "text/html")
    for name, content, mimetype in attachments:
        message.attach(header_safe(name), content, mimetype)
    message.send()

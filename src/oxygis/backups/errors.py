class BackupError(RuntimeError):
    """A backup or restore failed; the message is one line, safe to show an operator."""

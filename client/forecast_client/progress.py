"""A one-line progress display, shared by the `forecast` CLI and `make demo`."""

from __future__ import annotations

import time
from typing import TextIO


class ProgressLine:
    """A one-line progress display on `stream` (redrawn on a terminal, plain lines otherwise)."""

    def __init__(self, stream: TextIO, enabled: bool = True):
        self.stream = stream
        self.tty = stream.isatty()
        self.enabled = enabled
        self._last = ""
        self._last_time = 0.0

    def show(self, text: str, fraction: float | None = None, force: bool = False) -> None:
        """Show `text`, after a 30-character bar when `fraction` (0..1) is given. Off a terminal
        a line is written when the text after the bar changes, else at most every 5 s."""
        if not self.enabled:
            return
        if fraction is not None:
            filled = round(max(0.0, min(1.0, fraction)) * 30)
            text = f"[{'#' * filled}{'.' * (30 - filled)}] {fraction * 100:5.1f}%  {text}"
        if self.tty:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
        else:
            now = time.monotonic()
            # Plain output (logs, CI): at most one line per 5 s unless the text says something new.
            key = text.split("%")[-1]
            if force or key != self._last or now - self._last_time >= 5:
                self.stream.write(text + "\n")
                self._last, self._last_time = key, now

    def done(self) -> None:
        """End the redrawn line (on a terminal)."""
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()

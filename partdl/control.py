"""Pause or cancel a running download from another thread."""

from __future__ import annotations

import enum
import threading


class ControlAction(enum.Enum):
    PAUSE = "pause"
    CANCEL = "cancel"


class Control:
    """A handle a caller keeps to stop a download that another thread is running.

    Pass it as ``download_file(..., control=handle)``; then, from any thread,
    ``handle.pause()`` makes that call raise :class:`DownloadPausedError` with the
    checkpoint kept (calling ``download_file`` again resumes), and ``handle.cancel()``
    makes it raise :class:`DownloadCancelledError` with the temp file and the
    checkpoint removed. Parts in flight stop within one chunk. A handle serves one
    call; make a new one to resume.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._action: ControlAction | None = None

    def pause(self) -> None:
        self._request(ControlAction.PAUSE)

    def cancel(self) -> None:
        self._request(ControlAction.CANCEL)

    @property
    def action(self) -> ControlAction | None:
        """The first action requested, or None."""
        return self._action

    def _request(self, action: ControlAction) -> None:
        # A cancel overrides a pause that has not been acted on; never the reverse.
        if self._action is None or action is ControlAction.CANCEL:
            self._action = action
        self._event.set()

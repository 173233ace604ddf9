"""Static files (the admin's, Swagger UI's) served by the application itself, in every profile."""

from __future__ import annotations

from pathlib import Path

from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise serving the files where the installed packages keep them (WHITENOISE_USE_FINDERS), so no
    profile needs `collectstatic`; STATIC_ROOT is served too once something has been collected there,
    and its absence is no reason to warn on every start."""

    def add_files(self, root, prefix=None):
        if Path(root).is_dir():
            super().add_files(root, prefix)

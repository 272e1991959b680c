"""``python -m partdl SRC DEST``: the same as the ``partdl`` console script."""

from .cli import run

if __name__ == "__main__":
    run()

"""Run the `nlu` commands on the repository's data/ without the bot: `python -m nlu …`."""

from .cli import build_group


def _options() -> dict:
    return {"path": "data/nlu.yml", "taxonomy": "data/taxonomy.yml"}


if __name__ == "__main__":
    build_group(_options)()

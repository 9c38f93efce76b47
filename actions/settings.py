"""Settings from the environment, read once by the entry point and passed on."""

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# A clone keeps its data beside the packages; a deployment may point WARGA_DATA_DIR elsewhere.
_REPO_DATA = Path(__file__).resolve().parent.parent / "data"


class Settings(BaseSettings):
    """Every knob of a deployment; secrets are SecretStr, so their repr hides them."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    database_url: str = ""
    warga_city: str = "pekanbaru"
    warga_data_dir: Path = _REPO_DATA
    warga_var_dir: Path = Path("var")
    telegram_bot_token: SecretStr | None = None
    telegram_api_url: str | None = None
    telegram_webhook_secret: SecretStr | None = None
    nlu_backend: str = "builtin"

    @property
    def effective_database_url(self) -> str:
        """Return DATABASE_URL, or the embedded SQLite file under the var directory."""
        return self.database_url or f"sqlite:///{self.warga_var_dir / 'warga.sqlite3'}"

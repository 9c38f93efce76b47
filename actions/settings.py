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
    # PostgreSQL: seconds a statement may take (lock waits a third of it); a call with no
    # answer after about 1.5 times this has its connection cut (actions/db.py).
    warga_db_timeout: float = 30.0
    # WhatsApp Cloud API (bot/channels/whatsapp.py); served by `warga serve` when the four
    # secrets and ids are set.
    whatsapp_verify_token: SecretStr | None = None
    whatsapp_app_secret: SecretStr | None = None
    whatsapp_access_token: SecretStr | None = None
    whatsapp_phone_number_id: str | None = None
    whatsapp_api_url: str = "https://graph.facebook.com"
    whatsapp_api_version: str = "v24.0"
    whatsapp_media_dir: Path | None = None

    @property
    def effective_database_url(self) -> str:
        """Return DATABASE_URL, or the embedded SQLite file under the var directory."""
        return self.database_url or f"sqlite:///{self.warga_var_dir / 'warga.sqlite3'}"

    @property
    def whatsapp_enabled(self) -> bool:
        return all(
            (
                self.whatsapp_verify_token,
                self.whatsapp_app_secret,
                self.whatsapp_access_token,
                self.whatsapp_phone_number_id,
            )
        )

    @property
    def effective_whatsapp_media_dir(self) -> Path:
        """Return WHATSAPP_MEDIA_DIR, or media/whatsapp under the var directory."""
        return self.whatsapp_media_dir or self.warga_var_dir / "media" / "whatsapp"

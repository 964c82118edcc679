"""All configuration: one pydantic-settings class read from the environment (prefix IMAGEBATCH_)."""

from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MODEL_NAMES = ("resnet18", "resnet50")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class Settings(BaseSettings):
    """Every setting; the README documents each one."""

    model_config = SettingsConfigDict(env_prefix="IMAGEBATCH_", env_file=".env", extra="ignore")

    # Where embedded-mode state lives: SQLite database, SQLite broker, uploaded blobs.
    DATA_DIR: Path = Path(".imagebatch")
    # Unset means SQLite in DATA_DIR (embedded default).
    DATABASE_URL: str | None = Field(
        default=None, validation_alias=AliasChoices("IMAGEBATCH_DATABASE_URL", "DATABASE_URL")
    )
    # Unset means kombu's SQLAlchemy transport on SQLite in DATA_DIR.
    REDIS_URL: str | None = Field(
        default=None, validation_alias=AliasChoices("IMAGEBATCH_REDIS_URL", "REDIS_URL")
    )
    # fsspec URL or local directory for uploaded images; unset means DATA_DIR/blobs.
    STORAGE_URL: str | None = None
    # Local directories that `uris` manifests may read from (colon- or comma-separated).
    ALLOWED_ROOTS: str = ""

    # Images per chunk task: one forward pass and one database transaction each.
    CHUNK_SIZE: int = Field(default=32, ge=1, le=1024)
    DEFAULT_MODEL: str = "resnet18"
    DEFAULT_PRECISION: str = "auto"
    MAX_TOP_K: int = Field(default=20, ge=1, le=1000)

    # Worker: models this worker serves (its queues), threads for decoding, torch threads.
    WORKER_MODELS: str = "resnet18,resnet50"
    DECODE_THREADS: int = Field(default=0, ge=0, description="0 = one per core")
    TORCH_THREADS: int = Field(default=0, ge=0, description="0 = torch's default")
    DEVICE: str = "auto"
    EMBEDDING_DTYPE: str = "float32"
    # Longer than the longest chunk, or Redis redelivers a chunk that is still running.
    VISIBILITY_TIMEOUT: int = 3600
    FETCH_TIMEOUT: float = 20.0
    FETCH_MAX_BYTES: int = 50 * 1024 * 1024

    API_HOST: str = "127.0.0.1"
    API_PORT: int = 8000
    # The API's address as seen by the CLI.
    API_URL: str = "http://127.0.0.1:8000"
    # Apply database migrations when the API starts (docker-compose runs a separate step).
    AUTO_MIGRATE: bool = True
    LOG_LEVEL: str = "INFO"

    @cached_property
    def database_url(self) -> str:
        if self.DATABASE_URL:
            return self.DATABASE_URL
        return f"sqlite:///{self.data_dir / 'imagebatch.sqlite'}"

    @cached_property
    def broker_url(self) -> str:
        if self.REDIS_URL:
            return self.REDIS_URL
        return f"sqla+sqlite:///{self.data_dir / 'broker.sqlite'}"

    @cached_property
    def storage_url(self) -> str:
        return self.STORAGE_URL or str(self.data_dir / "blobs")

    @property
    def data_dir(self) -> Path:
        return self.DATA_DIR.expanduser().resolve()

    @property
    def allowed_roots(self) -> list[Path]:
        parts = self.ALLOWED_ROOTS.replace(",", ":").split(":")
        return [Path(p).expanduser().resolve() for p in parts if p.strip()]

    @property
    def worker_models(self) -> list[str]:
        return [m.strip() for m in self.WORKER_MODELS.split(",") if m.strip()]

    @property
    def is_embedded(self) -> bool:
        return self.REDIS_URL is None


settings = Settings()

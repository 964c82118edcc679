"""All configuration: one pydantic-settings class read from the environment (prefix IMAGEBATCH_)."""

from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# How a worker may decode images (a job's `decode` option, IMAGEBATCH_DECODE_MODE); see core.options.
DECODE_MODES = ("fast", "exact")


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
    REDIS_URL: str | None = Field(default=None, validation_alias=AliasChoices("IMAGEBATCH_REDIS_URL", "REDIS_URL"))
    # fsspec URL or local directory for uploaded images; unset means DATA_DIR/blobs.
    STORAGE_URL: str | None = None
    # Local directories that `uris` manifests may read from (colon- or comma-separated).
    ALLOWED_ROOTS: str = ""

    # Images per chunk task: one forward pass and one database transaction each.
    CHUNK_SIZE: int = Field(default=32, ge=1, le=1024)
    DEFAULT_MODEL: str = "resnet18"
    DEFAULT_PRECISION: str = "auto"
    # precision=int8: False makes the API refuse it (422), e.g. where workers lack the int8 engine.
    INT8_ENABLED: bool = True
    # The int8 engine workers quantize with (docs/model-tools.md): openvino, onnxruntime or pt2e.
    INT8_ENGINE: str = "openvino"
    # Calibration images per int8 model: sample photos (built-in models) or training images (custom).
    INT8_CALIBRATION_IMAGES: int = Field(default=64, ge=1, le=1024)
    MAX_TOP_K: int = Field(default=20, ge=1, le=1000)

    # Worker: models this worker serves (its queues), threads for decoding, torch threads.
    WORKER_MODELS: str = "resnet18,resnet50"
    DECODE_THREADS: int = Field(default=0, ge=0, description="0 = one per core")
    # Pixels a worker process decodes at once (read from each image's header before its decode);
    # more waits. ~100 MP is one image at Pillow's MAX_IMAGE_PIXELS (89 MP), or eight 12 MP photos,
    # about 1 GiB of decoded RGB and copies; an image larger than the budget still decodes, alone.
    DECODE_PIXEL_BUDGET: int = Field(default=100_000_000, ge=1_000_000)
    TORCH_THREADS: int = Field(default=0, ge=0, description="0 = the cores divided among the forward slots")
    DEVICE: str = "auto"
    EMBEDDING_DTYPE: str = "float32"
    # Longer than the longest chunk, or Redis redelivers a chunk that is still running.
    VISIBILITY_TIMEOUT: int = 3600
    FETCH_TIMEOUT: float = 20.0
    FETCH_MAX_BYTES: int = 50 * 1024 * 1024
    # Throughput: chunk tasks in flight per worker process (threads; forward passes take turns),
    # so the next chunk decodes while the current one runs forward.
    WORKER_CONCURRENCY: int = Field(default=2, ge=1, le=16)
    # Forward passes that may run at once in a worker: 0 = one on a GPU, one per chunk in flight
    # on a CPU (each on its share of the cores). See worker/prefetch.py.
    FORWARD_SLOTS: int = Field(default=0, ge=0, le=16)
    # The decode mode of jobs that do not choose one (the `decode` option; fp32 jobs default to
    # exact): fast: libjpeg-turbo JPEG decode, images over 2 x 2.25 x the resize size reduced by
    # 1/2-1/8 and only the cropped region resized (docs/decoding.md); exact: torchvision's reference.
    DECODE_MODE: str = "fast"
    # CUDA only: torch.compile the model; decode JPEGs on the GPU (torchvision.io.decode_jpeg).
    COMPILE: bool = False
    GPU_DECODE: bool = False

    API_HOST: str = "127.0.0.1"
    API_PORT: int = 8000
    # The API's address as seen by the CLI.
    API_URL: str = "http://127.0.0.1:8000"
    # Apply database migrations when the API starts (docker-compose runs a separate step).
    AUTO_MIGRATE: bool = True
    LOG_LEVEL: str = "INFO"
    # One JSON object per log line (with job_id/chunk fields) instead of plain text.
    LOG_JSON: bool = False
    # Port of each worker process's Prometheus /metrics endpoint; 0 turns it off.
    WORKER_METRICS_PORT: int = Field(default=0, ge=0, le=65535)
    # Send Celery task events and heartbeats so Flower can show workers and tasks (Redis only).
    WORKER_EVENTS: bool = False
    # Answer `celery inspect` / `celery control` broadcasts (Flower's worker pages); see README.
    WORKER_REMOTE_CONTROL: bool = False
    # Key for the HMAC-SHA256 signature of completion webhooks (X-Imagebatch-Signature).
    WEBHOOK_SECRET: str = ""
    WEBHOOK_TIMEOUT: float = 10.0
    # Delivery attempts per webhook, with exponential backoff between them.
    WEBHOOK_MAX_ATTEMPTS: int = Field(default=5, ge=1, le=20)
    # Longest side, in pixels, of the JPEG thumbnail the worker stores for each image it decodes,
    # and of the preview it stores for formats a browser cannot show (TIFF, ...).
    THUMBNAIL_SIZE: int = Field(default=256, ge=16, le=1024)
    PREVIEW_SIZE: int = Field(default=1024, ge=64, le=4096)

    # Security: API keys, per-tenant limits, request and archive limits, URL policy.
    # Every /v1 route needs an API key; only the embedded demo and tests turn this off.
    AUTH_ENABLED: bool = True
    MAX_ACTIVE_JOBS_PER_TENANT: int = Field(default=20, ge=0, description="0 = unlimited")
    MAX_IMAGES_IN_FLIGHT_PER_TENANT: int = Field(default=200_000, ge=0, description="0 = unlimited")
    MAX_IMAGES_PER_JOB: int = Field(default=100_000, ge=1)
    MAX_UPLOAD_BYTES: int = Field(default=10 * 1024**3, ge=1)
    MAX_ARCHIVE_MEMBERS: int = Field(default=200_000, ge=1)
    MAX_ARCHIVE_UNCOMPRESSED_BYTES: int = Field(default=20 * 1024**3, ge=1)
    MAX_ARCHIVE_RATIO: float = Field(default=100.0, gt=1)
    # Seconds a request body may send nothing before the upload is dropped (408) and its blobs removed.
    UPLOAD_IDLE_TIMEOUT: float = Field(default=60.0, gt=0)
    # Uploaded files under a job id with no job row, untouched this long, belong to a request whose
    # API process died mid-body: the sweeper removes them. Longer than any pause UPLOAD_IDLE_TIMEOUT allows.
    UPLOAD_ORPHAN_GRACE: float = Field(default=600.0, gt=0)
    # Characters in an uploaded file's name (a multipart part's filename); longer is answered 400.
    MAX_FILENAME_LENGTH: int = Field(default=1024, ge=16, le=16384)
    # Let http(s) URLs reach loopback, private, link-local and metadata addresses.
    ALLOW_PRIVATE_URLS: bool = False
    FETCH_MAX_REDIRECTS: int = Field(default=5, ge=0)

    # Faults: stuck chunks, un-enqueued jobs, database outages, fair scheduling.
    # A claimed chunk not finished this long after its claim is requeued by the sweeper.
    CHUNK_DEADLINE: float = Field(default=900.0, gt=0)
    # Claims per image before it is given up as `timed_out`.
    CHUNK_MAX_ATTEMPTS: int = Field(default=3, ge=1)
    # Seconds between sweeps in each worker process; 0 turns the sweeper off.
    SWEEP_INTERVAL: float = Field(default=5.0, ge=0)
    # Liveness: every worker process records a heartbeat in the database this often; the rows a
    # worker holds go back to the queue once its heartbeat is WORKER_DEAD_AFTER seconds old.
    WORKER_HEARTBEAT: float = Field(default=5.0, gt=0)
    WORKER_DEAD_AFTER: float = Field(default=15.0, gt=0)
    # A queued job whose chunks were never all sent this long after creation gets enqueued again.
    SUBMIT_GRACE: float = Field(default=120.0, gt=0)
    # A job with pending images, none of its rows claimed or finished for this long and its
    # model's queue empty, has lost chunk messages: the sweeper sends them again.
    # Short enough that a message lost with a killed worker (fetched, not yet claimed) comes back
    # within ~30 s; a resend that was not needed only makes a duplicate message, which claims ignore.
    ORPHAN_AFTER: float = Field(default=20.0, gt=0)
    # How long a worker keeps retrying a chunk's database work while the database is away.
    DB_RETRY_SECONDS: float = Field(default=300.0, ge=0)
    # PostgreSQL connect timeout, so the API answers 503 quickly when the database is down.
    DB_CONNECT_TIMEOUT: int = Field(default=5, ge=1)
    # Each process's connection pool: DB_POOL_SIZE kept open, up to DB_MAX_OVERFLOW more under load;
    # a request that finds none free within DB_POOL_TIMEOUT seconds is answered 503 with Retry-After.
    DB_POOL_SIZE: int = Field(default=10, ge=1, le=200)
    DB_MAX_OVERFLOW: int = Field(default=30, ge=0, le=500)
    DB_POOL_TIMEOUT: float = Field(default=10.0, gt=0)
    # Threads that run the API's blocking work (database, storage, broker); 0 = the pool's full size
    # (DB_POOL_SIZE + DB_MAX_OVERFLOW), so a thread holding one connection never waits for one.
    API_THREADS: int = Field(default=0, ge=0, le=1000)
    # Submissions one API process reads at once; the next ones wait up to SUBMIT_QUEUE_TIMEOUT
    # seconds for a turn, then are answered 503 with Retry-After (0 = no limit).
    MAX_SUBMISSIONS_IN_FLIGHT: int = Field(default=64, ge=0)
    SUBMIT_QUEUE_TIMEOUT: float = Field(default=30.0, gt=0)

    # Custom models and training (README "Custom models").
    # What a worker consumes: classify (the queues of WORKER_MODELS), train (the training queue), or both.
    WORKER_QUEUES: str = "classify,train"
    # Custom models a worker process keeps loaded; the least recently used one goes first.
    CUSTOM_MODEL_CACHE: int = Field(default=4, ge=1, le=64)
    # A running training job's claim lasts this long unless its worker renews it (every TRAIN_HEARTBEAT s);
    # once it lapses, a sweeper sends the job again and another worker resumes from the last checkpoint.
    TRAIN_LEASE: float = Field(default=120.0, gt=0)
    TRAIN_HEARTBEAT: float = Field(default=15.0, gt=0)
    # Claims of one training job before it is failed (a job that kills its worker each time).
    TRAIN_MAX_ATTEMPTS: int = Field(default=3, ge=1)
    # Training jobs one worker process runs at once; another waits on the queue for a free worker.
    TRAIN_SLOTS: int = Field(default=1, ge=1, le=8)

    @field_validator("DECODE_MODE")
    @classmethod
    def _known_decode_mode(cls, value: str) -> str:
        mode = value.strip().lower()
        if mode not in DECODE_MODES:
            raise ValueError(f"IMAGEBATCH_DECODE_MODE must be fast or exact, not {value!r}")
        return mode

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
    def api_threads(self) -> int:
        return self.API_THREADS or self.DB_POOL_SIZE + self.DB_MAX_OVERFLOW

    @property
    def worker_models(self) -> list[str]:
        return [m.strip() for m in self.WORKER_MODELS.split(",") if m.strip()]

    @property
    def worker_queues(self) -> list[str]:
        return [q.strip() for q in self.WORKER_QUEUES.split(",") if q.strip()]

    @property
    def is_embedded(self) -> bool:
        return not self.REDIS_URL  # an empty REDIS_URL means the embedded broker, as in broker_url


settings = Settings()

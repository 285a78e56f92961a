"""Settings from the environment (prefix STYLEBOT_) and an optional .env file.

Built once in main() and passed down; nothing reads settings at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PLATFORMS = ("telegram", "discord", "console")


class SettingsError(Exception):
    """A setting is missing or invalid; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STYLEBOT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Path("data")
    database_url: str = ""  # empty: a SQLite file under data_dir
    # Embedded: kombu's filesystem transport under data_dir (the host part only quiets kombu).
    broker_url: str = "filesystem://localhost/"
    styles_file: Path | None = None  # None: the bundled tasks/styles.toml
    backend: Literal["classic", "diffusers", "null", "sleep", "crash"] = "classic"
    telegram_token: str = ""
    telegram_api_url: str = "https://api.telegram.org"
    # Set: webhook mode, Telegram posts updates to this public HTTPS URL. Empty: long polling.
    telegram_webhook_url: str = ""
    # Checked on every webhook request (X-Telegram-Bot-Api-Secret-Token). Empty: random per start.
    telegram_webhook_secret: str = Field(default="", pattern=r"^[A-Za-z0-9_-]{0,256}$")
    telegram_webhook_listen: str = "127.0.0.1"  # where the webhook server binds
    telegram_webhook_port: int = Field(default=8443, ge=1, le=65535)
    # A self-hosted Bot API server started with --local: no 20 MB download limit, files on disk.
    telegram_local_mode: bool = False
    discord_token: str = ""
    # Discord's REST API base; the gateway address comes from its /gateway/bot answer.
    discord_api_url: str = Field(default="https://discord.com/api/v10", pattern=r"^https?://\S+$")
    # Set: commands are synced to this one guild only (instant; for development). None: global.
    discord_guild_id: int | None = Field(default=None, gt=0)
    admins: Annotated[tuple[str, ...], NoDecode] = ()
    # Set: each bot process serves a public, read-only status page on this port (all interfaces).
    status_port: int | None = Field(default=None, ge=1, le=65535)
    # The status page's public address; the "busy" reply links to it. Empty: no link.
    status_url: str = Field(default="", pattern=r"^(https?://\S+)?$")
    free_daily_limit: int = Field(default=3, ge=0, le=10_000)
    plus_daily_limit: int = Field(default=30, ge=0, le=100_000)
    pro_daily_limit: int = Field(default=200, ge=0, le=1_000_000)
    free_max_wait_s: int = Field(default=600, gt=0)  # refuse (politely) above this estimate
    plus_max_wait_s: int = Field(default=1200, gt=0)
    pro_max_wait_s: int = Field(default=1800, gt=0)
    free_in_flight: int = Field(default=1, ge=1, le=100)
    plus_in_flight: int = Field(default=2, ge=1, le=100)
    pro_in_flight: int = Field(default=4, ge=1, le=100)
    # Relax-lane jobs ("do it when there's room") one person may hold at once, by tier.
    free_relax_cap: int = Field(default=1, ge=0, le=100)
    plus_relax_cap: int = Field(default=3, ge=0, le=100)
    pro_relax_cap: int = Field(default=5, ge=0, le=100)
    relax_ttl_hours: float = Field(default=24.0, gt=0)  # a relax job not done by then: refunded
    offer_ttl_minutes: float = Field(default=60.0, gt=0)  # how long "do it later" can be taken
    # Image packs and tier passes for sale (TOML; quota/products.example.toml). None: no shop.
    products_file: Path | None = None
    # Where people reach a person about a payment (/paysupport): an @username, a URL, an email.
    support_contact: str = Field(default="", max_length=200)
    plus_head_start_s: int = Field(default=120, ge=0)  # queued as if it came this much earlier
    pro_head_start_s: int = Field(default=300, ge=0)
    surge_high_wait_s: int = Field(default=300, gt=0)  # auto mode: free wait above this ...
    surge_low_wait_s: int = Field(default=60, ge=0)  # ... or below this ...
    surge_window_s: int = Field(default=120, gt=0)  # ... for this long steps the free limit
    surge_min_free_limit: int = Field(default=1, ge=0)
    assumed_seconds_per_image: float = Field(default=3.0, gt=0)  # until a worker has measured
    worker_heartbeat_s: float = Field(default=5.0, gt=0)
    timezone: str = "UTC"
    result_ttl_hours: float = Field(default=24.0, gt=0)
    max_upload_mb: float = Field(default=20.0, gt=0)
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    task_soft_time_limit: int = Field(default=120, gt=0)
    task_time_limit: int = Field(default=180, gt=0)
    broker_visibility_timeout: int = Field(default=3600, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=20)
    # A queued job whose Celery token is this overdue (or twice the queue's estimated drain
    # time, when longer) gets another: the broker lost the first (restarted empty, flushed).
    token_grace_s: float = Field(default=60.0, gt=0)
    device: str = "auto"  # diffusers backend: auto | cuda | cpu
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"  # auto: fp16 on CUDA
    compile: Literal["off", "unet", "full"] = "off"  # torch.compile the UNet (full: + VAE)
    compile_mode: Literal[
        "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"
    ] = "default"
    warmup: bool = True  # load and run (compile) the models before taking jobs
    warmup_buckets: str = "512x512,512x768,768x512"  # shapes compiled at warm-up
    compile_batch_sizes: str = ""  # batch sizes compiled per bucket; "": 1, 4, 16 … max_batch
    vae_slicing: bool = False  # decode a batch one image at a time (less VRAM)
    quantize: Literal["off", "int8", "fp8"] = "off"  # the UNet's linear layers (torchao)
    overlap: bool = True  # prepare batch N+1 and store N-1 while the GPU styles batch N
    # One GPU per worker replica: claim a free index through locks in this shared directory
    # (compose: a volume all worker replicas mount). Empty: no claiming, use STYLEBOT_DEVICE.
    gpu_claim_dir: str = ""
    gpus: str = ""  # the indices to claim from ("0,1,2,3"); empty: what nvidia-smi lists
    gpu_claim_wait_s: float = Field(default=60.0, ge=0)  # wait this long for a GPU to free up
    # Workers scale from zero on demand (KEDA's scale-to-zero): with none live, queue requests
    # anyway and tell people this start time plus the queue. Unset: refuse as "no workers".
    cold_start_s: float | None = Field(default=None, gt=0)
    max_batch: int = Field(default=8, ge=1, le=64)  # jobs of one style and size per call
    batch_wait_ms: int = Field(default=50, ge=0, le=5000)  # how long to gather a batch
    sleep_backend_ms: int = Field(default=200, ge=0)  # the fixed-duration fake backend
    # Set: serve Prometheus metrics on this port, all interfaces (bots and workers). None: off.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # Content Credentials (C2PA) on results, declaring them AI-made (storage/provenance.py): the
    # signing certificate chain (PEM, the signer's certificate first) and its private key (PEM,
    # PKCS#8, unencrypted). Both unset: results carry no metadata at all.
    c2pa_cert: Path | None = None
    c2pa_key: Path | None = None
    c2pa_alg: Literal["es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519"] = "es256"
    # An RFC 3161 timestamp authority for the signatures. Empty: none (no network call).
    c2pa_tsa_url: str = Field(default="", pattern=r"^(https?://\S+)?$")
    # The safety check (tasks/safety.py). Empty: off. Else an image-classification model (a
    # local path or hub id, loaded with transformers) or a Python factory "package.module:name".
    safety_classifier: str = ""
    safety_labels: Annotated[tuple[str, ...], NoDecode] = ("nsfw",)  # the labels that hold
    safety_threshold: float = Field(default=0.8, ge=0.0, le=1.0)  # held at or above this score
    safety_check_input: bool = False  # also check the photo before styling (refused if flagged)
    safety_device: str = "cpu"  # where the transformers classifier runs: cpu | cuda | cuda:1

    @field_validator("safety_labels", mode="before")
    @classmethod
    def _split_labels(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().lower() for part in value.split(",") if part.strip())
        return value

    @field_validator("admins", mode="before")
    @classmethod
    def _split_admins(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            for admin in value:
                platform, _, ident = str(admin).partition(":")
                if platform not in PLATFORMS or not ident:
                    raise ValueError(f"{admin!r} is not a platform-qualified id like telegram:123")
            return tuple(value)
        return value

    # An empty value (`STYLEBOT_X=` in .env, compose passing an unset variable) means unset:
    # commands synced globally, no status page, no metrics, the bundled styles, no cold start.
    @field_validator(
        "discord_guild_id",
        "status_port",
        "metrics_port",
        "styles_file",
        "cold_start_s",
        "c2pa_cert",
        "c2pa_key",
        mode="before",
    )
    @classmethod
    def _empty_means_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("warmup_buckets")
    @classmethod
    def _known_buckets(cls, value: str) -> str:
        from tasks.buckets import parse_buckets

        return ",".join(parse_buckets(value))

    @model_validator(mode="after")
    def _compile_needs_warmup(self) -> Settings:
        if self.compile != "off" and not self.warmup:
            # Compiling inside a job would take minutes and hit the task's time limit.
            raise ValueError("STYLEBOT_COMPILE needs STYLEBOT_WARMUP=true")
        self.batch_sizes()  # raises on a bad STYLEBOT_COMPILE_BATCH_SIZES
        return self

    @model_validator(mode="after")
    def _c2pa_cert_and_key(self) -> Settings:
        if (self.c2pa_cert is None) != (self.c2pa_key is None):
            given, missing = ("CERT", "KEY") if self.c2pa_key is None else ("KEY", "CERT")
            raise ValueError(
                f"STYLEBOT_C2PA_{missing}: needed with STYLEBOT_C2PA_{given} (signing results "
                "takes the certificate chain and its key)"
            )
        return self

    def batch_sizes(self) -> tuple[int, ...]:
        """The batch sizes a compiled pipeline is warmed for (and pads batches up to)."""
        if not self.compile_batch_sizes.strip():
            sizes = {1, self.max_batch}
            size = 4  # ×4 steps: each size is a compile per bucket, minutes on a GPU
            while size < self.max_batch:
                sizes.add(size)
                size *= 4
            return tuple(sorted(sizes))
        try:
            sizes = {int(part) for part in self.compile_batch_sizes.split(",") if part.strip()}
        except ValueError:
            sizes = set()
        if not sizes or min(sizes) < 1 or max(sizes) > self.max_batch:
            raise ValueError(
                "STYLEBOT_COMPILE_BATCH_SIZES: comma-separated sizes from 1 to STYLEBOT_MAX_BATCH"
                f" ({self.max_batch}), e.g. 1,4,{self.max_batch}"
            )
        return tuple(sorted(sizes))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'stylebot.db').resolve()}"

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")


def load_settings(**overrides: object) -> Settings:
    """Build settings; raise SettingsError with one line naming the variable at fault."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        if not err["loc"]:  # a rule across settings names its variables itself
            raise SettingsError(err["msg"].removeprefix("Value error, ")) from None
        raise SettingsError(f"STYLEBOT_{str(err['loc'][0]).upper()}: {err['msg']}") from None

"""The Celery app: JSON only, one `gpu` queue, late acks, a visibility timeout that is checked."""

from __future__ import annotations

from typing import Any

from celery import Celery

from storage.settings import Settings, SettingsError

STYLIZE_TASK = "stylebot.stylize"
GPU_QUEUE = "gpu"


def broker_options(settings: Settings) -> dict[str, Any]:
    if settings.embedded_broker:
        # kombu's filesystem transport: one folder is both the in- and out-box; no server needed.
        folder = (settings.data_dir / "broker").resolve()
        folder.mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            # Its exchange tables; kombu's default is ./control, wherever the command was run.
            "control_folder": str(folder.parent / "broker-control"),
            "store_processed": False,
            "polling_interval": 0.05,
        }
    # Redis re-delivers an unacked message after the visibility timeout: it must outlast the
    # hard time limit, or a long job would run twice.
    return {"visibility_timeout": settings.broker_visibility_timeout, "polling_interval": 0.05}


def check_visibility_timeout(settings: Settings) -> None:
    if settings.embedded_broker:
        return
    if settings.broker_visibility_timeout <= 2 * settings.task_time_limit:
        raise SettingsError(
            "STYLEBOT_BROKER_VISIBILITY_TIMEOUT: must be more than twice STYLEBOT_TASK_TIME_LIMIT "
            f"({settings.broker_visibility_timeout} <= 2 x {settings.task_time_limit})"
        )


def make_celery(settings: Settings) -> Celery:
    app = Celery("stylebot", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,  # SQL holds the outcome
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.task_soft_time_limit,
        task_time_limit=settings.task_time_limit,
        task_default_queue=GPU_QUEUE,
        task_routes={STYLIZE_TASK: {"queue": GPU_QUEUE}},
        broker_transport_options=broker_options(settings),
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        stylebot_settings=settings,
    )
    return app


def publisher(settings: Settings) -> Any:
    """A function job_id -> None that sends the stylize task (used by the bot processes)."""
    app = make_celery(settings)

    def enqueue(job_id: str) -> None:
        app.send_task(STYLIZE_TASK, args=[job_id], queue=GPU_QUEUE)

    return enqueue

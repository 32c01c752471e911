"""The stage's settings, all from environment variables (contract.md, "Names and places")."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

DEFAULT_PORT = 8089
DEFAULT_CONTAINER_ID = "neck_nas"
DEFAULT_PM_URL = "http://projectmanager:8085"
DEFAULT_SHARED_DIR = "/shared"


@dataclass(frozen=True)
class Profile:
    """Who the stage is to the project manager, and the output layout its hand-off carries.

    `neck_nas` is the neck-NAS era's contract (contract.md); `tango` is TANGO's current deployment, where the
    PM calls only the containers of its CONTAINER_INFO table, so the stage stands in for its AutoNN."""

    container_id: str
    port: int
    # hand-off exports: "yolov5" = (batch, anchors, 5 + nc) with objectness; "yolov9" = (batch, 4 + nc, anchors)
    output_layout: str


PROFILES: dict[str, Profile] = {
    "neck_nas": Profile(container_id=DEFAULT_CONTAINER_ID, port=DEFAULT_PORT, output_layout="yolov5"),
    "tango": Profile(container_id="autonn", port=8100, output_layout="yolov9"),
}
DEFAULT_PROFILE = "neck_nas"


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _positive(value: int, name: str) -> int:
    if value < 1:
        raise ValueError(f"environment variable {name}={value} must be at least 1")
    return value


@dataclass(frozen=True)
class ServiceConfig:
    shared_dir: Path
    container_id: str = DEFAULT_CONTAINER_ID
    pm_url: str = DEFAULT_PM_URL
    port: int = DEFAULT_PORT
    profile: str = DEFAULT_PROFILE  # NAS_PROFILE: neck_nas | tango (see PROFILES)
    output_layout: str = PROFILES[DEFAULT_PROFILE].output_layout
    status_updates: bool = False  # optional POST /status_update progress events
    stop_grace_s: float = 5.0  # SIGTERM -> SIGKILL delay for /stop
    pm_attempts: int = 4  # status_report tries before giving up
    pm_timeout_s: float = 3.0  # per HTTP call
    pm_backoff_s: float = 0.5  # first retry delay, doubled each time
    pm_retry_max_s: float = 60.0  # longest delay between two tries of a report kept in the outbox
    queue_lock: Path = Path(tempfile.gettempdir()) / "autonn-nas-queue.lock"
    nproc: int = 1  # search processes (GPUs) when neck_nas.yaml sets no nproc

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "ServiceConfig":
        env = os.environ if env is None else env

        def number(name: str, default: float, kind: type = float):
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                return kind(raw)
            except ValueError:
                raise ValueError(f"environment variable {name}={raw!r} is not a valid {kind.__name__}") from None

        profile_name = (env.get("NAS_PROFILE") or DEFAULT_PROFILE).strip().lower()
        if profile_name not in PROFILES:
            raise ValueError(f"environment variable NAS_PROFILE={profile_name!r} must be one of {', '.join(PROFILES)}")
        profile = PROFILES[profile_name]
        return cls(
            shared_dir=Path(env.get("SHARED_DIR") or DEFAULT_SHARED_DIR).resolve(),
            container_id=env.get("CONTAINER_ID") or profile.container_id,
            pm_url=(env.get("PROJECT_MANAGER_URL") or DEFAULT_PM_URL).rstrip("/"),
            port=number("PORT", profile.port, int),
            profile=profile_name,
            output_layout=profile.output_layout,
            status_updates=_flag(env.get("NAS_STATUS_UPDATES")),
            stop_grace_s=number("NAS_STOP_GRACE_S", 5.0),
            pm_attempts=max(1, number("NAS_PM_ATTEMPTS", 4, int)),
            pm_timeout_s=number("NAS_PM_TIMEOUT_S", 3.0),
            pm_backoff_s=number("NAS_PM_BACKOFF_S", 0.5),
            pm_retry_max_s=number("NAS_PM_RETRY_MAX_S", 60.0),
            queue_lock=Path(env.get("NAS_QUEUE_LOCK") or cls.queue_lock),
            nproc=_positive(number("NAS_NPROC", 1, int), "NAS_NPROC"),
        )

"""Settings of the reports capability, read from the environment once per process.

Mail settings are the project's contract: ``SMTP_HOST``, ``SMTP_PORT``, ``SMTP_PASSWORD``
(with ``SMTP_USER``), ``ION_REPORTS_FROM``, and recipients per audience in ``audiences.yaml``
overridable by ``ION_REPORTS_TO_<AUDIENCE>`` (comma-separated; read per send, see
``audiences.recipients``). Reports always go over STARTTLS with a verified certificate
(``ION_REPORTS_SMTP_CA_FILE`` adds a CA, for a private relay). Locally, without ``SMTP_HOST``,
a report is written to the outbox folder and recorded as ``outbox`` (not mailed); a deployed
function (``K_SERVICE`` set) refuses to start without the mail settings (``check_deployment``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

HERE = Path(__file__).resolve().parent


class ReportsSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    smtp_host: str | None = Field(default=None, validation_alias="SMTP_HOST")
    smtp_port: int = Field(default=587, gt=0, lt=65536, validation_alias="SMTP_PORT")
    smtp_user: str | None = Field(default=None, validation_alias="SMTP_USER")
    smtp_password: str | None = Field(default=None, validation_alias="SMTP_PASSWORD")
    smtp_ca_file: str | None = Field(default=None, validation_alias="ION_REPORTS_SMTP_CA_FILE")
    smtp_timeout_seconds: float = Field(
        default=20.0, gt=0, le=120, validation_alias="ION_REPORTS_SMTP_TIMEOUT"
    )
    mail_from: str = Field(default="ion-ops-reports@localhost", validation_alias="ION_REPORTS_FROM")
    # The zone of a week when neither the request nor the audience names one.
    time_zone: str = Field(default="America/New_York", validation_alias="ION_REPORTS_TIME_ZONE")
    dashboards_file: Path = Field(
        default=HERE / "dashboards.yaml", validation_alias="ION_REPORTS_DASHBOARDS_FILE"
    )
    audiences_file: Path = Field(
        default=HERE / "audiences.yaml", validation_alias="ION_REPORTS_AUDIENCES_FILE"
    )
    outbox_dir: str = Field(default="outbox/reports", validation_alias="ION_REPORTS_OUTBOX")
    # Links in the mail (dashboards, the archived copy).
    public_url: str = Field(default="http://127.0.0.1:8088", validation_alias="ION_REPORTS_PUBLIC_URL")
    # A claim on a (period, audience) not finished after this long may be taken over by a retry.
    claim_lease_seconds: int = Field(
        default=300, ge=30, le=3600, validation_alias="ION_REPORTS_CLAIM_LEASE_SECONDS"
    )
    # Dashboards are cached per refresh interval; 0 turns the cache off (tests of live data).
    cache_dashboards: bool = Field(default=True, validation_alias="ION_REPORTS_CACHE_DASHBOARDS")

    @property
    def mail_configured(self) -> bool:
        return bool(self.smtp_host)


def deployment_problems(target: str) -> list[str]:
    """What a deployed reports function lacks, each naming its variable: the relay and sender,
    a recipient for every audience, and a link base people can open."""
    from functions.reports.audiences import load_audiences
    from shared.deployment import link_problems, load_settings, unset

    settings, problems = load_settings(ReportsSettings)
    problems += unset("SMTP_HOST", "ION_REPORTS_FROM")
    problems += link_problems("ION_REPORTS_PUBLIC_URL")
    if settings is not None:
        audiences = load_audiences(settings.audiences_file, settings.dashboards_file)
        problems += [
            f"ION_REPORTS_TO_{name.upper()} is not set: the {name} report would reach nobody"
            for name, audience in audiences.audiences.items()
            if not audience.mail_to()
        ]
    return problems


def check_deployment(target: str) -> None:
    from shared.deployment import refuse_to_start

    refuse_to_start("reports", deployment_problems(target))


@lru_cache(maxsize=1)
def get_reports_settings() -> ReportsSettings:
    return ReportsSettings()

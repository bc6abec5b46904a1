"""The incident policy (``incidents.yaml``): which severities open incidents, the priority of each
severity, the response and resolution targets of each priority, the escalation steps of an
incident nobody acknowledged, and which priorities get a post-incident review. Validated at load,
like the routing file."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from functions.fanout.config_files import ConfigFileError, load_model
from functions.fanout.route_models import SEVERITIES, ChannelName, Duration
from shared.messages import Severity

if TYPE_CHECKING:
    from functions.fanout.incident_record import Incident

Priority = Literal["P1", "P2", "P3", "P4"]
PRIORITIES: tuple[Priority, ...] = ("P1", "P2", "P3", "P4")
DEFAULT_POLICY_FILE = Path(__file__).resolve().parent / "incidents.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(_Strict):
    respond: Duration
    resolve: Duration

    @model_validator(mode="after")
    def _ordered(self) -> Target:
        if self.respond <= timedelta(0) or self.resolve < self.respond:
            raise ValueError("respond must be positive and resolve at least respond")
        return self


class EscalationStep(_Strict):
    """One step of an unacknowledged incident: ``after`` respond_by (the first step usually at
    0s), notify ``channels`` again, naming ``mention`` (the next on-call level's Slack group), in
    ``slack_channel`` (a wider channel; unset: the incident's own thread, broadcast)."""

    after: Duration = timedelta(0)
    channels: list[ChannelName] = Field(min_length=1)
    mention: str | None = None
    slack_channel: Annotated[str, Field(pattern=r"^[A-Z0-9]{2,30}$")] | None = None

    def describe(self) -> str:
        parts = ["re-page " + " + ".join(self.channels)]
        if self.mention:
            parts.append(f"mention {self.mention}")
        if self.slack_channel:
            parts.append(f"in channel {self.slack_channel}")
        return ", ".join(parts)


class IncidentPolicy(_Strict):
    open_for: list[Severity] = ["critical", "high"]
    priorities: dict[Severity, Priority] = {"critical": "P1", "high": "P2", "medium": "P3", "low": "P4"}
    targets: dict[Priority, Target]
    escalation: dict[Priority, list[EscalationStep]] = {}
    review_priorities: list[Priority] = ["P1", "P2"]

    @model_validator(mode="after")
    def _complete(self) -> IncidentPolicy:
        missing = [s for s in SEVERITIES if s not in self.priorities]
        if missing:
            raise ValueError(f"priorities must map every severity; missing: {', '.join(missing)}")
        without = [p for p in PRIORITIES if p not in self.targets]
        if without:
            raise ValueError(f"targets must cover every priority; missing: {', '.join(without)}")
        for priority, steps in self.escalation.items():
            afters = [s.after for s in steps]
            if afters != sorted(afters):
                raise ValueError(f"escalation.{priority}: steps must be in order of `after`")
        return self

    def priority_of(self, severity: Severity) -> Priority:
        return self.priorities[severity]

    def opens_for(self, severity: Severity) -> bool:
        return severity in self.open_for

    def steps(self, priority: Priority) -> list[EscalationStep]:
        return list(self.escalation.get(priority, []))

    def next_escalation_at(self, incident: Incident) -> datetime | None:
        """When the incident's next step is due (None when acknowledged, resolved or none left)."""
        if incident.state != "triggered":
            return None
        steps = self.steps(incident.priority)
        if incident.escalation_level >= len(steps):
            return None
        return incident.respond_by + steps[incident.escalation_level].after

    def escalation_after_renotify(self, incident: Incident, renotified: datetime) -> datetime | None:
        """The next step of an incident whose current level was notified again (PagerDuty took
        the acknowledgement back): that level's whole escalation timeout from then, as PagerDuty
        restarts it (level 0 had respond_by + the first step's ``after`` from the opening)."""
        steps = self.steps(incident.priority)
        level = incident.escalation_level
        if level >= len(steps):
            return None
        if level == 0:
            timeout = incident.respond_by - incident.opened_at + steps[0].after
        else:
            timeout = steps[level].after - steps[level - 1].after
        return renotified + timeout


class PolicyError(ConfigFileError):
    pass


def load_policy(path: Path) -> IncidentPolicy:
    """Read and validate an incident policy file; errors name the file and the fields at fault."""
    return load_model(path, IncidentPolicy, what="incident policy file", top="targets", error=PolicyError)


@lru_cache(maxsize=1)
def get_policy() -> IncidentPolicy:
    from functions.fanout.settings import get_fanout_settings

    return load_policy(get_fanout_settings().incident_policy_file)

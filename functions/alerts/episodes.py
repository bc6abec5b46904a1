"""The anomaly detector's episodes: consecutive anomalous points are one alert, and no new alert
starts within the cooldown after the last one began unless it escalates (is much stronger than
the strongest point of the last episode: a real outage right after a weak false alert pages)."""

from __future__ import annotations

from dataclasses import dataclass

from functions.alerts.detector_config import DetectorConfig


@dataclass
class Episode:
    """One alert of a whole-series run, by point index (``end`` None: still open at the end)."""

    start: int
    end: int | None


class EpisodeTracker:
    """Whether the series is in an episode, when the last one started and how strong it got."""

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.active = False
        self.last_start = -(10**9)
        self.calm = 0
        self.peak = 0.0

    def step(self, strength: float, index: int, cooldown: int, calm_points: int, may_start: bool) -> bool:
        """Account for a point whose strongest trigger is ``strength`` (score over bar, > 1 is a
        hit); returns whether it starts an episode. An episode ends after ``calm_points`` points
        in a row with every trigger under half its bar."""
        c = self.config
        cooled = index - self.last_start > cooldown
        escalated = (
            c.escalation > 0 and not cooled and strength > max(c.escalation_floor, c.escalation * self.peak)
        )
        if self.active:
            self.peak = max(self.peak, strength)
            # Any trigger above half its bar holds the episode; a long shift so holds it until the
            # longer reference absorbs it (days): it pages once and its points stay out of the bars.
            if strength > 0.5:
                self.calm = 0
            else:
                self.calm += 1
                if self.calm >= calm_points:
                    self.active = False
            return False
        if may_start and strength > 1.0 and (cooled or escalated):
            self.active, self.last_start, self.calm = True, index, 0
            self.peak = strength
            return True
        return False

"""The verdict board: the `ScoreSink` that turns window scores into verdicts and events.

`VerdictBoard` keeps the active calls and their participants, runs one `VerdictPolicy`
per participant, publishes DESIGN.md events on the `EventBus` and records operator
actions on alerts. Everything here runs on the event loop and does no I/O: delivery to
files, the log and the store happens in the bus's subscribers (`alerts.delivery`,
`alerts.store`), so alerts are logged once, by the log sink.

The `score` of an event is the participant's aggregate (the median the verdict is
decided on), except in `participant.score`, which carries the latest window's score
for live plots and is rate-limited to one per `score_interval_s` of media time.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from alerts.config import VerdictConfig
from alerts.events import Event, EventBus, EventType, utc_now_iso
from alerts.metrics import Metrics
from alerts.policy import Thresholds, VerdictPolicy, resolve_thresholds
from alerts.types import CallInfo, ParticipantInfo, Verdict, WindowScore

logger = logging.getLogger(__name__)

TIMELINE_WINDOWS = 600  # recent window scores kept per participant for live timelines
KNOWN_ALERTS = 10_000  # alerts remembered for operator actions after their call ended
VERDICT_RANK = {v: i for i, v in enumerate(Verdict)}  # Verdict is ordered by alarm


@dataclass(slots=True)
class ParticipantState:
    """What the board knows of one participant of an active call."""

    info: ParticipantInfo
    policy: VerdictPolicy
    joined_at: float  # board clock
    last_score: float | None = None  # latest window score
    media_s: float = 0.0  # end of the latest scored window, or audio seen, whichever is later
    audio_s: float = 0.0
    speech_s: float = 0.0
    last_score_event_s: float | None = None  # media_s of the last participant.score event
    alert_ids: list[str] = field(default_factory=list)
    windows: deque[tuple[float, float, float, float]] = field(
        default_factory=lambda: deque(maxlen=TIMELINE_WINDOWS)
    )  # (start_s, end_s, score, speech_ratio)

    @property
    def verdict(self) -> Verdict:
        """The participant's current verdict."""
        return self.policy.state


@dataclass(slots=True)
class CallState:
    """An active call and its participants."""

    info: CallInfo
    thresholds: Thresholds
    started_at: float  # board clock
    started_ts: str  # UTC ISO-8601
    participants: dict[str, ParticipantState] = field(default_factory=dict)

    def worst_verdict(self) -> Verdict:
        """The most alarming verdict among the participants (listening when none)."""
        verdicts = [p.verdict for p in self.participants.values()] or [Verdict.LISTENING]
        return max(verdicts, key=VERDICT_RANK.__getitem__)

    def media_s(self) -> float:
        """The longest participant's media time."""
        return max((p.media_s for p in self.participants.values()), default=0.0)


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An alert the board raised, kept so operators can act on it."""

    alert_id: str
    call_id: str
    participant_id: str
    line: str
    ingress: str
    media_s: float
    score: float | None


class VerdictBoard:
    """Active calls, per-participant verdicts and alerts; implements `ScoreSink`.

    Args:
        config: Verdict policy settings.
        manifest_thresholds: The model manifest's `thresholds` object.
        default_threshold: The model manifest's `threshold`.
        model_label: "name version" of the model, carried by every event.
        bus: Where events are published.
        metrics: The process's metrics.
        clock: Monotonic seconds, injected for tests.

    Raises:
        ValueError: The thresholds of the service or of a configured line are inverted.
    """

    def __init__(
        self,
        config: VerdictConfig,
        manifest_thresholds: Mapping[str, float],
        default_threshold: float,
        model_label: str,
        bus: EventBus,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._manifest_thresholds = dict(manifest_thresholds)
        self._default_threshold = default_threshold
        self._model = model_label
        self._bus = bus
        self._metrics = metrics
        self._clock = clock
        self._calls: dict[str, CallState] = {}
        self._alerts: OrderedDict[str, AlertRecord] = OrderedDict()
        self._thresholds: dict[str, Thresholds] = {}
        for line in ("", *config.lines):  # a bad override stops the start, not a call
            self.thresholds_for(line)

    # -- ScoreSink ---------------------------------------------------------------------

    def open_call(self, call: CallInfo) -> None:
        """Start tracking `call` and publish `call.started`."""
        if call.call_id in self._calls:
            logger.warning("call opened twice; ignored", extra={"call_id": call.call_id})
            return
        state = CallState(call, self.thresholds_for(call.line), self._clock(), utc_now_iso())
        self._calls[call.call_id] = state
        ingress = str(call.ingress)
        self._metrics.calls_active.labels(ingress).inc()
        self._metrics.calls_total.labels(ingress).inc()
        self._publish(state, None, EventType.CALL_STARTED, verdict=str(Verdict.LISTENING))

    def add_participant(self, participant: ParticipantInfo) -> None:
        """Start scoring a participant of an open call; publish `participant.joined`."""
        call = self._calls.get(participant.call_id)
        if call is None:
            logger.warning("participant of unknown call", extra={"call_id": participant.call_id})
            return
        if participant.participant_id in call.participants:
            return
        part = ParticipantState(
            participant, VerdictPolicy(self._config, call.thresholds), self._clock()
        )
        call.participants[participant.participant_id] = part
        ingress = str(call.info.ingress)
        self._metrics.participants_active.labels(ingress).inc()
        self._metrics.participants_total.labels(ingress).inc()
        self._publish(call, part, EventType.PARTICIPANT_JOINED, label=participant.label)

    def push_scores(self, scores: list[WindowScore]) -> None:
        """Feed window scores (in window order per participant) to their policies."""
        for score in scores:
            call = self._calls.get(score.call_id)
            part = call.participants.get(score.participant_id) if call else None
            if call is None or part is None:
                logger.debug("score of unknown participant", extra={"call_id": score.call_id})
                continue
            self._push_one(call, part, score)

    def add_audio(self, call_id: str, participant_id: str, audio_s: float, speech_s: float) -> None:
        """Account audio and speech seconds seen for a participant."""
        call = self._calls.get(call_id)
        part = call.participants.get(participant_id) if call else None
        if part is None:
            return
        part.audio_s += audio_s
        part.speech_s += speech_s
        part.media_s = max(part.media_s, part.audio_s)

    def close_call(self, call_id: str, reason: str) -> None:
        """Stop tracking the call and publish `call.ended` with `reason`."""
        call = self._calls.pop(call_id, None)
        if call is None:
            return
        ingress = str(call.info.ingress)
        self._metrics.calls_active.labels(ingress).dec()
        self._metrics.participants_active.labels(ingress).dec(len(call.participants))
        scores = [p.policy.aggregate for p in call.participants.values()]
        known = [s for s in scores if s is not None]
        self._publish(
            call,
            None,
            EventType.CALL_ENDED,
            reason=reason,
            media_s=call.media_s(),
            score=max(known) if known else None,
            verdict=str(call.worst_verdict()),
        )

    # -- operator actions ----------------------------------------------------------------

    def acknowledge(self, alert_id: str, user: str) -> Event:
        """Record that `user` saw the alert; raises KeyError for an unknown alert."""
        return self._act(alert_id, EventType.ALERT_ACKNOWLEDGED, "acknowledged", user=user)

    def dismiss(self, alert_id: str, user: str, reason: str) -> Event:
        """Record a false alarm with its `reason`; raises KeyError for an unknown alert."""
        return self._act(alert_id, EventType.ALERT_DISMISSED, "dismissed", user=user, reason=reason)

    def escalate(self, alert_id: str, user: str, note: str) -> Event:
        """Escalate the alert with a `note`; raises KeyError for an unknown alert."""
        return self._act(alert_id, EventType.ALERT_ESCALATED, "escalated", user=user, note=note)

    # -- reads for the console -------------------------------------------------------------

    def thresholds_for(self, line: str) -> Thresholds:
        """The thresholds that apply on `line` (cached per line)."""
        found = self._thresholds.get(line)
        if found is None:
            found = resolve_thresholds(
                self._config, self._manifest_thresholds, self._default_threshold, line
            )
            self._thresholds[line] = found
        return found

    def restore_alert(self, record: AlertRecord) -> None:
        """Make an alert from before a restart (read from the store) actionable again."""
        self._alerts[record.alert_id] = record
        while len(self._alerts) > KNOWN_ALERTS:
            self._alerts.popitem(last=False)

    def alert(self, alert_id: str) -> AlertRecord:
        """A known alert; raises KeyError when unknown."""
        return self._alerts[alert_id]

    def snapshot(self) -> list[dict[str, Any]]:
        """The active calls and their participants, as JSON-ready dicts (a copy)."""
        now = self._clock()
        return [self._call_dict(call, now) for call in self._calls.values()]

    def timeline(self, call_id: str, participant_id: str) -> list[dict[str, float]]:
        """Recent window scores of an active participant; raises KeyError when unknown."""
        part = self._calls[call_id].participants[participant_id]
        return [
            {"start_s": s, "end_s": e, "score": sc, "speech_ratio": r}
            for s, e, sc, r in part.windows
        ]

    # -- internals ---------------------------------------------------------------------

    def _push_one(self, call: CallState, part: ParticipantState, score: WindowScore) -> None:
        part.windows.append((score.start_s, score.end_s, score.score, score.speech_ratio))
        part.last_score = score.score
        part.media_s = max(part.media_s, score.end_s)
        previous = part.verdict
        changed = part.policy.push(score)
        if changed is not None:
            self._metrics.verdicts_total.labels(str(changed)).inc()
            self._publish(
                call,
                part,
                EventType.PARTICIPANT_VERDICT,
                media_s=score.end_s,
                score=part.policy.aggregate,
                previous=str(previous),
            )
            if changed == Verdict.SYNTHETIC:
                self._raise_alert(call, part, score.end_s)
        last = part.last_score_event_s
        if last is None or score.end_s - last >= self._config.score_interval_s:
            part.last_score_event_s = score.end_s
            self._publish(
                call, part, EventType.PARTICIPANT_SCORE, media_s=score.end_s, score=score.score
            )

    def _raise_alert(self, call: CallState, part: ParticipantState, media_s: float) -> None:
        alert_id = uuid.uuid4().hex
        record = AlertRecord(
            alert_id,
            call.info.call_id,
            part.info.participant_id,
            call.info.line,
            str(call.info.ingress),
            media_s,
            part.policy.aggregate,
        )
        self.restore_alert(record)
        part.alert_ids.append(alert_id)
        self._metrics.alerts_total.labels("raised").inc()
        self._publish(
            call,
            part,
            EventType.ALERT_RAISED,
            media_s=media_s,
            score=part.policy.aggregate,
            alert_id=alert_id,
        )

    def _act(self, alert_id: str, kind: EventType, metric_kind: str, **fields: Any) -> Event:
        record = self._alerts[alert_id]  # KeyError for an unknown alert
        call = self._calls.get(record.call_id)
        part = call.participants.get(record.participant_id) if call else None
        event = Event(
            type=kind,
            call_id=record.call_id,
            participant_id=record.participant_id,
            line=record.line,
            ingress=record.ingress,
            media_s=part.media_s if part else record.media_s,
            score=(part.policy.aggregate if part else record.score),
            verdict=str(part.verdict) if part else None,
            model=self._model,
            alert_id=alert_id,
            **fields,
        )
        self._metrics.alerts_total.labels(metric_kind).inc()
        self._bus.publish(event)
        return event

    def _publish(
        self,
        call: CallState,
        part: ParticipantState | None,
        kind: EventType,
        **fields: Any,
    ) -> None:
        values: dict[str, Any] = {
            "line": call.info.line,
            "ingress": str(call.info.ingress),
            "model": self._model,
        }
        if part is not None:
            values.update(
                participant_id=part.info.participant_id,
                media_s=part.media_s,
                score=part.policy.aggregate,
                verdict=str(part.verdict),
            )
        else:
            values["media_s"] = call.media_s()
        values.update(fields)
        self._bus.publish(Event(type=kind, call_id=call.info.call_id, **values))

    def _call_dict(self, call: CallState, now: float) -> dict[str, Any]:
        return {
            "call_id": call.info.call_id,
            "line": call.info.line,
            "ingress": str(call.info.ingress),
            "started": call.started_ts,
            "duration_s": round(now - call.started_at, 3),
            "verdict": str(call.worst_verdict()),
            "thresholds": {
                "suspect": call.thresholds.suspect,
                "synthetic": call.thresholds.synthetic,
            },
            "participants": [self._participant_dict(p) for p in call.participants.values()],
        }

    @staticmethod
    def _participant_dict(part: ParticipantState) -> dict[str, Any]:
        return {
            "participant_id": part.info.participant_id,
            "label": part.info.label,
            "verdict": str(part.verdict),
            "score": part.last_score,
            "aggregate": part.policy.aggregate,
            "windows": part.policy.windows,
            "media_s": part.media_s,
            "audio_s": part.audio_s,
            "speech_s": part.speech_s,
            "alert_ids": list(part.alert_ids),
        }

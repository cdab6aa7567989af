"""Stage specs written by an LLM through the ``anthropic`` SDK's Messages API, cached on disk for offline replay.

The prompt carries the task's instruction, its entities (with which ones open, close or turn), its goal and
initial literals, the predicate vocabulary and the JSON Schema. The answer is only ever parsed as JSON
(``json.loads``), checked against the schema and the task's entity names; nothing in it is executed.

Cache: ``<cache_dir>/<suite>_<task>/<model>/<prompt sha256>.json`` holds the raw answer text (and usage), keyed
by (task, model, prompt hash), written before the answer is checked, so a rerun replays offline and gives the
bit-identical spec (or the same error). The API key is read from ``ANTHROPIC_API_KEY`` at call time, handed to
the SDK client and never written to the cache, a result file or a log message.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tgrpo.rewards.facts import TaskFacts
from tgrpo.rewards.schema import SCHEMA_VERSION, SpecError, check_spec, parse_spec_text, schema_text

PROMPT_VERSION = 1
DEFAULT_MODEL = "claude-sonnet-5-5"
PAPER_MODEL = "claude-3-7-sonnet-20250219"
DEFAULT_CACHE_DIR = Path(__file__).resolve().parent / "llm_cache"


def _src(reason: str, **kw):
    return field(metadata={"reason": reason}, **kw)


@dataclass(frozen=True)
class LLMConfig:
    """How the LLM is asked. Recorded with every generated spec (no secrets in it)."""

    model: str = _src(
        "the newest Sonnet-tier model in the installed SDK's model list (anthropic 2.14.0); the paper used "
        f"Claude 3.7 Sonnet ({PAPER_MODEL}), which that list no longer offers", default=DEFAULT_MODEL)
    max_tokens: int = _src("a 2-sub-plan spec is about 3k tokens of JSON; 8192 leaves room", default=8192)
    timeout_s: float = _src("per HTTP attempt; a spec answer takes well under a minute", default=120.0)
    max_retries: int = _src("SDK retries on 408/409/429/5xx (529 overloaded) and timeouts, with backoff that "
                            "honours retry-after", default=4)
    base_url: str | None = _src("None: the SDK's default (or ANTHROPIC_BASE_URL)", default=None)
    cache_dir: str = _src("answers by (task, model, prompt hash)", default=str(DEFAULT_CACHE_DIR))
    offline: bool = _src("True: replay cached answers only, never call the API", default=False)
    api_key_env: str = _src("environment variable holding the key", default="ANTHROPIC_API_KEY")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("cache_dir")
        return d


class LLMError(RuntimeError):
    """The API could not give an answer (timeout, rate limit or overload after retries, a body that is not a
    Messages API response, ...)."""


class LLMUnavailable(LLMError):
    """There is no API to ask (no key, the endpoint cannot be reached): every further request would fail alike."""


SYSTEM_PROMPT = (
    "You decompose robot manipulation tasks of the LIBERO benchmark into ordered stages for a dense reward. "
    "You answer with one JSON object that matches the given JSON Schema, and nothing else."
)

VOCABULARY = """Predicate vocabulary (all computed from simulator state; distances in metres):
- near(entity, part, offset, dist): the gripper is within dist of the entity's bounding box (part "box") or of a
  point of it (origin, center, top, handle) plus offset.
- grasped(entity): the gripper is at the object with the fingers closed on it.
- lifted(entity, height): the object is at least height above where it started.
- above(entity, target, xy_tol, min_dz): the object is horizontally within xy_tol of the target and its bottom is at
  least min_dz above the target's top.
- in / on (entity, target), open / close (drawer region or door), turnon / turnoff (knob): LIBERO's own predicates;
  open/close/turnon/turnoff with "progress" p mean the joint moved at least the fraction p of the way.
Rules:
- A stage is reached when its predicate and all "also" predicates hold and the previous stage was reached
  before; the reward is that of the furthest stage reached, so stage rewards must increase strictly, in (0, 1].
  "latch": true keeps a stage reached while its "also" predicates hold (e.g. lifted, then carried while grasped).
- The last stage must state every goal literal of the task, as its predicate or in "also".
- One sub-plan per goal literal (a preparatory one, e.g. opening a closed drawer, may come first); later sub-plans
  keep earlier goal literals in "also".
- key_pose is where the gripper should go while that stage is the next one to reach.
- Use only the entity names listed for this task."""


def build_prompt(facts: TaskFacts) -> dict:
    """The request body parts that define the answer (system and messages), deterministic for a task."""
    articulated = {e: facts.articulation(e) for e in facts.entities if facts.articulation(e)}
    lines = [
        f"Task instruction: {facts.instruction}",
        f"LIBERO suite and task: {facts.suite} task {facts.task_id} ({facts.name})",
        "Entities of this task:",
        f"- objects (movable): {', '.join(facts.objects)}",
        f"- fixtures: {', '.join(facts.fixtures) or '(none)'}",
        f"- regions: {', '.join(facts.regions) or '(none)'}",
        "- articulated: " + (", ".join(f"{e} ({k})" for e, k in articulated.items()) or "(none)"),
        "Goal literals (all must hold for success; index: literal):",
        *[f"  {i}: ({' '.join(g)})" for i, g in enumerate(facts.goal_literals)],
        "Initial-state literals:",
        *[f"  ({' '.join(g)})" for g in facts.init_literals],
        "",
        VOCABULARY,
        "",
        f"JSON Schema (version {SCHEMA_VERSION}) of the answer:",
        schema_text(),
        "",
        'Answer with the JSON object only: {"schema_version": 1, "subplans": [...]}.',
    ]
    return {"system": SYSTEM_PROMPT, "messages": [{"role": "user", "content": "\n".join(lines)}]}


def prompt_hash(model: str, prompt: dict, max_tokens: int) -> str:
    body = {"prompt_version": PROMPT_VERSION, "model": model, "max_tokens": max_tokens, **prompt}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def cache_path(cfg: LLMConfig, facts: TaskFacts, digest: str) -> Path:
    safe_model = "".join(c if c.isalnum() or c in "-._" else "_" for c in cfg.model)
    return Path(cfg.cache_dir) / f"{facts.suite}_{facts.task_id:02d}" / safe_model / f"{digest}.json"


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "[redacted]") if secret else text


def _excerpt(text: str, secret: str | None, limit: int = 120) -> str:
    """The start of a server's text on one line, without the key."""
    return repr(_scrub(" ".join(str(text).split()), secret)[:limit])


def _parse_message(text: str, content_type: str, key: str) -> dict:
    """The parts of a Messages API response body the cache keeps; LLMError (rejected) for anything else."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    content = body.get("content") if isinstance(body, dict) else None
    usage = body.get("usage") if isinstance(body, dict) else None
    blocks = content if isinstance(content, list) and all(isinstance(b, dict) for b in content) else None
    texts = [b.get("text") for b in blocks or [] if b.get("type") == "text"]
    if blocks is None or not isinstance(usage, dict) or not all(isinstance(t, str) for t in texts):
        raise LLMError(f"the Messages API answer was rejected: HTTP 200 ({content_type or 'no content type'}) "
                       f"but not a Messages API response: {_excerpt(text, key)}")
    return {
        "response_id": body.get("id"),
        "model_answered": body.get("model"),
        "stop_reason": body.get("stop_reason"),
        "usage": {"input_tokens": usage.get("input_tokens"), "output_tokens": usage.get("output_tokens")},
        "text": _scrub("".join(texts), key),
    }


def _call_api(cfg: LLMConfig, prompt: dict) -> dict:
    """One Messages API call (the SDK retries); returns the parts of the answer the cache keeps."""
    key = os.environ.get(cfg.api_key_env)
    if not key:
        raise LLMUnavailable(f"{cfg.api_key_env} is not set and no cached answer exists for this prompt")
    import anthropic

    client = anthropic.Anthropic(api_key=key, base_url=cfg.base_url, timeout=cfg.timeout_s,
                                 max_retries=cfg.max_retries)
    try:  # the raw body: the SDK would hand back HTML as a str and a wrong-shaped object unchecked
        raw = client.messages.with_raw_response.create(model=cfg.model, max_tokens=cfg.max_tokens,
                                                       system=prompt["system"], messages=prompt["messages"])
        text, content_type = raw.text(), raw.headers.get("content-type", "")
    except anthropic.APITimeoutError:
        raise LLMError(f"the Messages API timed out ({cfg.timeout_s} s per attempt, {cfg.max_retries} retries)") \
            from None
    except anthropic.APIStatusError as err:
        what = {429: "rate limited", 529: "overloaded"}.get(err.status_code, "error")
        raise LLMError(f"the Messages API answered {err.status_code} ({what}) after {cfg.max_retries} "
                       f"retries: {_excerpt(err.message, key, 300)}") from None
    except anthropic.APIConnectionError as err:
        raise LLMUnavailable(f"could not reach the Messages API at {_scrub(str(client.base_url), key)}: "
                             f"{_excerpt(err, key)}") from None
    finally:
        client.close()
    return _parse_message(text, content_type, key)


def llm_answer(facts: TaskFacts, cfg: LLMConfig = LLMConfig()) -> tuple[dict, Path, bool]:
    """(cache record, its path, whether it came from the cache) for a task: replays a cached answer or asks."""
    prompt = build_prompt(facts)
    digest = prompt_hash(cfg.model, prompt, cfg.max_tokens)
    path = cache_path(cfg, facts, digest)
    if path.exists():
        with open(path) as f:
            return json.load(f), path, True
    if cfg.offline:
        raise LLMError(f"offline and no cached answer for {facts.key} with {cfg.model} (prompt {digest[:12]}; "
                       f"looked in {path})")
    answer = _call_api(cfg, prompt)
    record = {"task": facts.key, "model": cfg.model, "prompt_sha256": digest, "prompt_version": PROMPT_VERSION,
              **answer}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return record, path, False


def llm_spec(facts: TaskFacts, cfg: LLMConfig = LLMConfig()) -> dict:
    """The LLM's stage spec of one task, parsed and checked; SpecError (bad answer) or LLMError (no answer)."""
    record, path, _ = llm_answer(facts, cfg)
    if record.get("stop_reason") == "max_tokens":
        raise SpecError(f"{facts.key}: the answer was cut at max_tokens={cfg.max_tokens} (cached at {path})")
    text = record.get("text", "")
    source = {"kind": "llm", "model": cfg.model, "prompt_sha256": record["prompt_sha256"],
              "prompt_version": PROMPT_VERSION,
              "answer_sha256": hashlib.sha256(text.encode()).hexdigest()}
    try:
        return check_spec(parse_spec_text(text), facts, source=source)
    except SpecError as err:
        raise SpecError(f"{facts.key}: the LLM answer was rejected (cached at {path}): {err}") from None

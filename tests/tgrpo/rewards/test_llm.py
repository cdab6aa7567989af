"""The LLM spec path end to end: the real `anthropic` SDK against a local Messages API server on 127.0.0.1."""

import json
import logging
import secrets

import pytest

from tests.tgrpo.rewards.messages_server import MessagesServer, Reply, error_body, message_body
from tgrpo.rewards.facts import TaskFacts
from tgrpo.rewards.llm import LLMConfig, LLMError, build_prompt, llm_spec, prompt_hash
from tgrpo.rewards.schema import SpecError

FACTS = TaskFacts(
    suite="libero_object", task_id=0, name="pick_up_the_alphabet_soup_and_place_it_in_the_basket",
    instruction="pick up the alphabet soup and place it in the basket",
    objects=("alphabet_soup_1", "basket_1", "ketchup_1"), fixtures=(),
    regions=("floor_bin_region", "basket_1_contain_region"),
    goal_literals=(("in", "alphabet_soup_1", "basket_1_contain_region"),),
    init_literals=(("on", "alphabet_soup_1", "floor_bin_region"),),
)

# Written by hand for this test: what a good answer looks like.
GOOD = {
    "schema_version": 1,
    "subplans": [{
        "name": "soup into the basket", "goal_literal": 0,
        "stages": [
            {"name": "reach_soup", "reward": 0.25, "predicate": {"type": "near", "entity": "alphabet_soup_1"},
             "key_pose": {"entity": "alphabet_soup_1", "part": "center"}},
            {"name": "grasp_soup", "reward": 0.5, "predicate": {"type": "grasped", "entity": "alphabet_soup_1"},
             "key_pose": {"entity": "alphabet_soup_1"}},
            {"name": "lift_soup", "reward": 0.75,
             "predicate": {"type": "lifted", "entity": "alphabet_soup_1", "height": 0.08},
             "key_pose": {"entity": "basket_1", "part": "top", "offset": [0, 0, 0.15]}},
            {"name": "soup_in_basket", "reward": 1.0,
             "predicate": {"type": "in", "entity": "alphabet_soup_1", "target": "basket_1_contain_region"},
             "key_pose": None},
        ],
    }],
}


@pytest.fixture
def key(monkeypatch):
    value = "sk-test-" + secrets.token_hex(16)
    monkeypatch.setenv("ANTHROPIC_API_KEY", value)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    return value


def cfg(srv, tmp_path, **kw):
    return LLMConfig(model="claude-test-model", base_url=srv.base_url, cache_dir=str(tmp_path / "cache"),
                     max_retries=kw.pop("max_retries", 2), timeout_s=kw.pop("timeout_s", 10.0), **kw)


def ok(text):
    return Reply(200, message_body(text))


def files_text(root):
    return "".join(p.read_text() for p in root.rglob("*") if p.is_file())


def test_valid_answer_wire_format_cache_and_offline_replay(tmp_path, key, caplog):
    caplog.set_level(logging.DEBUG)
    with MessagesServer([ok(json.dumps(GOOD))]) as srv:
        c = cfg(srv, tmp_path)
        spec = llm_spec(FACTS, c)
        assert len(srv.requests) == 1
        req = srv.requests[0]
        # the Messages API request as the wire format defines it
        assert req.method == "POST" and req.path == "/v1/messages"
        assert req.headers["content-type"].startswith("application/json")
        assert "anthropic-version" in req.headers
        assert key in (req.headers.get("x-api-key", ""), req.headers.get("authorization", "").removeprefix(
            "Bearer "))
        body = req.body
        assert body["model"] == "claude-test-model" and body["max_tokens"] == c.max_tokens
        assert isinstance(body["system"], str) and body["system"]
        assert [m["role"] for m in body["messages"]] == ["user"]
        user = body["messages"][0]["content"]
        assert FACTS.instruction in user
        for name in FACTS.entities:
            assert name in user
        assert "(in alphabet_soup_1 basket_1_contain_region)" in user
        assert "https://tgrpo-bench/rewards/stage-spec/v1" in user  # the schema travels in the prompt
        # a second call replays the cache: no request, the same spec
        again = llm_spec(FACTS, c)
        assert len(srv.requests) == 1
    assert json.dumps(again, sort_keys=True) == json.dumps(spec, sort_keys=True)
    # the server is gone: offline replay still gives the identical spec
    offline = llm_spec(FACTS, LLMConfig(model="claude-test-model", cache_dir=str(tmp_path / "cache"),
                                        offline=True))
    assert json.dumps(offline, sort_keys=True) == json.dumps(spec, sort_keys=True)

    stages = [s["name"] for s in spec["subplans"][0]["stages"]]
    assert stages == ["reach_soup", "grasp_soup", "lift_soup", "soup_in_basket"]
    assert spec["source"]["kind"] == "llm" and spec["source"]["model"] == "claude-test-model"
    assert spec["source"]["prompt_sha256"] == prompt_hash(c.model, build_prompt(FACTS), c.max_tokens)
    assert spec["subplans"][0]["stages"][0]["predicate"]["dist"] == 0.03  # defaults filled in
    # cache layout: <suite>_<task>/<model>/<prompt hash>.json with the raw answer text, never the key
    files = list((tmp_path / "cache").rglob("*.json"))
    assert [f.relative_to(tmp_path / "cache").parts[:2] for f in files] == [("libero_object_00",
                                                                            "claude-test-model")]
    record = json.loads(files[0].read_text())
    assert json.loads(record["text"]) == GOOD
    assert key not in files_text(tmp_path) and key not in json.dumps(spec) and key not in caplog.text


def test_fenced_json_answer_is_accepted(tmp_path, key):
    with MessagesServer([ok("```json\n" + json.dumps(GOOD) + "\n```")]) as srv:
        spec = llm_spec(FACTS, cfg(srv, tmp_path))
    assert spec["subplans"][0]["stages"][-1]["name"] == "soup_in_basket"


@pytest.mark.parametrize("text,match", [
    ('Sure! {"schema_version": 1, "subplans": [', "not valid JSON"),
    ("", "empty"),
    ("[1, 2]", "must be one JSON object"),
    ("```json\n{}\n```\n```json\n{}\n```", "exactly one fenced JSON block"),
])
def test_malformed_answers_are_clear_errors_and_cached(tmp_path, key, text, match):
    with MessagesServer([ok(text)]) as srv:
        c = cfg(srv, tmp_path)
        with pytest.raises(SpecError, match=match) as err:
            llm_spec(FACTS, c)
        assert "LLM answer was rejected" in str(err.value) and "cached at" in str(err.value)
        with pytest.raises(SpecError, match=match):  # replayed from the cache, same error, no new request
            llm_spec(FACTS, c)
        assert len(srv.requests) == 1


def _with(change):
    doc = json.loads(json.dumps(GOOD))
    change(doc)
    return json.dumps(doc)


@pytest.mark.parametrize("text,match", [
    (_with(lambda d: d["subplans"][0]["stages"][0].pop("reward")), "does not match schema.*reward"),
    (_with(lambda d: d["subplans"][0]["stages"][0]["predicate"].update(type="teleport")), "does not match schema"),
    (_with(lambda d: d.update(code="import os")), "does not match schema.*Additional properties"),
    (_with(lambda d: d["subplans"][0]["stages"][1].update(reward=0.1)), "increase strictly"),
    (_with(lambda d: d["subplans"][0]["stages"].pop()), "must state every goal literal"),
    (_with(lambda d: d["subplans"][0]["stages"][0]["predicate"].update(dist=5)), "does not match schema"),
])
def test_schema_violations_are_rejected(tmp_path, key, text, match):
    with MessagesServer([ok(text)]) as srv, pytest.raises(SpecError, match=match):
        llm_spec(FACTS, cfg(srv, tmp_path))


@pytest.mark.parametrize("text,match", [
    (_with(lambda d: d["subplans"][0]["stages"][0]["predicate"].update(entity="tomato_sauce_1")),
     "unknown entity 'tomato_sauce_1'"),
    (_with(lambda d: d["subplans"][0]["stages"][2]["key_pose"].update(entity="basket_2")),
     "key_pose: unknown entity 'basket_2'"),
    (_with(lambda d: d["subplans"][0]["stages"][1]["predicate"].update(entity="floor_bin_region")),
     "'floor_bin_region' is a region, expected a object"),
    (_with(lambda d: d["subplans"][0]["stages"][0].update(
        predicate={"type": "open", "entity": "basket_1"})), "has no open"),
])
def test_unknown_or_wrong_entities_are_rejected(tmp_path, key, text, match):
    with MessagesServer([ok(text)]) as srv, pytest.raises(SpecError, match=match):
        llm_spec(FACTS, cfg(srv, tmp_path))


def test_429_then_success_is_retried(tmp_path, key):
    replies = [Reply(429, error_body("rate_limit_error", "slow down"), {"retry-after-ms": "20"}),
               ok(json.dumps(GOOD))]
    with MessagesServer(replies) as srv:
        spec = llm_spec(FACTS, cfg(srv, tmp_path))
        assert len(srv.requests) == 2
    assert spec["source"]["kind"] == "llm"


def test_529_overloaded_then_success_is_retried(tmp_path, key):
    replies = [Reply(529, error_body("overloaded_error", "Overloaded"), {"retry-after-ms": "20"}),
               Reply(529, error_body("overloaded_error", "Overloaded"), {"retry-after-ms": "20"}),
               ok(json.dumps(GOOD))]
    with MessagesServer(replies) as srv:
        llm_spec(FACTS, cfg(srv, tmp_path, max_retries=2))
        assert len(srv.requests) == 3


@pytest.mark.parametrize("status,kind,word", [(429, "rate_limit_error", "rate limited"),
                                              (529, "overloaded_error", "overloaded")])
def test_persistent_429_or_529_gives_up_after_the_retries(tmp_path, key, caplog, status, kind, word):
    caplog.set_level(logging.DEBUG)
    reply = Reply(status, error_body(kind, "try later"), {"retry-after-ms": "10"})
    with MessagesServer([reply], repeat_last=True) as srv:
        with pytest.raises(LLMError, match=f"{status} \\({word}\\) after 2 retries") as err:
            llm_spec(FACTS, cfg(srv, tmp_path, max_retries=2))
        assert len(srv.requests) == 3
    assert key not in str(err.value) and key not in caplog.text
    assert not (tmp_path / "cache").exists()  # nothing cached without an answer


def test_timeout_is_retried_then_reported(tmp_path, key):
    slow = Reply(200, message_body(json.dumps(GOOD)), delay_s=1.5)
    with MessagesServer([slow, slow]) as srv:
        with pytest.raises(LLMError, match="timed out"):
            llm_spec(FACTS, cfg(srv, tmp_path, timeout_s=0.3, max_retries=1))
        assert len(srv.requests) == 2


def test_timeout_then_answer_succeeds(tmp_path, key):
    replies = [Reply(200, message_body("{}"), delay_s=1.5), ok(json.dumps(GOOD))]
    with MessagesServer(replies) as srv:
        spec = llm_spec(FACTS, cfg(srv, tmp_path, timeout_s=0.5, max_retries=1))
        assert len(srv.requests) == 2
    assert spec["subplans"][0]["stages"][0]["name"] == "reach_soup"


def test_missing_key_and_offline_without_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with MessagesServer([ok(json.dumps(GOOD))]) as srv:
        with pytest.raises(LLMError, match="ANTHROPIC_API_KEY is not set"):
            llm_spec(FACTS, cfg(srv, tmp_path))
        with pytest.raises(LLMError, match="offline and no cached answer"):
            llm_spec(FACTS, cfg(srv, tmp_path, offline=True))
        assert srv.requests == []


def test_truncated_answer_is_rejected(tmp_path, key):
    truncated = Reply(200, message_body('{"schema_version": 1', stop_reason="max_tokens"))
    with MessagesServer([truncated]) as srv, pytest.raises(SpecError, match="cut at max_tokens"):
        llm_spec(FACTS, cfg(srv, tmp_path))


def test_cache_key_depends_on_task_model_and_prompt(tmp_path, key):
    with MessagesServer([ok(json.dumps(GOOD)), ok(json.dumps(GOOD))]) as srv:
        llm_spec(FACTS, cfg(srv, tmp_path))
        c2 = LLMConfig(model="claude-other", base_url=srv.base_url, cache_dir=str(tmp_path / "cache"))
        llm_spec(FACTS, c2)
        assert len(srv.requests) == 2  # another model is another cache entry
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 2
    other_task = TaskFacts(**{**FACTS.__dict__, "task_id": 1})
    assert prompt_hash("m", build_prompt(FACTS), 10) == prompt_hash("m", build_prompt(FACTS), 10)
    assert prompt_hash("m", build_prompt(FACTS), 10) != prompt_hash("m", build_prompt(other_task), 10)

"""Renders testdata/cases.json with Python's Jinja2 set up as Hugging Face
transformers' apply_chat_template sets it up, and writes golden/<template>__<conversation>.txt
(the prompt) or .err (the raise_exception message). The Go test compares
against these files; every golden was also read and checked by hand.

    cd internal/chattemplate/testdata && python3 reference.py

The conversation goes through the same conversion as the Go package:
an assistant message that only calls tools has content None, empty optional
keys are left out, and tool-call arguments that are valid JSON become objects
when the template needs objects (the probe llama.cpp's minja runs: the
arguments print as JSON only when given as an object).
"""

import json
import pathlib
from datetime import datetime

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = pathlib.Path(__file__).parent
NOW = datetime(2024, 9, 5, 12, 0, 0)  # the Go test's clock


class Raised(Exception):
    pass


def raise_exception(message):
    raise Raised(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def env():
    e = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    e.filters["tojson"] = tojson
    e.globals["raise_exception"] = raise_exception
    e.globals["strftime_now"] = lambda fmt: NOW.strftime(fmt)
    return e


NEEDLE = "argument_needle"


def needs_object_arguments(tpl):
    def printed(args):
        msgs = [
            {"role": "user", "content": "Hey"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1___", "type": "function", "function": {"arguments": args, "name": "ipython"}}]},
        ]
        try:
            out = tpl.render(messages=msgs, tools=None, add_generation_prompt=False, bos_token="", eos_token="")
        except Exception:
            return False
        return f'"{NEEDLE}":' in out or f"'{NEEDLE}':" in out or f"<parameter={NEEDLE}>" in out

    obj = {NEEDLE: "print('Hello, World!')"}
    return not printed(json.dumps(obj)) and printed(obj)


def message(m, object_args):
    out = {"role": m["role"]}
    calls = m.get("tool_calls") or []
    out["content"] = None if (not m.get("content") and calls) else m.get("content", "")
    if m.get("reasoning_content"):
        out["reasoning_content"] = m["reasoning_content"]
    if calls:
        conv = []
        for c in calls:
            args = c["function"]["arguments"]
            if object_args:
                try:
                    args = json.loads(args)
                except ValueError:
                    pass
            tc = {}
            if c.get("id"):
                tc["id"] = c["id"]
            tc["type"] = c.get("type") or "function"
            tc["function"] = {"name": c["function"]["name"], "arguments": args}
            conv.append(tc)
        out["tool_calls"] = conv
    if m.get("tool_call_id"):
        out["tool_call_id"] = m["tool_call_id"]
    if m.get("name"):
        out["name"] = m["name"]
    return out


def main():
    e = env()
    cases = json.loads((HERE / "cases.json").read_text())
    for case in cases:
        src = (HERE / "templates" / (case["template"] + ".jinja")).read_text()
        tpl = e.from_string(src)
        object_args = needs_object_arguments(tpl)
        conv = json.loads((HERE / "conversations" / (case["conversation"] + ".json")).read_text())
        ctx = {
            "messages": [message(m, object_args) for m in conv["messages"]],
            "tools": conv.get("tools") or None,
            "add_generation_prompt": conv.get("add_generation_prompt", False),
            "bos_token": case["bos"],
            "eos_token": case["eos"],
        }
        if "enable_thinking" in conv:
            ctx["enable_thinking"] = conv["enable_thinking"]
        if "reasoning_effort" in conv:
            ctx["reasoning_effort"] = conv["reasoning_effort"]
        base = str(HERE / "golden" / (case["template"] + "__" + case["conversation"]))
        for ext in (".txt", ".err"):
            pathlib.Path(base + ext).unlink(missing_ok=True)
        try:
            out = tpl.render(**ctx)
            pathlib.Path(base + ".txt").write_text(out)
        except Raised as err:
            pathlib.Path(base + ".err").write_text(str(err) + "\n")


if __name__ == "__main__":
    main()

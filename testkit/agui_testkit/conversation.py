"""The message list a consumer holds, tracked while generating, for coherent snapshots.

A generated MESSAGES_SNAPSHOT or a RUN_STARTED input that echoes the history
should describe the conversation the stream has built so far. This mirror
follows the official client's reducer closely enough for that purpose (where
a message is created, where a tool result is inserted, how metadata merges),
but it is only a generator aid: nothing checks a reducer against it, and a
snapshot that differed from the client's view would still be a valid stream.

It only sees expanded events (no *_CHUNK); the writer feeds it those.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

Message = dict[str, Any]


def _merge_metadata(target: dict[str, Any], event: dict[str, Any]) -> None:
    if "metadata" in event:
        target["metadata"] = {**target.get("metadata", {}), **copy.deepcopy(event["metadata"])}


class Conversation:
    """Ordered messages by id, updated event by event."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._by_id: dict[str, Message] = {}
        self._tool_owner: dict[str, Message] = {}  # tool call id -> assistant message

    # -- queries ---------------------------------------------------------------
    def get(self, message_id: str) -> Message | None:
        return self._by_id.get(message_id)

    def has_tool_call(self, tool_call_id: str) -> bool:
        return tool_call_id in self._tool_owner

    def snapshot(self) -> list[Message]:
        return copy.deepcopy(self.messages)

    # -- mutation --------------------------------------------------------------
    def _append(self, message: Message) -> None:
        self.messages.append(message)
        self._by_id[message["id"]] = message
        for call in message.get("toolCalls", ()):
            self._tool_owner[call["id"]] = message

    def _reindex(self) -> None:
        self._by_id = {m["id"]: m for m in self.messages}
        self._tool_owner = {c["id"]: m for m in self.messages for c in m.get("toolCalls", ())}

    def apply(self, event: dict[str, Any]) -> None:
        handler = getattr(self, "_on_" + event["type"].lower(), None)
        if handler is not None:
            handler(event)

    def _on_run_started(self, event: dict[str, Any]) -> None:
        for message in event.get("input", {}).get("messages", ()):
            if message["id"] not in self._by_id:
                self._append(copy.deepcopy(message))

    def _on_text_message_start(self, event: dict[str, Any]) -> None:
        existing = self._by_id.get(event["messageId"])
        if existing is None:
            message: Message = {"id": event["messageId"], "role": event.get("role", "assistant"), "content": ""}
            if "name" in event:
                message["name"] = event["name"]
            if "subagentRunId" in event:
                message["subagentRunId"] = event["subagentRunId"]
            _merge_metadata(message, event)
            self._append(message)
        elif existing["role"] != "activity":
            _merge_metadata(existing, event)

    def _append_text(self, event: dict[str, Any]) -> None:
        message = self._by_id.get(event["messageId"])
        if message is None or message["role"] == "activity":
            return
        content = message.get("content")
        message["content"] = (content if isinstance(content, str) else "") + event["delta"]
        _merge_metadata(message, event)

    _on_text_message_content = _append_text
    _on_reasoning_message_content = _append_text

    def _merge_end(self, event: dict[str, Any]) -> None:
        message = self._by_id.get(event["messageId"])
        if message is not None and message["role"] != "activity":
            _merge_metadata(message, event)

    _on_text_message_end = _merge_end
    _on_reasoning_message_end = _merge_end

    def _on_reasoning_message_start(self, event: dict[str, Any]) -> None:
        existing = self._by_id.get(event["messageId"])
        if existing is None:
            message: Message = {"id": event["messageId"], "role": "reasoning", "content": ""}
            if "subagentRunId" in event:
                message["subagentRunId"] = event["subagentRunId"]
            _merge_metadata(message, event)
            self._append(message)
        elif existing["role"] != "activity":
            _merge_metadata(existing, event)

    def _tool_call(self, tool_call_id: str) -> dict[str, Any] | None:
        owner = self._tool_owner.get(tool_call_id)
        if owner is None:
            return None
        return next(c for c in owner["toolCalls"] if c["id"] == tool_call_id)

    def _on_tool_call_start(self, event: dict[str, Any]) -> None:
        call_id = event["toolCallId"]
        existing = self._tool_call(call_id)
        if existing is not None:
            existing["function"]["name"] = event["toolCallName"]
            _merge_metadata(existing, event)
            return
        parent_id = event.get("parentMessageId")
        parent = self._by_id.get(parent_id) if parent_id else None
        if parent is None or parent["role"] != "assistant":
            new_id = parent_id if parent_id and parent is None else call_id
            parent = {"id": new_id, "role": "assistant", "toolCalls": []}
            if "subagentRunId" in event:
                parent["subagentRunId"] = event["subagentRunId"]
            self._append(parent)
        call = {"id": call_id, "type": "function", "function": {"name": event["toolCallName"], "arguments": ""}}
        _merge_metadata(call, event)
        parent.setdefault("toolCalls", []).append(call)
        self._tool_owner[call_id] = parent

    def _on_tool_call_args(self, event: dict[str, Any]) -> None:
        call = self._tool_call(event["toolCallId"])
        if call is not None:
            call["function"]["arguments"] += event["delta"]
            _merge_metadata(call, event)

    def _on_tool_call_end(self, event: dict[str, Any]) -> None:
        call = self._tool_call(event["toolCallId"])
        if call is not None:
            _merge_metadata(call, event)

    def _on_tool_call_result(self, event: dict[str, Any]) -> None:
        message: Message = {
            "id": event["messageId"],
            "toolCallId": event["toolCallId"],
            "role": event.get("role", "tool"),
            "content": copy.deepcopy(event["content"]),
        }
        if "subagentRunId" in event:
            message["subagentRunId"] = event["subagentRunId"]
        _merge_metadata(message, event)
        owner = self._tool_owner.get(event["toolCallId"])
        if owner is None:
            self._append(message)
            return
        index = self.messages.index(owner) + 1
        while index < len(self.messages) and self.messages[index]["role"] == "tool":
            index += 1
        self.messages.insert(index, message)
        self._by_id[message["id"]] = message

    def _on_reasoning_encrypted_value(self, event: dict[str, Any]) -> None:
        if event["subtype"] == "tool-call":
            call = self._tool_call(event["entityId"])
            if call is not None:
                call["encryptedValue"] = event["encryptedValue"]
            return
        message = self._by_id.get(event["entityId"])
        if message is not None and message["role"] != "activity":
            message["encryptedValue"] = event["encryptedValue"]

    def _on_activity_snapshot(self, event: dict[str, Any]) -> None:
        message_id = event["messageId"]
        existing = self._by_id.get(message_id)
        fresh: Message = {
            "id": message_id,
            "role": "activity",
            "activityType": event["activityType"],
            "content": copy.deepcopy(event["content"]),
        }
        if "subagentRunId" in event:
            fresh["subagentRunId"] = event["subagentRunId"]
        replace = event.get("replace", True)
        if existing is None:
            target = fresh
            self._append(fresh)
        elif existing["role"] == "activity":
            if replace:
                existing.pop("subagentRunId", None)
                existing.update(fresh)
            target = existing
        elif replace:
            target = fresh
            self.messages[self.messages.index(existing)] = fresh
            self._reindex()
        else:
            return
        _merge_metadata(target, event)

    def _on_activity_delta(self, event: dict[str, Any]) -> None:
        message = self._by_id.get(event["messageId"])
        if message is None or message["role"] != "activity":
            return
        _merge_metadata(message, event)
        try:
            content = jsonpatch.apply_patch(message["content"], event["patch"])
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException):
            return
        message["content"] = content
        message["activityType"] = event["activityType"]

    def _on_messages_snapshot(self, event: dict[str, Any]) -> None:
        incoming = copy.deepcopy(event["messages"])
        by_id = {m["id"]: m for m in incoming}
        has_activity = any(m["role"] == "activity" for m in incoming)
        has_reasoning = any(m["role"] == "reasoning" for m in incoming)

        def preserved(m: Message) -> bool:
            return (m["role"] == "activity" and not has_activity) or (m["role"] == "reasoning" and not has_reasoning)

        kept = [by_id.get(m["id"], m) for m in self.messages if m["id"] in by_id or preserved(m)]
        kept_ids = {m["id"] for m in kept}
        kept.extend(m for m in incoming if m["id"] not in kept_ids)
        self.messages = kept
        self._reindex()

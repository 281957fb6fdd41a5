"""TagResource, UntagResource, ListResourceTags and the tag rules shared with CreateKey (section 7.7)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from openkms import errors
from openkms.service.context import RequestContext
from openkms.service.core import Core, Params, Result
from openkms.service.keystate import StateRule, check_state
from openkms.service.pagination import Markers
from openkms.storage.base import TagRecord

MAX_TAGS = 50
# The model puts no character constraint on tags, but PostgreSQL text cannot hold NUL; refusing it on
# every backend keeps SQLite and PostgreSQL deployments answering alike (TagException: invalid tags).
NUL_IN_TAG = "Tag keys and values cannot contain the NUL character (U+0000)."


def parse_tags(raw: Sequence[dict[str, Any]]) -> list[TagRecord]:
    """Validate the request's tags: no reserved prefix (any case), no duplicates."""
    tags: list[TagRecord] = []
    seen: set[str] = set()
    for item in raw:
        key = item["TagKey"]
        if "\x00" in key or "\x00" in item["TagValue"]:
            raise errors.TagException(NUL_IN_TAG)
        if key.lower().startswith("aws:"):
            raise errors.TagException("Tags beginning with aws: are reserved")
        if key in seen:
            raise errors.TagException("Duplicate tag keys")
        seen.add(key)
        tags.append(TagRecord(key=key, value=item["TagValue"]))
    if len(tags) > MAX_TAGS:
        raise errors.TagException("Too many tags")
    return tags


class Tags:
    def __init__(self, core: Core, markers: Markers) -> None:
        self.core = core
        self.markers = markers

    def tag_resource(self, ctx: RequestContext, p: Params) -> Result:
        key = self.core.resolve(ctx, p["KeyId"], allow_alias=False, action="TagResource")
        check_state(StateRule.METADATA, key.state, self.core.arn(key))
        tags = parse_tags(p["Tags"])
        with self.core.changing() as tx:
            existing = {t.key for t in tx.list_tags(key.account, key.region, key.key_id)}
            if len(existing | {t.key for t in tags}) > MAX_TAGS:
                raise errors.TagException("Too many tags")
            tx.put_tags(key.account, key.region, key.key_id, tags)
        return {}

    def untag_resource(self, ctx: RequestContext, p: Params) -> Result:
        key = self.core.resolve(ctx, p["KeyId"], allow_alias=False, action="UntagResource")
        check_state(StateRule.METADATA, key.state, self.core.arn(key))
        for tag_key in p["TagKeys"]:
            if tag_key.lower().startswith("aws:"):
                raise errors.TagException("Tags beginning with aws: are reserved")
            if "\x00" in tag_key:
                raise errors.TagException(NUL_IN_TAG)
        with self.core.changing() as tx:
            tx.delete_tags(key.account, key.region, key.key_id, p["TagKeys"])
        return {}

    def list_resource_tags(self, ctx: RequestContext, p: Params) -> Result:
        key = self.core.resolve(ctx, p["KeyId"], allow_alias=False, action="ListResourceTags")
        scope = f"tags|{self.core.arn(key)}"
        after = self.markers.read(scope, p.get("Marker"))
        limit = p.get("Limit", 50)
        with self.core.store.read() as tx:
            tags = tx.list_tags(key.account, key.region, key.key_id)
        if after is not None:
            tags = [t for t in tags if t.key > after]
        page, more = tags[:limit], len(tags) > limit
        result: Result = {"Tags": [{"TagKey": t.key, "TagValue": t.value} for t in page], "Truncated": more}
        if more:
            result["NextMarker"] = self.markers.make(scope, page[-1].key)
        return result
